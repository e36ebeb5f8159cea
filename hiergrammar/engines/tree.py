"""Engine ``uai_tree``: :func:`hiergrammar.uai.solve_tree` on the parsed file (our own
sum-product; tree-structured files only)."""

from __future__ import annotations

import math
from typing import Any

from hiergrammar.engines import EngineInconsistent, EngineOutput

__all__ = ["run_uai_tree"]


def run_uai_tree(instance: Any, workarounds: bool = True) -> EngineOutput:
    """Exact marginals and log Z of a tree-structured instance.

    Raises
    ------
    EngineSkipped
        If the factor graph has a cycle.
    EngineInconsistent
        If ``Z = 0``.
    """
    from hiergrammar.crosscheck import EngineSkipped
    from hiergrammar.uai import solve_tree
    from hiergrammar.validation import InputError

    try:
        solution = solve_tree(instance.model)
    except InputError as err:
        raise EngineSkipped(str(err)) from None
    if not solution.consistent:
        raise EngineInconsistent("every message of some variable is zero: Z = 0")
    return EngineOutput(list(solution.marginals), solution.log10_z * math.log(10.0))
