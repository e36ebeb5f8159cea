"""Numeric experiments on exact BP and exact samples: beliefs, curves, token changes."""

from hiergrammar.experiments.token_changes import change_correlations

__all__ = ["change_correlations"]
