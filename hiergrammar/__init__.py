"""hiergrammar: Random Hierarchy Models as pgmpy factor graphs, exact tree BP, noise models,
exact posterior sampling, and the phase transition of class reconstruction."""

from hiergrammar.families import filtered_grammar, sparse_rhm
from hiergrammar.grammar import Grammar, GrammarSample, ParseResult, RHMSample
from hiergrammar.grammar_io import load_grammar
from hiergrammar.rhm import RHM
from hiergrammar.validation import InputError, ZeroEvidenceError

__all__ = [
    "Grammar",
    "GrammarSample",
    "InputError",
    "ParseResult",
    "RHM",
    "RHMSample",
    "ZeroEvidenceError",
    "filtered_grammar",
    "load_grammar",
    "sparse_rhm",
]
__version__ = "0.2.0"
