"""hiergrammar: Random Hierarchy Models as pgmpy factor graphs, exact tree BP, noise models,
exact posterior sampling, and the phase transition of class reconstruction."""

from hiergrammar.rhm import RHM, ParseResult, RHMSample
from hiergrammar.validation import InputError, ZeroEvidenceError

__all__ = ["InputError", "ParseResult", "RHM", "RHMSample", "ZeroEvidenceError"]
__version__ = "0.2.0"
