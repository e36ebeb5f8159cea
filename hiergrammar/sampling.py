"""Exact posterior sampling of whole RHM trees given leaf evidence (docs/model.md §4).

:func:`posterior_sample` draws every tree of a batch in one top-down pass: the root from its BP
marginal, then, for each factor whose parent already has value ``a``, one of ``a``'s ``m`` rules
with weight ``prod_i mu_up_i(b_i)`` (the children's upward messages), whose children it writes.
This is the paper's forward-backward resampling (section 5): noise an input, then sample a new
one from the posterior.

:func:`posterior_sample_reference` is the slow textbook procedure the paper describes — sample
a node from its marginal, clamp it, re-run BP, move to the next node — kept as an independent
check of the fast sampler.

Evidence follows the contract of :mod:`hiergrammar.evidence` (``(n, d, v)`` or ``(d, v)``).

Examples
--------
>>> from hiergrammar import RHM
>>> from hiergrammar.noise import eps_evidence
>>> rhm = RHM(v=8, n_classes=4, m=2, s=2, L=3, seed=0)
>>> data = rhm.sample(100, seed=1)
>>> new = posterior_sample(rhm, eps_evidence(data.x, eps=0.05, v=8), seed=2)
>>> bool(rhm.parse(new.x).valid.all())      # every draw is a valid string of the grammar
True
>>> bool((new.y == data.y).mean() > 0.9)    # at low noise the class is kept
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hiergrammar.bp import _upward_result, bp_bytes_per_set, tree_bp
from hiergrammar.evidence import check_leaf_evidence
from hiergrammar.rhm import RHMSample
from hiergrammar.validation import make_rng

__all__ = ["posterior_sample", "posterior_sample_reference", "sampling_bytes_per_set"]


def _categorical(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row of ``weights`` (``(..., k)``, non-negative, positive sums)."""
    cdf = np.cumsum(weights, axis=-1)
    u = rng.random(weights.shape[:-1] + (1,)) * cdf[..., -1:]
    # The first index whose cumulative weight exceeds u; min() guards against round-off.
    return np.minimum((cdf <= u).sum(axis=-1), weights.shape[-1] - 1)


def sampling_bytes_per_set(model: Any) -> int:
    """Memory the top-down draws of :func:`posterior_sample` need per evidence set, in bytes,
    beyond the upward pass: the sampled levels, and at the widest level the candidate rules
    ``(width, m, s)`` with their weights and cumulative weights.

    Parameters
    ----------
    model : Any
        The grammar.

    Returns
    -------
    int
        Bytes per evidence set (a Python int).

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> sampling_bytes_per_set(RHM(v=4, n_classes=2, m=2, s=2, L=1, seed=0))
    120
    """
    total = 8 * sum(int(model.width(level)) for level in range(model.L + 1))
    largest = 0
    for level in range(1, model.L + 1):
        _, m, s = (int(x) for x in model.rules[level].shape)
        w = int(model.width(level))
        largest = max(largest, w * m * (8 * s + 8 * 4))
    return total + largest


def posterior_sample(
    rhm: Any,
    leaf_evidence: np.ndarray,
    root_prior: np.ndarray | None = None,
    seed: int | np.random.Generator | None = 0,
    dtype: type = np.float64,
    *,
    memory_budget: int | str | None = None,
) -> RHMSample:
    """Draw one tree per evidence set from ``P(tree | evidence)``, exactly, in one pass.

    Parameters
    ----------
    rhm : RHM or any grammar the engines accept
        The model.
    leaf_evidence : array_like
        ``(n, s**L, v)``, or ``(s**L, v)`` for one set: leaf likelihoods (the contract of
        :mod:`hiergrammar.evidence`). ``n = 0`` gives an empty sample.
    root_prior : array_like, optional
        ``(card_L,)`` or ``(n, card_L)``; uniform if None.
    seed : int, numpy.random.Generator or None
        Seed of the draws (a non-negative int, None for fresh entropy, or a Generator).
    dtype : type
        Message dtype of the upward pass, ``np.float64`` or ``np.float32``.
    memory_budget : int or str, optional
        Overrides the memory budget.

    Returns
    -------
    RHMSample
        ``levels[l]`` of shape ``(n, s**(L-l))``.

    Raises
    ------
    InputError
        On bad evidence, prior, seed or dtype, or an estimate above the memory budget.
    ZeroEvidenceError
        Naming the evidence sets that no tree can produce.

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0)
    >>> one = posterior_sample(rhm, np.ones((4, 4)), seed=3)   # (s**L, v): one set
    >>> one.x.shape, bool(rhm.parse(one.x).valid.all())
    ((1, 4), True)
    >>> posterior_sample(rhm, np.ones((0, 4, 4))).x.shape
    (0, 4)
    """
    rng = make_rng(seed, "seed")
    # Only upward messages are needed: a rule's weight given its sampled parent is the
    # product of its children's upward messages.
    bp = _upward_result(
        rhm,
        leaf_evidence,
        root_prior,
        None,
        dtype,
        memory_budget,
        "posterior_sample",
        sampling_bytes_per_set(rhm),
    )
    n = bp.up[0].shape[0]
    levels: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * (rhm.L + 1)
    levels[rhm.L] = _categorical(bp.root_marginal, rng)  # (n, 1)
    for level in range(rhm.L, 0, -1):
        rules = rhm.rules[level]  # (K, m, s)
        parents = levels[level]  # (n, w)
        child_card = rhm.card(level - 1)
        child_up = bp.up[level - 1].reshape(n, rhm.width(level), rhm.s, child_card)
        tuples = rules[parents]  # (n, w, m, s): the candidate rules of each sampled parent
        weight = np.ones(tuples.shape[:-1])
        for i in range(rhm.s):
            weight *= np.take_along_axis(child_up[:, :, i, :], tuples[..., i], axis=-1)
        choice = _categorical(weight, rng)  # (n, w)
        levels[level - 1] = rules[parents, choice].reshape(n, rhm.width(level - 1))
    return RHMSample(levels=tuple(levels), v=rhm.v)


def posterior_sample_reference(
    rhm: Any,
    leaf_evidence: np.ndarray,
    root_prior: np.ndarray | None = None,
    seed: int | np.random.Generator | None = 0,
    *,
    memory_budget: int | str | None = None,
) -> RHMSample:
    """Slow reference: sample nodes top-down, each from its BP marginal given all the nodes
    clamped so far, clamping it before moving on (one BP run per node).

    Costs ``O(number of nodes)`` BP runs, so use it on small trees only.

    Parameters
    ----------
    rhm, leaf_evidence, root_prior, seed, memory_budget
        As for :func:`posterior_sample`.

    Returns
    -------
    RHMSample
        ``levels[l]`` of shape ``(n, s**(L-l))``.

    Raises
    ------
    InputError, ZeroEvidenceError
        As for :func:`posterior_sample`.

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> rhm = RHM(v=4, n_classes=2, m=2, s=2, L=1, seed=0)
    >>> draw = posterior_sample_reference(rhm, rhm.sample(3, seed=1).onehot(), seed=0)
    >>> bool((draw.x == rhm.sample(3, seed=1).x).all())   # one-hot evidence: the datum itself
    True
    """
    rng = make_rng(seed, "seed")
    levels_with_clamps = range(rhm.L + 1)
    clamp_bytes = 8 * sum(rhm.width(level) * rhm.card(level) for level in levels_with_clamps)
    per_set = bp_bytes_per_set(rhm, node_levels=levels_with_clamps) + clamp_bytes
    ev = check_leaf_evidence(
        rhm,
        leaf_evidence,
        bytes_per_set=per_set,
        what="posterior_sample_reference",
        memory_budget=memory_budget,
    )
    n = ev.shape[0]
    clamps = {level: np.ones((n, rhm.width(level), rhm.card(level))) for level in range(rhm.L + 1)}
    rows = np.arange(n)
    levels: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * (rhm.L + 1)
    for level in range(rhm.L, -1, -1):
        values = np.empty((n, rhm.width(level)), dtype=np.int64)
        for i in range(rhm.width(level)):
            marginal = tree_bp(
                rhm, ev, root_prior, node_evidence=clamps, memory_budget=memory_budget
            ).marginals
            values[:, i] = _categorical(marginal[level][:, i], rng)
            clamps[level][:, i] = 0.0  # clamp: a one-hot row, written by index (no eye(card))
            clamps[level][rows, i, values[:, i]] = 1.0
        levels[level] = values
    return RHMSample(levels=tuple(levels), v=rhm.v)
