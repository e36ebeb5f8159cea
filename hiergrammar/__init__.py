"""hiergrammar: Random Hierarchy Models as pgmpy factor graphs, exact tree BP, noise models,
exact posterior sampling, and the phase transition of class reconstruction."""

from hiergrammar.rhm import RHM, ParseResult, RHMSample

__all__ = ["RHM", "RHMSample", "ParseResult"]
__version__ = "0.2.0"
