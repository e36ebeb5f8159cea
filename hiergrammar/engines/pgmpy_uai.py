"""Engines ``pgmpy_ve`` and ``pgmpy_bp``: pgmpy reads the UAI file (``UAIReader``), then
``VariableElimination`` (one query per variable) or junction-tree ``BeliefPropagation``.

pgmpy's reader parses the whole file again for every factor (its grammar grows one factor at
a time), so reading costs about ``n_factors * file size`` (:func:`reader_seconds`); a file
estimated above the check's ``max_seconds`` is skipped with the reason. pgmpy names the
variables ``var_k``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from hiergrammar.engines import EngineInconsistent, EngineOutput

__all__ = [
    "MAX_VE_VARIABLES",
    "READER_SECONDS_PER_FACTOR_TOKEN",
    "read_model",
    "reader_seconds",
    "run_pgmpy_bp",
    "run_pgmpy_ve",
]

#: pgmpy 1.1's UAIReader re-parses the whole file about five times per factor: seconds per
#: (factor x token), measured on the development machine (2-core x86-64, pyparsing 3; an 11 kB
#: file of 22 factors took 15 s).
READER_SECONDS_PER_FACTOR_TOKEN = 1.5e-4

#: VariableElimination is skipped above this many variables (a contraction per variable).
MAX_VE_VARIABLES = 400


def reader_seconds(model: Any) -> float:
    """Estimated seconds for pgmpy's ``UAIReader`` to read ``model``'s file.

    Examples
    --------
    >>> from hiergrammar.uai import UAIModel
    >>> round(reader_seconds(UAIModel((2,), ((0,),), (np.ones(2),))), 6)
    0.0015
    """
    tokens = 4 + model.n_variables + sum(2 + len(s) for s in model.scopes) + model.n_entries
    return READER_SECONDS_PER_FACTOR_TOKEN * model.n_factors * tokens


def read_model(instance: Any) -> Any:
    """pgmpy's model of the instance's file (``UAIReader(path).get_model()``)."""
    from hiergrammar.crosscheck import EngineSkipped

    if instance.path is None:
        raise EngineSkipped("it reads the UAI file, and this model has none")
    estimate = reader_seconds(instance.model)
    limit = getattr(instance, "max_seconds", None)
    if limit is not None and estimate > limit:
        raise EngineSkipped(
            f"pgmpy's UAIReader would take about {estimate:.3g} s > max_seconds = {limit:g} "
            "(it re-parses the file once per factor)"
        )
    from pgmpy.readwrite import UAIReader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return UAIReader(path=str(instance.path)).get_model()


def run_pgmpy_ve(instance: Any, workarounds: bool = True) -> EngineOutput:
    """Marginals by ``VariableElimination.query([var_k])``; on a Markov network pgmpy returns
    the unnormalised marginal, whose sum is ``Z``."""
    from pgmpy.inference import VariableElimination

    from hiergrammar.crosscheck import EngineSkipped

    if instance.model.n_variables > MAX_VE_VARIABLES:
        raise EngineSkipped(
            f"{instance.model.n_variables} variables > MAX_VE_VARIABLES = {MAX_VE_VARIABLES}"
        )
    model = read_model(instance)
    engine = VariableElimination(model)
    marginals = []
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")
        for k in range(instance.model.n_variables):
            marginals.append(np.asarray(engine.query([f"var_{k}"], show_progress=False).values))
    z = float(marginals[0].sum())
    if not z > 0:
        raise EngineInconsistent(f"the unnormalised marginal of var_0 sums to {z}: Z = 0")
    return EngineOutput(marginals, math.log(z))


def run_pgmpy_bp(instance: Any, workarounds: bool = True) -> EngineOutput:
    """Marginals from the smallest calibrated clique holding each variable."""
    from pgmpy.inference import BeliefPropagation

    model = read_model(instance)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")
        bp = BeliefPropagation(model)
        bp.calibrate()
        beliefs = bp.get_clique_beliefs()
        marginals = []
        for k in range(instance.model.n_variables):
            name = f"var_{k}"
            clique = min((c for c in beliefs if name in c), key=len)
            others = [x for x in clique if x != name]
            marginals.append(beliefs[clique].marginalize(others, inplace=False).values)
    return EngineOutput(marginals)
