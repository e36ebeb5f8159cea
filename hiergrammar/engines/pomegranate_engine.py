"""Engine ``pomegranate_bp``: pomegranate's ``FactorGraph`` (torch, float64), loopy
sum-product BP with a flooding schedule, exact on a tree once the messages have crossed it.

Each variable is a ``Categorical`` "marginal" node holding the product of its unary factors (its
prior, its soft evidence); each larger factor is a ``JointCategorical`` (pomegranate requires
its table to sum to 1, which changes no marginal), joined to its variables in the order of its
axes. BP runs ``diameter + 2`` iterations (the longest path of the factor graph). It gives no
partition function.

Known defect ``pomegranate-early-stop``: pomegranate's stopping test ends BP before the
messages have crossed the tree, even with ``tol=0``. The workaround (on unless
``workarounds=False``) sets ``tol = -1`` on the model after construction (the constructor
refuses a negative ``tol``), so all iterations run; without it the engine uses ``tol=0``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from hiergrammar.engines import EngineInconsistent, EngineOutput

__all__ = ["MAX_VARIABLES", "run_pomegranate_bp"]

#: Skipped above this many variables (pure-Python message loop: minutes beyond).
MAX_VARIABLES = 600


def run_pomegranate_bp(instance: Any, workarounds: bool = True) -> EngineOutput:
    """Marginals (see the module docstring)."""
    from hiergrammar.crosscheck import EngineSkipped
    from hiergrammar.engines.triggers import diameter

    model = instance.model
    if model.n_variables > MAX_VARIABLES:
        raise EngineSkipped(f"{model.n_variables} variables > MAX_VARIABLES = {MAX_VARIABLES}")
    import torch
    from pomegranate.distributions import Categorical, JointCategorical
    from pomegranate.factor_graph import FactorGraph

    unary = [np.ones(int(c)) for c in model.cards]
    joint = []
    for scope, table in zip(model.scopes, model.tables, strict=True):
        if len(scope) == 1:
            unary[scope[0]] = unary[scope[0]] * table
        elif len(scope) > 1:
            joint.append((scope, np.asarray(table, dtype=np.float64)))
        elif not float(table) > 0:
            raise EngineInconsistent("a constant factor is 0: Z = 0")
    for k, u in enumerate(unary):
        if not u.sum() > 0:
            raise EngineInconsistent(f"the unary factors of variable {k} are all 0: Z = 0")
    for scope, table in joint:
        if not table.sum() > 0:
            raise EngineInconsistent(f"the factor on {list(scope)} is all 0: Z = 0")
    iterations = diameter(model) + 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nodes = [Categorical(torch.tensor((u / u.sum())[None], dtype=torch.float64)) for u in unary]
        graph = FactorGraph(max_iter=iterations, tol=0.0)
        if workarounds:
            graph.tol = -1.0
        for node in nodes:
            graph.add_marginal(node)
        for scope, table in joint:
            factor = JointCategorical(torch.tensor(table / table.sum(), dtype=torch.float64))
            graph.add_factor(factor)
            for k in scope:  # edges in the order of the table's axes
                graph.add_edge(nodes[k], factor)
        n = model.n_variables
        observed = torch.masked.MaskedTensor(
            torch.zeros(1, n, dtype=torch.int64), mask=torch.zeros(1, n, dtype=torch.bool)
        )
        probs = graph.predict_proba(observed)
    marginals = [p[0].detach().numpy().astype(np.float64) for p in probs]
    return EngineOutput(marginals, details={"max_iter": iterations, "tol": graph.tol})
