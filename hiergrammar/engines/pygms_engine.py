"""Engine ``pygms_jtree``: pyGMs (A. Ihler's ``pygms``) reads the UAI file (``readUai``) and
runs its exact junction tree (``wmb.JTree``, min-fill elimination order): ``msgForward`` gives
``log Z``, ``beliefs`` every variable's marginal.

Known defect ``pygms-jtree-zeros`` (``docs/engine_findings.md``): the beliefs are NaN as soon as
a factor holds an exact zero. The workaround (on unless ``workarounds=False``): ``log Z`` from
the true tables; the marginals from a second run in which each table's zeros are raised to
``1e-300`` times its largest entry, which moves no marginal by more than about ``1e-290``
relative to ``Z``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from hiergrammar.engines import EngineInconsistent, EngineOutput

__all__ = ["FLOOR", "factors_of", "run_pygms_jtree"]

#: Zeros are raised to this fraction of their table's largest entry (the workaround).
FLOOR = 1e-300


def factors_of(model: Any) -> list:
    """pyGMs factors of a :class:`~hiergrammar.uai.UAIModel` (pyGMs keeps a factor's variables
    sorted, so each table is transposed to that order)."""
    import pygms as gm

    variables = [gm.Var(k, int(c)) for k, c in enumerate(model.cards)]
    out = []
    for scope, table in zip(model.scopes, model.tables, strict=True):
        order = np.argsort(scope)
        sorted_table = np.transpose(np.asarray(table, dtype=np.float64), order)
        out.append(
            gm.Factor(gm.VarSet(variables[i] for i in scope), np.asfortranarray(sorted_table))
            if scope
            else gm.Factor([], float(table))
        )
    return out


def _solve(factors: list) -> tuple[Any, Any, float]:
    import pygms as gm
    from pygms.graphmodel import eliminationOrder
    from pygms.wmb import JTree

    model = gm.GraphModel(factors)
    jtree = JTree(model, elimOrder=eliminationOrder(model, "minfill")[0])
    return model, jtree, float(jtree.msgForward())


def run_pygms_jtree(instance: Any, workarounds: bool = True) -> EngineOutput:
    """Marginals and log Z (see the module docstring)."""
    import pygms as gm

    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")
        if instance.path is not None and instance.reads_file_ok:
            factors = gm.readUai(str(instance.path))
        else:
            factors = factors_of(instance.model)
        model, jtree, log_z = _solve(factors)
        if log_z == -np.inf:
            raise EngineInconsistent("msgForward gives log Z = -inf")
        floored = False
        if workarounds and any(np.any(f.table == 0) for f in factors if f.nvar):
            factors = [
                gm.Factor(f.vars, np.where(f.table > 0, f.table, FLOOR * f.table.max()))
                if f.nvar and f.table.max() > 0
                else f
                for f in factors
            ]
            model, jtree, _ = _solve(factors)
            floored = True
        variables = [gm.Var(k, int(c)) for k, c in enumerate(instance.model.cards)]
        beliefs = jtree.beliefs([gm.VarSet([x]) for x in variables])
        marginals = [np.asarray(beliefs[gm.VarSet([x])].table, dtype=np.float64) for x in variables]
    return EngineOutput(marginals, log_z, details={"zeros_floored": floored})
