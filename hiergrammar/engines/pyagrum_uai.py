"""Engines ``pyagrum_uai`` (pyAgrum reads the file: ``loadMRF``) and ``pyagrum_mrf`` (a
``MarkovRandomField`` built from our parse of the file), both solved by
``ShaferShenoyMRFInference`` on one thread. pyAgrum names the variables ``"0"``, ``"1"``, ...;
it gives no partition function for a Markov random field."""

from __future__ import annotations

from typing import Any

import numpy as np

from hiergrammar.engines import EngineInconsistent, EngineOutput

__all__ = ["build_mrf", "run_pyagrum_mrf", "run_pyagrum_uai"]


def _solve(mrf_module: Any, mrf: Any, n: int) -> EngineOutput:
    import pyagrum as gum

    inference = mrf_module.ShaferShenoyMRFInference(mrf)
    inference.setNumberOfThreads(1)
    try:
        inference.makeInference()
        marginals = [np.asarray(inference.posterior(str(k)).toarray()) for k in range(n)]
    except gum.GumException as err:
        text = str(err)
        if "zero" in text.lower() or "incompatible" in text.lower():
            raise EngineInconsistent(f"{type(err).__name__}: {text}") from None
        raise
    return EngineOutput(marginals)


def run_pyagrum_uai(instance: Any, workarounds: bool = True) -> EngineOutput:
    """``loadMRF(path)`` then exact inference."""
    from hiergrammar.crosscheck import EngineSkipped

    if instance.path is None:
        raise EngineSkipped("it reads the UAI file, and this model has none")
    import pyagrum.markov_random_field as mrf

    return _solve(mrf, mrf.loadMRF(str(instance.path)), instance.model.n_variables)


def build_mrf(model: Any) -> Any:
    """A pyAgrum ``MarkovRandomField`` holding ``model``'s factors (float64; factors on the same
    variables are multiplied into one, as pyAgrum keeps one factor per set of variables)."""
    import pyagrum as gum
    import pyagrum.markov_random_field as mrf

    field = mrf.MarkovRandomField()
    for k, card in enumerate(model.cards):
        field.add(gum.RangeVariable(str(k), "", 0, int(card) - 1))
    merged: dict[frozenset, tuple[tuple[int, ...], np.ndarray]] = {}
    for scope, table in zip(model.scopes, model.tables, strict=True):
        if not scope:
            continue
        key = frozenset(scope)
        if key in merged:
            first, acc = merged[key]
            aligned = np.transpose(table, [scope.index(v) for v in first])
            merged[key] = (first, acc * aligned)
        else:
            merged[key] = (scope, np.array(table, dtype=np.float64))
    for scope, table in merged.values():
        factor = field.addFactor([str(v) for v in scope])
        # pyAgrum's fill order: its first variable changes fastest (toarray's axes are its
        # variables in reverse order)
        axes = [scope.index(int(name)) for name in reversed(factor.names)]
        factor.fillWith(np.transpose(table, axes).ravel().tolist())
    return field


def run_pyagrum_mrf(instance: Any, workarounds: bool = True) -> EngineOutput:
    """The model built in memory (no file reader), then exact inference."""
    import pyagrum.markov_random_field as mrf

    model = instance.model
    if any(
        not scope and not float(t) > 0 for scope, t in zip(model.scopes, model.tables, strict=False)
    ):
        raise EngineInconsistent("a constant factor is 0: Z = 0")
    return _solve(mrf, build_mrf(model), model.n_variables)
