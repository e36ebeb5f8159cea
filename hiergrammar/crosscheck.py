"""Cross-validation of exact inference engines on one grammar and one evidence set.

Every engine computes the posterior marginal of every tree node ``h{l}_{i}`` given soft
evidence on the leaves; on a tree all of them are exact, so they must agree to rounding error.
Any :class:`~hiergrammar.grammar.Grammar` is checked: the uniform RHM, weighted (Zipf),
per-level, ambiguous (shared tuples), sparse and filtered grammars.

========================  =====================================================================
engine                    what runs
========================  =====================================================================
``tree_bp``               :func:`hiergrammar.bp.tree_bp`, our batched sum-product BP (the numpy
                          reference backend)
``pgmpy_bp``              pgmpy ``BeliefPropagation`` on :func:`~hiergrammar.graphs.
                          to_factor_graph` (junction tree, calibrated once; each marginal read
                          from the smallest calibrated clique holding the variable; see
                          "A known upstream defect" below)
``pgmpy_bp_mp``           pgmpy ``BeliefPropagationWithMessagePassing`` on the factor graph
``pgmpy_ve``              pgmpy ``VariableElimination`` on :func:`~hiergrammar.graphs.
                          to_bayesian_network`, leaf evidence as ``virtual_evidence`` (VE on a
                          pgmpy FactorGraph fails upstream: it has no ``states``)
``pyagrum_lazy``          pyAgrum ``LazyPropagation`` on the same rule-choice BN, leaf evidence
                          as likelihoods (skipped if pyAgrum is not installed)
``brute_force``           :func:`hiergrammar.bruteforce.brute_force_marginals`: every tree
                          enumerated (skipped, with the reason, above its tree bound)
``pygms_jtree``,          pyGMs' junction tree, funsor's sum-product and pomegranate's factor-
``funsor``,               graph BP on the grammar's UAI model built in memory
``pomegranate_bp``        (:mod:`hiergrammar.engines`; skipped if their library is missing)
========================  =====================================================================

The reference is brute force when it ran, else ``tree_bp``. Log evidence is ``log
P(evidence) = log sum_tree P(tree) prod_i e_i(x_i)`` under the weighted grammar (``P(tree) =
prior(y) m**-N`` for the uniform RHM, ``N`` internal nodes); engines that give it (tree_bp,
pyAgrum, brute force) are compared too.

A known upstream defect
-----------------------
pgmpy's ``BeliefPropagation.calibrate()`` stops as soon as neighbouring clique marginals are
``np.allclose`` (absolute tolerance 1e-8): potentials that are all tiny pass that test before
every message has crossed the junction tree, and the marginals are then wrong (:data:`
PGMPY_BP_EARLY_STOP`). ``pgmpy_bp`` works around it by scaling every factor (leaf evidence,
rule factors, prior) to a maximum of 1, which changes no marginal. Clique products can still be
tiny (sharp evidence on rules of small probability), so after calibrating, ``pgmpy_bp`` checks
that the clique beliefs agree on every sepset (relative to their scale); where they do not,
the engine is reported as skipped, its message naming the defect, and ``details["known_defect"]
== PGMPY_BP_EARLY_STOP``.

Input
-----
Exactly one evidence set, ``(d, v)`` or ``(1, d, v)``, under the contract of
:mod:`hiergrammar.evidence`; ``root_prior`` ``(card_L,)`` or ``(1, card_L)``. Evidence with
zero probability under the grammar is bad input: :func:`crosscheck` raises
:class:`~hiergrammar.validation.ZeroEvidenceError` before any engine runs.

Statuses and verdicts
---------------------
Each engine gives an :class:`EngineResult` with ``status``:

* ``"ok"``: it ran; ``max_abs_delta`` (and ``log_evidence_delta``) compare it to the reference;
* ``"skipped"``: it does not apply, and ``message`` says why: a library is missing, a size
  bound (trees, dense factor entries, the memory budget) or the time limit (its estimated time
  exceeds ``max_seconds``);
* ``"error"``: it raised (a MemoryError included); ``message`` holds the exception.

:meth:`EngineResult.verdict` turns that into ``"agrees"``, ``"disagrees"`` (only for numbers
that differ by more than the tolerance, NaN included), ``"skipped"`` or ``"error"``, and
:func:`overall_verdict` summarises a run: ``"disagreement"`` if any engine disagrees, else
``"error"`` if any engine failed, else ``"agree"``.

Time estimates
--------------
Before an engine runs, :func:`estimate_seconds` predicts its time from the model's sizes with
a linear cost model per engine (:data:`COST_MODELS`), whose features are

* ``V``: tree nodes, ``sum_l width_l``; ``V2 = V**2``, ``V3 = V**3``;
* ``E``: entries of the dense rule factors, ``sum_l width_l * card_l * card_{l-1}**s``;
* ``C``: entries of the Bayesian network's tables, ``sum_l width_l * s * card_l * m_l *
  card_{l-1}``; ``VC = V * C`` and ``VE = V * E`` (engines that rerun per variable);
* ``TN``: trees times nodes, ``n_trees * (d + V)`` (brute force);
* ``F``: :func:`hiergrammar.bp.flops_per_sample` (tree BP).

The coefficients were fitted (non-negative least squares on relative error) to the CPU seconds
of every engine on ladders of models (``v`` 2..64, ``s`` 2..3, ``L`` up to 10; 27 to 43 runs
per engine, each ladder stopped past 12 s) on the development machine: a 2-core x86-64 VM,
Python 3.11, numpy 2, pgmpy 1.0, pyAgrum 3.3. On runs above 0.05 s the estimate was within
0.76-1.26 of the measurement for every engine but tree BP (never above 0.1 s on one evidence
set, so its constants are set about twice the fit). Examples: pgmpy's VE at ``v=3, L=6``
measured 14.6 s (estimate 15 s) and is estimated at 78 s at ``L=7``. The sizes drive the
costs: VE and message-passing BP rerun per variable and grow with ``V**2``-``V**3`` whatever
``v``; junction-tree BP grows with the dense factor entries. ``python -m
benchmarks.crosscheck_cost_model`` re-measures on another machine and prints the fitted
constants and the ratios of estimate to measurement for the shipped and the refitted ones.

Examples
--------
>>> from hiergrammar.rhm import RHM
>>> rhm = RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0)
>>> ev = rhm.sample(1, seed=1).onehot()[0] * 0.8 + 0.1      # (s**L, v)
>>> results = crosscheck(rhm, ev, engines=["tree_bp", "brute_force"])
>>> [(r.engine, r.status, r.max_abs_delta < 1e-12) for r in results]
[('tree_bp', 'ok', True), ('brute_force', 'ok', True)]
>>> overall_verdict(results)
'agree'
"""

from __future__ import annotations

import importlib
import math
import numbers
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hiergrammar import engines as _extra_engines
from hiergrammar import graphs
from hiergrammar.artifacts import progress
from hiergrammar.evidence import check_leaf_evidence, check_root_prior
from hiergrammar.grammar import check_grammar
from hiergrammar.validation import (
    InputError,
    check_float,
    check_int,
    check_memory,
)

__all__ = [
    "COST_MODELS",
    "DEFAULT_MAX_SECONDS",
    "PGMPY_BP_EARLY_STOP",
    "ENGINES",
    "PGMPY_MAX_ENTRIES",
    "TOLERANCE",
    "VERDICTS",
    "EngineResult",
    "EngineSkipped",
    "cost_features",
    "crosscheck",
    "estimate_seconds",
    "format_table",
    "marginals_by_level",
    "max_abs_delta",
    "overall_verdict",
]

#: Engines in run order (the last ones come from :mod:`hiergrammar.engines`).
ENGINES = ("tree_bp", "pgmpy_bp", "pgmpy_bp_mp", "pgmpy_ve", "pyagrum_lazy", "brute_force")
ENGINES += _extra_engines.GRAMMAR_ENGINES

#: Default tolerance on ``|Δ marginal|`` and ``|Δ log evidence|``.
TOLERANCE = 1e-9

#: The name under which crosscheck reports pgmpy's ``BeliefPropagation`` early stop on tiny
#: potentials (see the module docstring).
PGMPY_BP_EARLY_STOP = "pgmpy BeliefPropagation early stop on tiny potentials"

#: Default limit on an engine's estimated seconds.
DEFAULT_MAX_SECONDS = 30.0

#: pgmpy engines are skipped above this many entries in all dense factors together (they hold
#: every rule factor as a dense ``card * v**s`` table and are slow in pure Python).
PGMPY_MAX_ENTRIES = 20_000_000

#: The values :meth:`EngineResult.verdict` returns.
VERDICTS = ("agrees", "disagrees", "skipped", "error")

#: Seconds ``~ intercept + sum(coefficient * feature)`` per engine (features: :func:`cost_features`;
#: fitted on the development machine, see the module docstring).
COST_MODELS: dict[str, dict[str, float]] = {
    "tree_bp": {"intercept": 1e-3, "V": 1e-7, "F": 1e-8},
    "pgmpy_bp": {"intercept": 5.4e-3, "V": 1.7e-3, "V2": 3.7e-5, "E": 1.6e-4},
    "pgmpy_bp_mp": {"intercept": 1.5e-3, "V": 1.0e-3, "V2": 6.1e-5, "E": 8.2e-5},
    "pgmpy_ve": {"intercept": 1.9e-3, "V": 6.8e-5, "V2": 6.6e-4, "V3": 2.1e-6, "VC": 9.7e-9},
    "pyagrum_lazy": {"intercept": 2.8e-4, "V": 2.7e-4, "V2": 3.8e-7, "C": 6.2e-8},
    "brute_force": {"intercept": 5.5e-4, "TN": 1.8e-8},
    **_extra_engines.grammar_cost_models(),
}


class EngineSkipped(Exception):
    """Raised by an engine that does not apply to this model (the message says why);
    ``details`` go into :attr:`EngineResult.details`."""

    def __init__(self, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.details = dict(details or {})


@dataclass
class EngineResult:
    """What one engine gave.

    ``marginals[l]``: ``(width_l, card_l)`` posterior of every node of level ``l`` (None unless
    ``status == "ok"``). ``max_abs_delta``: max ``|Δ marginal|`` against ``reference`` over all
    nodes and values. ``log_evidence`` / ``log_evidence_delta``: None where the engine does
    not give it. ``status``: ``"ok"``, ``"skipped"`` or ``"error"``; ``message`` says why.
    ``estimated_seconds``: the cost model's prediction (None if not estimated).
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
    estimated_seconds: float | None = None

    def verdict(self, tol: float = TOLERANCE) -> str:
        """``"agrees"``, ``"disagrees"``, ``"skipped"`` or ``"error"``.

        ``"disagrees"`` is reserved for numbers: the engine ran and its marginals (or log
        evidence, where both exist) differ from the reference's by more than ``tol`` (NaN
        counts as differing). A failure, or an ok engine with nothing to compare to, is
        ``"error"``.

        Examples
        --------
        >>> EngineResult("pgmpy_ve", "error", 0.1, message="MemoryError: ").verdict()
        'error'
        >>> EngineResult("x", "ok", 0.1, reference="tree_bp", max_abs_delta=0.3).verdict()
        'disagrees'
        """
        if self.status == "skipped":
            return "skipped"
        if self.status != "ok" or self.max_abs_delta is None:
            return "error"
        if not self.max_abs_delta <= tol:
            return "disagrees"
        if self.log_evidence_delta is not None and not self.log_evidence_delta <= tol:
            return "disagrees"
        return "agrees"

    def agrees(self, tol: float = TOLERANCE) -> bool:
        """True when the engine ran and matched the reference within ``tol`` (marginals and,
        where both exist, log evidence); skipped engines count as agreeing, failed ones do not
        (see :meth:`verdict` to tell a failure from a disagreement)."""
        return self.verdict(tol) in ("agrees", "skipped")

    def to_dict(self, with_marginals: bool = False, tol: float = TOLERANCE) -> dict[str, Any]:
        """A JSON-ready summary (marginals keyed by node name with ``with_marginals``)."""
        out = {
            "engine": self.engine,
            "status": self.status,
            "verdict": self.verdict(tol),
            "seconds": self.seconds,
            "estimated_seconds": self.estimated_seconds,
            "reference": self.reference,
            "max_abs_delta": self.max_abs_delta,
            "log_evidence": self.log_evidence,
            "log_evidence_delta": self.log_evidence_delta,
            "message": self.message,
        }
        if "known_defect" in self.details:
            out["known_defect"] = self.details["known_defect"]
        if with_marginals and self.marginals is not None:
            out["marginals"] = {
                graphs.node_name(l, i): row.tolist()
                for l, mg in enumerate(self.marginals)
                for i, row in enumerate(mg)
            }
        return out


def overall_verdict(results: Sequence[EngineResult], tol: float = TOLERANCE) -> str:
    """One word for a run: ``"disagreement"`` if any engine's numbers differ beyond ``tol``,
    else ``"error"`` if any engine failed, else ``"agree"`` (skipped engines do not count).

    Parameters
    ----------
    results : sequence of EngineResult
        What :func:`crosscheck` returned.
    tol : float
        The agreement tolerance.

    Returns
    -------
    str
        ``"agree"``, ``"disagreement"`` or ``"error"``.

    Examples
    --------
    >>> overall_verdict([EngineResult("pgmpy_ve", "skipped", 0.0, message="too slow")])
    'agree'
    """
    verdicts = {r.verdict(tol) for r in results}
    if "disagrees" in verdicts:
        return "disagreement"
    if "error" in verdicts:
        return "error"
    return "agree"


# -- cost model -----------------------------------------------------------------------------------
def cost_features(rhm: Any) -> dict[str, float]:
    """The sizes the cost model uses (see the module docstring), as floats.

    Parameters
    ----------
    rhm : Grammar
        The model (any :class:`~hiergrammar.grammar.Grammar`).

    Returns
    -------
    dict
        ``V``, ``V2``, ``V3``, ``E``, ``VE``, ``C``, ``VC``, ``TN``, ``F`` (``TN`` is ``inf``
        when the tree count overflows a float).

    Examples
    --------
    >>> from hiergrammar.rhm import RHM
    >>> f = cost_features(RHM(v=3, n_classes=2, m=2, s=2, L=1, seed=0))
    >>> f["V"], f["E"], f["TN"]           # 3 nodes; one 2x3x3 factor; 4 trees x (2 + 3)
    (3.0, 18.0, 20.0)
    """
    from hiergrammar.bp import flops_per_sample
    from hiergrammar.bruteforce import log10_n_trees

    s = int(rhm.s)
    nodes = sum(int(rhm.width(l)) for l in range(rhm.L + 1))
    dense = sum(
        int(rhm.width(l)) * int(rhm.card(l)) * int(rhm.card(l - 1)) ** s
        for l in range(1, rhm.L + 1)
    )
    tables = sum(
        int(rhm.width(l)) * s * int(rhm.card(l)) * int(rhm.rules[l].shape[1]) * int(rhm.card(l - 1))
        for l in range(1, rhm.L + 1)
    )
    log10_trees = log10_n_trees(rhm)
    trees = 10.0**log10_trees if log10_trees < 300 else math.inf
    V, E, C = float(nodes), float(dense), float(tables)
    return {
        "V": V,
        "V2": V * V,
        "V3": V * V * V,
        "E": E,
        "VE": V * E,
        "C": C,
        "VC": V * C,
        "TN": trees * (int(rhm.d) + nodes),
        "F": float(flops_per_sample(rhm)),
    }


def estimate_seconds(rhm: Any, engine: str, features: dict[str, float] | None = None) -> float:
    """The cost model's estimate of ``engine``'s seconds on ``rhm`` (may be ``inf``).

    Parameters
    ----------
    rhm : Grammar
        The model (any :class:`~hiergrammar.grammar.Grammar`).
    engine : str
        One of :data:`ENGINES`.
    features : dict, optional
        :func:`cost_features` of ``rhm`` (computed if not given).

    Returns
    -------
    float
        Seconds.

    Examples
    --------
    >>> from hiergrammar.rhm import RHM
    >>> estimate_seconds(RHM(v=3, n_classes=2, m=2, s=2, L=2, seed=0), "tree_bp") < 1
    True
    """
    model = COST_MODELS[_check_engine_name(engine)]
    features = cost_features(rhm) if features is None else features
    total = model.get("intercept", 0.0)
    for name, coefficient in model.items():
        if name != "intercept":
            total += coefficient * features[name]
    return float(total)


def _format_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "more than 1e300 s"
    return f"{seconds:.3g} s"


# -- engines: each returns (marginals per level (width_l, card_l), log evidence or None) ---------
def marginals_by_level(rhm: Any, posterior: Callable[[str], Any]) -> list[np.ndarray]:
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


def _memory_or_skip(what: str, n_bytes: int, memory_budget: int | str | None) -> None:
    """A memory-budget refusal inside one engine skips that engine, with the reason."""
    try:
        check_memory(what, n_bytes, memory_budget)
    except InputError as err:
        raise EngineSkipped(str(err)) from None


def _check_pgmpy_size(rhm: Any, memory_budget: int | str | None = None) -> None:
    entries = int(cost_features(rhm)["E"])
    if entries > PGMPY_MAX_ENTRIES:
        raise EngineSkipped(
            f"dense rule factors hold {entries} entries > PGMPY_MAX_ENTRIES = "
            f"{PGMPY_MAX_ENTRIES}; pgmpy would be too slow"
        )
    # The factor graph, the junction tree's clique potentials, their beliefs and messages:
    # about four dense copies of every rule factor.
    _memory_or_skip("pgmpy's dense factors", 4 * 8 * entries, memory_budget)


def run_tree_bp(rhm: Any, ev: np.ndarray, prior: np.ndarray, memory_budget=None):
    from hiergrammar.bp import tree_bp

    try:
        res = tree_bp(rhm, ev[None], prior, memory_budget=memory_budget, backend="numpy")
    except InputError as err:
        if "memory budget" in str(err):
            raise EngineSkipped(str(err)) from None
        raise
    return [mg[0] for mg in res.marginals], float(res.log_evidence[0])


#: Whether ``pgmpy_bp`` scales its factors to a maximum of 1 (the workaround; tests switch it
#: off to show that the defect is detected and named).
_SCALE_FOR_PGMPY = True


def _calibration_gap(bp: Any) -> tuple[float, list[str]]:
    """The largest difference between the normalised marginals that two neighbouring cliques
    of a calibrated pgmpy junction tree give their sepset (0 up to rounding when calibrated),
    and that sepset."""
    worst, where = 0.0, []
    beliefs = bp.get_clique_beliefs()
    for c1, c2 in bp.junction_tree.edges():
        sepset = set(c1) & set(c2)
        marginals = []
        for clique in (c1, c2):
            others = [x for x in clique if x not in sepset]
            phi = beliefs[clique].marginalize(others, inplace=False)
            phi = phi.copy()
            phi.values = phi.values.transpose([phi.variables.index(x) for x in sorted(sepset)])
            total = phi.values.sum()
            marginals.append(phi.values / total if total > 0 else phi.values)
        gap = float(np.abs(marginals[0] - marginals[1]).max())
        if not gap <= worst:  # NaN counts as the worst
            worst, where = gap, sorted(sepset)
    return worst, where


def run_pgmpy_bp(rhm: Any, ev: np.ndarray, prior: np.ndarray, memory_budget=None):
    _check_pgmpy_size(rhm, memory_budget)
    from pgmpy.inference import BeliefPropagation

    # pgmpy's calibration loop stops as soon as neighbouring clique marginals are
    # ``np.allclose`` (atol=1e-8), so uniformly tiny potentials (evidence ~1e-3 on 9 leaves,
    # rules of small probability) pass for calibrated before any message has crossed the tree
    # and give wrong marginals. Scaling each factor to max 1 changes no posterior and keeps the
    # potentials away from that absolute tolerance.
    fg = graphs.to_factor_graph(rhm, evidence=ev, root_prior=prior, scale_to_one=_SCALE_FOR_PGMPY)
    with np.errstate(divide="ignore", invalid="ignore"):
        # pgmpy divides beliefs by sepset beliefs; 0/0 entries (sharp evidence) are harmless
        # there but warn.
        bp = BeliefPropagation(fg)
        bp.calibrate()
        gap, sepset = _calibration_gap(bp)
    if not gap <= TOLERANCE:
        raise EngineSkipped(
            f"known upstream defect, {PGMPY_BP_EARLY_STOP}: calibrate() stopped with clique "
            f"beliefs that disagree by {gap:.2g} on the sepset {sepset} (its convergence test "
            "np.allclose(atol=1e-8) passes for potentials that are all tiny), so its marginals "
            "are wrong here",
            {"known_defect": PGMPY_BP_EARLY_STOP, "calibration_gap": gap},
        )
    beliefs = bp.get_clique_beliefs()

    def clique_marginal(name: str) -> np.ndarray:
        clique = min((c for c in beliefs if name in c), key=len)
        return beliefs[clique].marginalize([x for x in clique if x != name], inplace=False).values

    return marginals_by_level(rhm, clique_marginal), None


def run_pgmpy_bp_mp(rhm: Any, ev: np.ndarray, prior: np.ndarray, memory_budget=None):
    _check_pgmpy_size(rhm, memory_budget)
    from pgmpy.inference import BeliefPropagationWithMessagePassing

    fg = graphs.to_factor_graph(rhm, evidence=ev, root_prior=prior)
    posteriors = BeliefPropagationWithMessagePassing(fg).query(graphs.variable_names(rhm))
    return marginals_by_level(rhm, lambda name: posteriors[name].values), None


def run_pgmpy_ve(rhm: Any, ev: np.ndarray, prior: np.ndarray, memory_budget=None):
    _check_pgmpy_size(rhm, memory_budget)
    from pgmpy.inference import VariableElimination

    bn = graphs.to_bayesian_network(rhm, root_prior=prior, memory_budget=memory_budget)
    virtual = graphs.virtual_evidence_cpds(rhm, ev)

    def query(name: str) -> np.ndarray:
        # A fresh engine per query: pgmpy's virtual evidence rewires the engine's model in place.
        return (
            VariableElimination(bn)
            .query([name], virtual_evidence=virtual, show_progress=False)
            .values
        )

    return marginals_by_level(rhm, query), None


def run_pyagrum_lazy(rhm: Any, ev: np.ndarray, prior: np.ndarray, memory_budget=None):
    try:
        import pyagrum as gum
    except ImportError as err:
        raise EngineSkipped(
            "pyAgrum is not installed (pip install 'hiergrammar[engines]')"
        ) from err
    from hiergrammar.evidence import rescale_by_powers_of_two

    _memory_or_skip(
        "pyAgrum's conditional tables", 4 * 8 * int(cost_features(rhm)["C"]), memory_budget
    )
    bn = graphs.to_pyagrum_bayesian_network(rhm, root_prior=prior)
    inference = gum.LazyPropagation(bn)
    # One thread: on these small junction trees more threads only add overhead, and under
    # load they made pyAgrum 20x slower than its single-threaded (cost-model) time.
    inference.setNumberOfThreads(1)
    # Powers of two scale each likelihood exactly; their logs go back into log P(evidence),
    # which keeps pyAgrum's (linear-scale) evidence probability away from overflow.
    scaled, exponents = rescale_by_powers_of_two(ev)
    for i in range(rhm.d):
        inference.addEvidence(graphs.node_name(0, i), scaled[i].tolist())
    try:
        inference.makeInference()
        marginals = marginals_by_level(rhm, lambda name: inference.posterior(name).toarray())
    except gum.IncompatibleEvidence as err:
        # crosscheck() has checked that the evidence is possible (P > 0) before any engine
        # runs, so this is pyAgrum's linear-scale product of likelihoods underflowing to 0
        # (seen from about 1000 leaves): a range limit of the engine, like a size bound.
        raise EngineSkipped(
            f"pyAgrum's evidence probability underflows at d = {rhm.d} leaves (it multiplies "
            f"likelihoods on a linear scale) and it reports the possible evidence as "
            f"incompatible: {err}"
        ) from None
    probability = inference.evidenceProbability()
    if not probability > 0:  # underflow: the marginals stand, the log evidence is not given
        return marginals, None
    return marginals, float(np.log(probability)) + float(exponents.sum()) * math.log(2.0)


def run_brute_force(
    rhm: Any, ev: np.ndarray, prior: np.ndarray, max_trees: int | None = None, memory_budget=None
):
    from hiergrammar.bruteforce import brute_force_marginals

    bound = _tree_bound_or_skip(rhm, max_trees)
    try:
        res = brute_force_marginals(
            rhm, ev[None], prior, max_trees=bound, memory_budget=memory_budget
        )
    except InputError as err:
        if "memory budget" in str(err):
            raise EngineSkipped(str(err)) from None
        raise
    return [mg[0] for mg in res.marginals], float(res.log_evidence[0])


RUNNERS: dict[str, Callable] = {
    "tree_bp": run_tree_bp,
    "pgmpy_bp": run_pgmpy_bp,
    "pgmpy_bp_mp": run_pgmpy_bp_mp,
    "pgmpy_ve": run_pgmpy_ve,
    "pyagrum_lazy": run_pyagrum_lazy,
    "brute_force": run_brute_force,
    **{name: _extra_engines.grammar_runner(name) for name in _extra_engines.GRAMMAR_ENGINES},
}


def _preimport(engines: Sequence[str]) -> None:
    """Import the engines' libraries before timing them (importing pgmpy takes seconds)."""
    modules = {
        "pgmpy_bp": "pgmpy.inference",
        "pgmpy_bp_mp": "pgmpy.inference",
        "pgmpy_ve": "pgmpy.inference",
        "pyagrum_lazy": "pyagrum",
        **_extra_engines.GRAMMAR_PREIMPORTS,
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
    """Largest ``|a - b|`` over all levels (NaN counts as infinitely far)."""
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        diff = np.abs(np.asarray(x) - np.asarray(y))
        if np.isnan(diff).any():
            return float("inf")
        worst = max(worst, float(diff.max(initial=0.0)))
    return worst


def _check_engine_name(engine: Any) -> str:
    if not isinstance(engine, str) or engine not in RUNNERS:
        raise InputError(f"unknown engine {engine!r}; choose from {list(ENGINES)}")
    return engine


def _check_engines(engines: Any) -> list[str]:
    """Engine names in :data:`ENGINES` order; a plain string names one engine."""
    if engines is None:
        return list(ENGINES)
    if isinstance(engines, str):
        engines = [engines]
    try:
        names = list(engines)
    except TypeError:
        raise InputError(
            f"engines must be a list of engine names from {list(ENGINES)}, got {engines!r}"
        ) from None
    unknown = [e for e in names if not isinstance(e, str) or e not in RUNNERS]
    if unknown:
        raise InputError(f"unknown engine(s) {unknown}; choose from {list(ENGINES)}")
    if not names:
        raise InputError(f"engines must name at least one engine from {list(ENGINES)}")
    return [e for e in ENGINES if e in names]


def crosscheck(
    rhm: Any,
    leaf_evidence: np.ndarray,
    root_prior: np.ndarray | None = None,
    engines: Sequence[str] | str | None = None,
    max_trees: int | None = None,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    *,
    memory_budget: int | str | None = None,
) -> list[EngineResult]:
    """Run the inference engines on one grammar and one evidence set and compare them.

    Parameters
    ----------
    rhm : Grammar
        The model (any :class:`~hiergrammar.grammar.Grammar`).
    leaf_evidence : array_like
        One evidence set, ``(s**L, v)`` or ``(1, s**L, v)`` (:mod:`hiergrammar.evidence`),
        with non-zero probability under the grammar.
    root_prior : array_like, optional
        ``(n_classes,)`` or ``(1, n_classes)``; the grammar's ``root_prior`` if None.
    engines : str or sequence of str, optional
        Names from :data:`ENGINES` (default all); a plain string names one engine.
    max_trees : int, optional
        Brute-force bound on the number of trees, ``>= 1`` (default
        :data:`hiergrammar.bruteforce.MAX_TREES`).
    max_seconds : float or None
        Skip an engine whose estimated time (:func:`estimate_seconds`) exceeds this; None
        runs every engine whatever its estimate.
    memory_budget : int or str, optional
        Overrides the memory budget; an engine whose arrays would exceed it is skipped.

    Returns
    -------
    list of EngineResult
        One per requested engine, in :data:`ENGINES` order. The reference is ``brute_force``
        if it ran, else ``tree_bp`` (run anyway as the reference when not requested, but then
        not reported). See the module docstring for statuses and verdicts.

    Raises
    ------
    InputError
        On bad evidence, prior, engine names, ``max_trees`` or ``max_seconds``, or more than one
        evidence set.
    ZeroEvidenceError
        When the evidence has zero probability under the grammar (before any engine runs).

    Examples
    --------
    >>> from hiergrammar.rhm import RHM
    >>> rhm = RHM(v=3, n_classes=2, m=2, s=2, L=1, seed=0)
    >>> [r.verdict() for r in crosscheck(rhm, np.ones((2, 3)), engines="tree_bp")]
    ['agrees']
    """
    from hiergrammar.bp import upward_pass

    names = _check_engines(engines)
    if max_trees is not None:
        max_trees = check_int("max_trees", max_trees, low=1)
    if max_seconds is not None:
        if isinstance(max_seconds, numbers.Real) and math.isinf(max_seconds) and max_seconds > 0:
            max_seconds = None
        else:
            max_seconds = check_float("max_seconds", max_seconds, low=0.0)
    rhm = check_grammar(rhm, "rhm")
    ev = check_leaf_evidence(rhm, leaf_evidence, single=True)[0]
    prior = check_root_prior(rhm, root_prior, n=1)[0]
    # Impossible evidence is bad input, not a disagreement: the upward pass finds it cheaply
    # (it raises ZeroEvidenceError) before any engine runs.
    upward_pass(rhm, ev, prior, memory_budget=memory_budget, backend="numpy")

    order = [e for e in ENGINES if e in names]
    to_run = order if "tree_bp" in order else order + ["tree_bp"]
    features = cost_features(rhm)
    _preimport(to_run)
    results: dict[str, EngineResult] = {}
    for engine in progress(to_run, desc="crosscheck engines", total=len(to_run)):
        estimate = estimate_seconds(rhm, engine, features)
        kwargs: dict[str, Any] = {}
        if memory_budget is not None:
            kwargs["memory_budget"] = memory_budget
        if engine == "brute_force":
            kwargs["max_trees"] = max_trees
        start = time.perf_counter()
        try:
            if engine == "brute_force":  # its own bound says more than a time estimate
                _tree_bound_or_skip(rhm, max_trees)
            if max_seconds is not None and estimate > max_seconds:
                raise EngineSkipped(_too_slow(estimate, max_seconds))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pgmpy's deprecation / FutureWarnings
                marginals, log_ev = RUNNERS[engine](rhm, ev, prior, **kwargs)
        except EngineSkipped as skip:
            results[engine] = EngineResult(
                engine,
                "skipped",
                time.perf_counter() - start,
                message=str(skip),
                details=skip.details,
                estimated_seconds=estimate,
            )
        except Exception as err:  # an engine's failure is a result, not a crash
            results[engine] = EngineResult(
                engine,
                "error",
                time.perf_counter() - start,
                message=f"{type(err).__name__}: {err}",
                details={"traceback": traceback.format_exc()},
                estimated_seconds=estimate,
            )
        else:
            results[engine] = EngineResult(
                engine,
                "ok",
                time.perf_counter() - start,
                marginals=marginals,
                log_evidence=log_ev,
                estimated_seconds=estimate,
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


def _too_slow(estimate: float, max_seconds: float) -> str:
    return (
        f"estimated {_format_seconds(estimate)} > max_seconds = {max_seconds:g} "
        "(cost model of hiergrammar.crosscheck; raise max_seconds to run it)"
    )


def _tree_bound_or_skip(rhm: Any, max_trees: int | None) -> int:
    """Brute force's bound on the tree count (compared on log10 first: deep models have
    counts with thousands of digits); returns the bound, or skips with the count as a power."""
    from hiergrammar.bruteforce import MAX_TREES, describe_tree_count, log10_n_trees, n_trees

    bound = MAX_TREES if max_trees is None else max_trees
    if log10_n_trees(rhm) > math.log10(bound) + 1 or n_trees(rhm) > bound:
        raise EngineSkipped(f"{describe_tree_count(rhm)} > max_trees = {bound}")
    return bound


def format_table(results: Sequence[EngineResult], tol: float = TOLERANCE) -> str:
    """A plain-text table: engine, reference, max ``|Δ marginal|``, ``|Δ log evidence|``, seconds,
    estimated seconds, and the verdict with its reason.

    Parameters
    ----------
    results : sequence of EngineResult
        What :func:`crosscheck` returned.
    tol : float
        The agreement tolerance.

    Returns
    -------
    str

    Examples
    --------
    >>> table = format_table([EngineResult("pgmpy_ve", "skipped", 0.0, message="too slow")])
    >>> table.splitlines()[-1].split()
    ['pgmpy_ve', '-', '-', '-', '0.0000', '-', 'skipped:', 'too', 'slow']
    """

    def num(x: float | None) -> str:
        return "-" if x is None else f"{x:.2e}"

    header = ("engine", "vs", "max|Δ marginal|", "|Δ log Z|", "seconds", "est. s", "status")
    rows = []
    for r in results:
        verdict = r.verdict(tol)
        status = {"agrees": "ok", "disagrees": f"DISAGREES (> {tol:g})"}.get(verdict, verdict)
        if r.message:
            status += f": {r.message}"
        rows.append(
            (
                r.engine,
                r.reference or "-",
                num(r.max_abs_delta),
                num(r.log_evidence_delta),
                f"{r.seconds:.4f}",
                "-" if r.estimated_seconds is None else f"{r.estimated_seconds:.3g}",
                status,
            )
        )
    k = len(header) - 1
    widths = [max(len(str(row[j])) for row in [header] + rows) for j in range(k)]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(header[:k], widths, strict=True))
        + "  "
        + header[k]
    ]
    lines.append("-" * (sum(widths) + 2 * k + len(header[k])))
    for row in rows:
        lines.append(
            "  ".join(str(c).ljust(w) for c, w in zip(row[:k], widths, strict=True)) + "  " + row[k]
        )
    return "\n".join(lines)
