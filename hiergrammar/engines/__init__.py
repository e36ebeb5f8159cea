"""Inference engines for cross-checks on UAI instances, and their known defects.

The registry is light: it names each engine, the library it needs and the module that runs it,
and imports nothing heavy. An engine's module is imported only when the engine runs (pgmpy,
torch and funsor take seconds to import).

An engine is a function ``run(instance, workarounds=True) -> EngineOutput`` in its module
(:data:`ENGINES` says which); ``instance`` is a :class:`~hiergrammar.engines.uai_check.
UAIInstance` (the model as parsed by :func:`hiergrammar.uai.read_uai`, and the file it came
from, if any). It raises :class:`~hiergrammar.crosscheck.EngineSkipped` when it does not apply
(with the reason), :class:`EngineInconsistent` when it finds that the evidence has probability
zero, and anything else when it fails. ``docs/engines.md`` says how to add one.

Known defects
-------------
:data:`DEFECTS` lists the defects of engines that our instances expose (reproductions in
``docs/engine_findings.md``). A defect has a *trigger*, a property of an instance under which
the engine is known to go wrong; a failure of the engine on an instance that triggers one of its
defects is reported as an *expected failure*, which does not fail a check. Some defects have a
*workaround* the engine applies unless ``workarounds=False``.

Examples
--------
>>> sorted(ENGINES)[:3]
['funsor', 'pgmpy_bp', 'pgmpy_ve']
>>> DEFECTS["pgmpy-bp-early-calibration"].engine
'pgmpy_bp'
>>> ENGINES["pygms_jtree"].library
'pygms'
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "DEFECTS",
    "ENGINES",
    "GRAMMAR_ENGINES",
    "GRAMMAR_PREIMPORTS",
    "EngineInconsistent",
    "EngineOutput",
    "EngineSpec",
    "KnownDefect",
    "available",
    "grammar_cost_models",
    "grammar_runner",
    "runner",
]


class EngineInconsistent(Exception):
    """Raised by an engine that reports the evidence as impossible (``Z = 0``)."""


@dataclass
class EngineOutput:
    """What an engine computed.

    ``marginals[k]``: ``(cards[k],)``, the (possibly unnormalised) posterior of variable ``k``;
    ``log_z``: the natural log of the partition function, or None where the engine does not
    give it (``-inf`` means the engine found ``Z = 0``); ``details``: anything worth reporting
    (iterations, settings).
    """

    marginals: list[np.ndarray]
    log_z: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EngineSpec:
    """An engine of the UAI cross-check.

    Attributes
    ----------
    name : str
    library : str
        The import name of the library it needs (checked without importing it).
    module : str
        The module holding its ``run`` function.
    description : str
        What runs, in a line.
    gives_log_z : bool
        Whether it gives the partition function.
    reads_file : bool
        Whether it reads the UAI file itself (else it takes our parse of it).
    grammar : bool
        Whether :mod:`hiergrammar.crosscheck` also runs it on a grammar in-process.
    preimport : str
        The module to import before timing the engine (default: ``library``).
    """

    name: str
    library: str
    module: str
    description: str
    gives_log_z: bool
    reads_file: bool = False
    grammar: bool = False
    preimport: str = ""


@dataclass(frozen=True)
class KnownDefect:
    """A defect of an engine found by the suite (``docs/engine_findings.md``, section ``id``).

    ``trigger`` names a predicate of :mod:`hiergrammar.engines.triggers` that tells whether an
    instance exposes it; ``workaround`` says whether the engine applies one (turned off by
    ``workarounds=False``).
    """

    id: str
    engine: str
    version: str
    summary: str
    trigger: str
    workaround: bool = False


#: The engines of ``hiergrammar crosscheck --uai``, in run order.
ENGINES: dict[str, EngineSpec] = {
    spec.name: spec
    for spec in (
        EngineSpec(
            "uai_tree",
            "numpy",
            "hiergrammar.engines.tree",
            "our sum-product on the file's factor graph (tree-structured files only)",
            gives_log_z=True,
        ),
        EngineSpec(
            "pgmpy_ve",
            "pgmpy",
            "hiergrammar.engines.pgmpy_uai",
            "pgmpy UAIReader, VariableElimination.query per variable",
            gives_log_z=True,
            reads_file=True,
            preimport="pgmpy.inference",
        ),
        EngineSpec(
            "pgmpy_bp",
            "pgmpy",
            "hiergrammar.engines.pgmpy_uai",
            "pgmpy UAIReader, BeliefPropagation (junction tree) calibrated once",
            gives_log_z=False,
            reads_file=True,
            preimport="pgmpy.inference",
        ),
        EngineSpec(
            "pyagrum_uai",
            "pyagrum",
            "hiergrammar.engines.pyagrum_uai",
            "pyAgrum loadMRF, ShaferShenoyMRFInference",
            gives_log_z=False,
            reads_file=True,
            preimport="pyagrum.markov_random_field",
        ),
        EngineSpec(
            "pyagrum_mrf",
            "pyagrum",
            "hiergrammar.engines.pyagrum_uai",
            "pyAgrum MarkovRandomField built from our parse, ShaferShenoyMRFInference",
            gives_log_z=False,
            preimport="pyagrum.markov_random_field",
        ),
        EngineSpec(
            "pygms_jtree",
            "pygms",
            "hiergrammar.engines.pygms_engine",
            "pyGMs readUai, junction tree (wmb.JTree, min-fill order)",
            gives_log_z=True,
            reads_file=True,
            grammar=True,
        ),
        EngineSpec(
            "funsor",
            "funsor",
            "hiergrammar.engines.funsor_engine",
            "funsor (numpy backend) sum-product, all marginals by one adjoint pass",
            gives_log_z=True,
            grammar=True,
        ),
        EngineSpec(
            "pomegranate_bp",
            "pomegranate",
            "hiergrammar.engines.pomegranate_engine",
            "pomegranate FactorGraph (torch, float64), loopy BP for the tree's diameter",
            gives_log_z=False,
            grammar=True,
            preimport="pomegranate.factor_graph",
        ),
    )
}

#: Known defects by id (the sections of ``docs/engine_findings.md``).
DEFECTS: dict[str, KnownDefect] = {
    d.id: d
    for d in (
        KnownDefect(
            "pgmpy-bp-early-calibration",
            "pgmpy_bp",
            "pgmpy 1.1.2",
            "BeliefPropagation.calibrate stops when neighbouring clique marginals are "
            "np.allclose (atol 1e-8): with Z < 1e-8 every belief passes before the messages "
            "have crossed the tree, and the marginals are wrong",
            "tiny_partition_function",
        ),
        KnownDefect(
            "pyagrum-uai-scope-order",
            "pyagrum_uai",
            "pyAgrum 3.3.1",
            "loadMRF reads a factor's table right only when its scope lists the variables in "
            "decreasing index order; other orders give wrong tables, silently",
            "scope_not_descending",
        ),
        KnownDefect(
            "pyagrum-uai-float32",
            "pyagrum_uai",
            "pyAgrum 3.3.1",
            "the UAI readers parse every number as float32 (0.3 -> 0.30000001192...), so "
            "answers are off by ~1e-8, and potentials below ~1e-38 become 0",
            "float32_inexact",
        ),
        KnownDefect(
            "pygms-jtree-zeros",
            "pygms_jtree",
            "pyGMs 0.4.1",
            "JTree.beliefs() returns NaN marginals when a factor has an exact zero (the "
            "backward pass divides messages in log space: -inf - -inf); log Z is right",
            "has_zero_entries",
            workaround=True,
        ),
        KnownDefect(
            "pomegranate-early-stop",
            "pomegranate_bp",
            "pomegranate 1.1.2",
            "FactorGraph's stopping test KLDivLoss(log(q + 1e-8), p) < tol goes negative once "
            "successive marginals agree to ~1e-8, so even tol=0 stops before the messages "
            "have crossed a tree",
            "long_paths",
            workaround=True,
        ),
        KnownDefect(
            "funsor-jax-imported",
            "funsor",
            "funsor 0.4.8",
            "with the numpy or torch backend, lazy evaluation raises TypeError (isinstance(x, "
            "None)) as soon as any module has imported jax",
            "jax_imported",
            workaround=True,
        ),
    )
}


def available(name: str) -> str | None:
    """None if engine ``name`` can run here, else the reason (its library is missing).

    Examples
    --------
    >>> available("uai_tree") is None
    True
    """
    spec = ENGINES[name]
    if importlib.util.find_spec(spec.library) is None:
        extra = "" if spec.library == "numpy" else " (pip install 'hiergrammar[engines]')"
        return f"{spec.library} is not installed{extra}"
    return None


def runner(name: str) -> Callable[..., EngineOutput]:
    """The ``run`` function of engine ``name`` (imports its module).

    Examples
    --------
    >>> runner("uai_tree").__name__
    'run_uai_tree'
    """
    spec = ENGINES[name]
    return getattr(importlib.import_module(spec.module), f"run_{name}")


# -- the engines that hiergrammar.crosscheck runs on a grammar in-process --------------------------
#: Engine names that :mod:`hiergrammar.crosscheck` runs too.
GRAMMAR_ENGINES: tuple[str, ...] = tuple(name for name, spec in ENGINES.items() if spec.grammar)

#: Modules :mod:`hiergrammar.crosscheck` imports before timing these engines (seconds each).
GRAMMAR_PREIMPORTS: dict[str, str] = {
    "pygms_jtree": "pygms",
    "funsor": "funsor",
    "pomegranate_bp": "pomegranate.factor_graph",
}


def grammar_runner(name: str) -> Callable:
    """A runner for :mod:`hiergrammar.crosscheck`: ``(grammar, ev, prior, memory_budget=None)
    -> (marginals per level (width_l, card_l), log evidence)``, running engine ``name`` on the
    grammar's UAI model (:func:`hiergrammar.uai.grammar_model`) in-process."""

    def run(grammar: Any, ev: np.ndarray, prior: np.ndarray, memory_budget: Any = None):
        from hiergrammar.engines.uai_check import run_on_grammar

        return run_on_grammar(name, grammar, ev, prior, memory_budget=memory_budget)

    run.__name__ = f"run_{name}"
    return run


def grammar_cost_models() -> dict[str, dict[str, float]]:
    """Cost models (features of :func:`hiergrammar.crosscheck.cost_features`) of the
    :data:`GRAMMAR_ENGINES`, measured on the development machine (see
    ``benchmarks/uai_engines.py``)."""
    # seconds measured on the suite (2 shared cores): pyGMs 0.03 s at 7 variables, 1.4 s at
    # 255; funsor 0.1 s and 4.9 s; pomegranate 0.03 s and 2.5 s (its BP runs ~2L iterations)
    return {
        "pygms_jtree": {"intercept": 5e-3, "V": 5e-3, "E": 4e-7},
        "funsor": {"intercept": 2e-2, "V": 2e-2, "E": 2e-7},
        "pomegranate_bp": {"intercept": 2e-2, "V": 1e-2, "E": 2e-6},
    }
