"""Cross-validation of exact inference engines on one RHM and one evidence set.

Every engine computes the posterior marginal of every tree node ``h{l}_{i}`` given soft
evidence on the leaves; on a tree all of them are exact, so they must agree to rounding error.

========================  =====================================================================
engine                    what runs
========================  =====================================================================
``tree_bp``               :func:`hiergrammar.bp.tree_bp`, our batched sum-product BP
``pgmpy_bp``              pgmpy ``BeliefPropagation`` on :func:`~hiergrammar.graphs.
                          to_factor_graph` (junction tree, calibrated once; each marginal read
                          from the smallest calibrated clique holding the variable)
``pgmpy_bp_mp``           pgmpy ``BeliefPropagationWithMessagePassing`` on the factor graph
``pgmpy_ve``              pgmpy ``VariableElimination`` on :func:`~hiergrammar.graphs.
                          to_bayesian_network`, leaf evidence as ``virtual_evidence`` (VE on a
                          pgmpy FactorGraph fails upstream: it has no ``states``)
``pyagrum_lazy``          pyAgrum ``LazyPropagation`` on the same rule-choice BN, leaf evidence
                          as likelihoods (skipped if pyAgrum is not installed)
``brute_force``           :func:`hiergrammar.bruteforce.brute_force_marginals`: every tree
                          enumerated (skipped, with the reason, above its tree bound)
========================  =====================================================================

The reference is brute force when it ran, else ``tree_bp``. Log evidence is
``log sum_tree prior(y) m**-N prod_i e_i(x_i)`` (``N`` internal nodes); engines that give it
(tree_bp, pyAgrum, brute force) are compared too.

Example
-------
>>> from hiergrammar.rhm import RHM
>>> rhm = RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0)
>>> ev = rhm.sample(1, seed=1).onehot()[0] * 0.8 + 0.1      # (s**L, v)
>>> results = crosscheck(rhm, ev, engines=["tree_bp", "brute_force"])
>>> [(r.engine, r.status, r.max_abs_delta < 1e-12) for r in results]
[('tree_bp', 'ok', True), ('brute_force', 'ok', True)]
"""

from __future__ import annotations

import importlib
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hiergrammar import graphs
from hiergrammar.rhm import RHM

#: Engines in run order.
ENGINES = ("tree_bp", "pgmpy_bp", "pgmpy_bp_mp", "pgmpy_ve", "pyagrum_lazy", "brute_force")

#: Default tolerance on |Δ marginal| and |Δ log evidence|.
TOLERANCE = 1e-9

#: pgmpy engines are skipped above this many entries in all dense factors together (they hold
#: every rule factor as a dense ``card * v**s`` table and are slow in pure Python).
PGMPY_MAX_ENTRIES = 20_000_000


class EngineSkipped(Exception):
    """Raised by an engine that does not apply to this model (the message says why)."""


@dataclass
class EngineResult:
    """What one engine gave.

    ``marginals[l]``: ``(width_l, card_l)`` posterior of every node of level ``l`` (None unless
    ``status == "ok"``). ``max_abs_delta``: max |Δ marginal| against ``reference`` over all
    nodes and values. ``log_evidence`` / ``log_evidence_delta``: None where the engine does
    not give it. ``status``: ``"ok"``, ``"skipped"`` or ``"error"``; ``message`` says why.
    """

    engine: str
    status: str
    seconds: float
    marginals: list[np.ndarray] | None = None
    log_evidence: float | None = None
    reference: str | None = None
    max_abs_delta: float | None = None
    log_evidence_delta: float | None = None
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def agrees(self, tol: float = TOLERANCE) -> bool:
        """True when the engine ran and matched the reference within ``tol`` (marginals and,
        where both exist, log evidence); skipped engines count as agreeing."""
        if self.status == "skipped":
            return True
        if self.status != "ok" or self.max_abs_delta is None:
            return False
        if not self.max_abs_delta <= tol:
            return False
        return self.log_evidence_delta is None or self.log_evidence_delta <= tol

    def to_dict(self, with_marginals: bool = False) -> dict[str, Any]:
        out = {
            "engine": self.engine,
            "status": self.status,
            "seconds": self.seconds,
            "reference": self.reference,
            "max_abs_delta": self.max_abs_delta,
            "log_evidence": self.log_evidence,
            "log_evidence_delta": self.log_evidence_delta,
            "message": self.message,
        }
        if with_marginals and self.marginals is not None:
            out["marginals"] = {
                graphs.node_name(l, i): row.tolist()
                for l, mg in enumerate(self.marginals)
                for i, row in enumerate(mg)
            }
        return out


# -- engines: each returns (marginals per level (width_l, card_l), log evidence or None) ---------
def marginals_by_level(rhm: RHM, posterior: Callable[[str], Any]) -> list[np.ndarray]:
    """Marginals per level, ``(width_l, card_l)`` each, from ``posterior(name)``: an engine's
    (possibly unnormalised) posterior vector ``(card_l,)`` of the node named ``name``
    (:func:`~hiergrammar.graphs.node_name`). Each row is normalised to sum to 1."""
    out = []
    for level in range(rhm.L + 1):
        rows = np.array(
            [
                np.asarray(posterior(graphs.node_name(level, i)), dtype=np.float64).reshape(-1)
                for i in range(rhm.width(level))
            ]
        )
        out.append(rows / rows.sum(axis=1, keepdims=True))
    return out


def _check_pgmpy_size(rhm: RHM) -> None:
    entries = sum(
        rhm.width(l) * rhm.card(l) * rhm.card(l - 1) ** rhm.s for l in range(1, rhm.L + 1)
    )
    if entries > PGMPY_MAX_ENTRIES:
        raise EngineSkipped(
            f"dense rule factors hold {entries} entries > PGMPY_MAX_ENTRIES = "
            f"{PGMPY_MAX_ENTRIES}; pgmpy would be too slow"
        )


def run_tree_bp(rhm: RHM, ev: np.ndarray, prior: np.ndarray):
    from hiergrammar.bp import tree_bp

    res = tree_bp(rhm, ev[None], prior)
    return [mg[0] for mg in res.marginals], float(res.log_evidence[0])


def run_pgmpy_bp(rhm: RHM, ev: np.ndarray, prior: np.ndarray):
    _check_pgmpy_size(rhm)
    from pgmpy.inference import BeliefPropagation

    # pgmpy's calibration loop stops as soon as neighbouring clique marginals are
    # ``np.allclose`` (atol=1e-8), so uniformly tiny potentials (evidence ~1e-3 on 9 leaves)
    # pass for calibrated before any message has crossed the tree and give wrong marginals.
    # Scaling each leaf's likelihood to max 1 changes no posterior and keeps the potentials
    # away from that absolute tolerance.
    ev = ev / ev.max(axis=1, keepdims=True)
    fg = graphs.to_factor_graph(rhm, evidence=ev, root_prior=prior)
    with np.errstate(divide="ignore", invalid="ignore"):
        # pgmpy divides beliefs by sepset beliefs; 0/0 entries (sharp evidence) are harmless
        # there but warn.
        bp = BeliefPropagation(fg)
        bp.calibrate()
    beliefs = bp.get_clique_beliefs()

    def clique_marginal(name: str) -> np.ndarray:
        clique = min((c for c in beliefs if name in c), key=len)
        return beliefs[clique].marginalize([x for x in clique if x != name], inplace=False).values

    return marginals_by_level(rhm, clique_marginal), None


def run_pgmpy_bp_mp(rhm: RHM, ev: np.ndarray, prior: np.ndarray):
    _check_pgmpy_size(rhm)
    from pgmpy.inference import BeliefPropagationWithMessagePassing

    fg = graphs.to_factor_graph(rhm, evidence=ev, root_prior=prior)
    posteriors = BeliefPropagationWithMessagePassing(fg).query(graphs.variable_names(rhm))
    return marginals_by_level(rhm, lambda name: posteriors[name].values), None


def run_pgmpy_ve(rhm: RHM, ev: np.ndarray, prior: np.ndarray):
    _check_pgmpy_size(rhm)
    from pgmpy.inference import VariableElimination

    bn = graphs.to_bayesian_network(rhm, root_prior=prior)
    virtual = graphs.virtual_evidence_cpds(rhm, ev)

    def query(name: str) -> np.ndarray:
        # A fresh engine per query: pgmpy's virtual evidence rewires the engine's model in place.
        return (
            VariableElimination(bn)
            .query([name], virtual_evidence=virtual, show_progress=False)
            .values
        )

    return marginals_by_level(rhm, query), None


def run_pyagrum_lazy(rhm: RHM, ev: np.ndarray, prior: np.ndarray):
    try:
        import pyagrum as gum
    except ImportError as err:
        raise EngineSkipped(
            "pyAgrum is not installed (pip install 'hiergrammar[engines]')"
        ) from err
    bn = graphs.to_pyagrum_bayesian_network(rhm, root_prior=prior)
    inference = gum.LazyPropagation(bn)
    for i in range(rhm.d):
        inference.addEvidence(graphs.node_name(0, i), ev[i].tolist())
    inference.makeInference()
    marginals = marginals_by_level(rhm, lambda name: inference.posterior(name).toarray())
    return marginals, float(np.log(inference.evidenceProbability()))


def run_brute_force(rhm: RHM, ev: np.ndarray, prior: np.ndarray, max_trees: int | None = None):
    from hiergrammar.bruteforce import MAX_TREES, brute_force_marginals, n_trees

    bound = MAX_TREES if max_trees is None else max_trees
    total = n_trees(rhm)
    if total > bound:
        raise EngineSkipped(f"n_classes*m**N = {total} trees > max_trees = {bound}")
    res = brute_force_marginals(rhm, ev[None], prior, max_trees=bound)
    return [mg[0] for mg in res.marginals], float(res.log_evidence[0])


RUNNERS: dict[str, Callable] = {
    "tree_bp": run_tree_bp,
    "pgmpy_bp": run_pgmpy_bp,
    "pgmpy_bp_mp": run_pgmpy_bp_mp,
    "pgmpy_ve": run_pgmpy_ve,
    "pyagrum_lazy": run_pyagrum_lazy,
    "brute_force": run_brute_force,
}


def _preimport(engines: Sequence[str]) -> None:
    """Import the engines' libraries before timing them (importing pgmpy takes seconds)."""
    modules = {
        "pgmpy_bp": "pgmpy.inference",
        "pgmpy_bp_mp": "pgmpy.inference",
        "pgmpy_ve": "pgmpy.inference",
        "pyagrum_lazy": "pyagrum",
    }
    for engine in engines:
        if engine in modules:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    importlib.import_module(modules[engine])
            except ImportError:
                pass  # the engine reports itself as skipped or failed


def max_abs_delta(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    """Largest |a - b| over all levels (NaN counts as infinitely far)."""
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        diff = np.abs(np.asarray(x) - np.asarray(y))
        if np.isnan(diff).any():
            return float("inf")
        worst = max(worst, float(diff.max(initial=0.0)))
    return worst


def crosscheck(
    rhm: RHM,
    leaf_evidence: np.ndarray,
    root_prior: np.ndarray | None = None,
    engines: Sequence[str] | None = None,
    max_trees: int | None = None,
) -> list[EngineResult]:
    """Run the inference engines on one RHM and one evidence set and compare them.

    ``leaf_evidence``: ``(s**L, v)`` (or ``(1, s**L, v)``) non-negative, with non-zero
    probability under the grammar. ``engines``: names from :data:`ENGINES` (default all).
    ``max_trees``: brute-force bound (default :data:`hiergrammar.bruteforce.MAX_TREES`).

    Returns one :class:`EngineResult` per engine, in :data:`ENGINES` order. An engine that
    raises is reported with ``status="error"`` and its error; one that does not apply with
    ``status="skipped"`` and the reason. The reference is ``brute_force`` if it ran, else
    ``tree_bp`` (run anyway as the reference when not requested, but then not reported).
    """
    ev = graphs.check_leaf_evidence(rhm, leaf_evidence)
    prior = graphs.check_root_prior(rhm, root_prior)
    names = list(ENGINES) if engines is None else list(engines)
    unknown = [e for e in names if e not in RUNNERS]
    if unknown:
        raise ValueError(f"unknown engine(s) {unknown}; choose from {list(ENGINES)}")
    if not names:
        raise ValueError("engines must name at least one engine")
    order = [e for e in ENGINES if e in names]

    results: dict[str, EngineResult] = {}
    to_run = order if "tree_bp" in order else order + ["tree_bp"]
    _preimport(to_run)
    for engine in to_run:
        kwargs = {"max_trees": max_trees} if engine == "brute_force" else {}
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pgmpy's deprecation / FutureWarnings
                marginals, log_ev = RUNNERS[engine](rhm, ev, prior, **kwargs)
        except EngineSkipped as skip:
            results[engine] = EngineResult(
                engine, "skipped", time.perf_counter() - start, message=str(skip)
            )
        except Exception as err:  # an engine's failure is a result, not a crash
            results[engine] = EngineResult(
                engine,
                "error",
                time.perf_counter() - start,
                message=f"{type(err).__name__}: {err}",
                details={"traceback": traceback.format_exc()},
            )
        else:
            results[engine] = EngineResult(
                engine, "ok", time.perf_counter() - start, marginals=marginals, log_evidence=log_ev
            )

    ref_name = next(
        (e for e in ("brute_force", "tree_bp") if e in results and results[e].status == "ok"), None
    )
    if ref_name is not None:
        ref = results[ref_name]
        for res in results.values():
            if res.status != "ok":
                continue
            res.reference = ref_name
            res.max_abs_delta = max_abs_delta(res.marginals, ref.marginals)
            if res.log_evidence is not None and ref.log_evidence is not None:
                res.log_evidence_delta = abs(res.log_evidence - ref.log_evidence)
    else:
        for res in results.values():
            if res.status == "ok":
                res.status = "error"
                res.message = "no reference engine (brute_force or tree_bp) succeeded"
    return [results[e] for e in order]


def format_table(results: Sequence[EngineResult], tol: float = TOLERANCE) -> str:
    """A plain-text table: engine, reference, max |Δ marginal|, |Δ log evidence|, seconds,
    status."""

    def num(x: float | None) -> str:
        return "-" if x is None else f"{x:.2e}"

    header = ("engine", "vs", "max|Δ marginal|", "|Δ log Z|", "seconds", "status")
    rows = []
    for r in results:
        status = r.status
        if r.status == "ok" and not r.agrees(tol):
            status = f"DISAGREES (> {tol:g})"
        if r.message:
            status += f": {r.message}"
        rows.append(
            (
                r.engine,
                r.reference or "-",
                num(r.max_abs_delta),
                num(r.log_evidence_delta),
                f"{r.seconds:.4f}",
                status,
            )
        )
    widths = [max(len(str(row[k])) for row in [header] + rows) for k in range(5)]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(header[:5], widths, strict=True))
        + "  "
        + header[5]
    ]
    lines.append("-" * (sum(widths) + 10 + len(header[5])))
    for row in rows:
        lines.append(
            "  ".join(str(c).ljust(w) for c, w in zip(row[:5], widths, strict=True)) + "  " + row[5]
        )
    return "\n".join(lines)
