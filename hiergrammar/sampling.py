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

from hiergrammar.bp import _upward_result, bp_bytes_per_set, tree_bp, upward_pass
from hiergrammar.evidence import check_leaf_evidence
from hiergrammar.rhm import RHM, RHMSample
from hiergrammar.validation import make_rng

__all__ = [
    "FORWARD_BACKWARD_BLOCK",
    "ForwardBackwardResult",
    "exact_forward_backward",
    "posterior_sample",
    "posterior_sample_reference",
    "sampling_bytes_per_set",
]


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


# -- forward-backward: noise a string, then sample its tree from the exact posterior ----------
from dataclasses import dataclass  # noqa: E402

from hiergrammar.processes import GaussianProcess, Process, check_leaves  # noqa: E402
from hiergrammar.validation import (  # noqa: E402
    InputError,
    ZeroEvidenceError,
    check_memory,
    check_seed,
)

#: Samples per random stream of :func:`exact_forward_backward`. Block ``b`` (samples
#: ``b*BLOCK .. (b+1)*BLOCK - 1``) draws its noise and its trees from its own stream, so the
#: result does not depend on how many blocks are processed at once.
FORWARD_BACKWARD_BLOCK = 1024


def _block_floats_per_sample(grammar: RHM) -> int:
    """Floats per sample alive at the peak of one block: the likelihood and its value-first
    copy in BP (``2 d v``), the upward messages of every level, and the widest level's rule
    gathers (``s`` arrays of ``(K m, width)`` and their product)."""
    messages = sum(grammar.card(level) * grammar.width(level) for level in range(grammar.L + 1))
    gathers = max(
        (grammar.s + 1)
        * grammar.rules[level].shape[0]
        * grammar.rules[level].shape[1]
        * grammar.width(level)
        for level in range(1, grammar.L + 1)
    )
    return 2 * grammar.d * grammar.v + messages + gathers


@dataclass(frozen=True)
class ForwardBackwardResult:
    """What :func:`exact_forward_backward` returns.

    Attributes
    ----------
    levels : tuple of numpy.ndarray
        The new samples' trees, as in :class:`~hiergrammar.rhm.RHMSample`: ``levels[l]`` has
        shape ``(n, width_l)``, ``levels[0]`` the leaves, ``levels[L]`` ``(n, 1)`` the class.
    observation : numpy.ndarray
        The noisy observation the trees were drawn from: ``(n, d)`` ints for the masking
        (``v`` = MASK), uniform and eps processes (the eps-process's is the input itself),
        ``(n, d, v)`` floats for the Gaussian process.
    t : float or numpy.ndarray
        The time(s), as given.
    """

    levels: tuple[np.ndarray, ...]
    observation: np.ndarray
    t: float | np.ndarray

    @property
    def x(self) -> np.ndarray:
        """The new leaves, shape ``(n, d)``."""
        return self.levels[0]

    @property
    def y(self) -> np.ndarray:
        """The new classes, shape ``(n,)``."""
        return self.levels[-1][:, 0]


def _draw_trees(grammar: RHM, bp, rng: np.random.Generator) -> list[np.ndarray]:
    """The top-down half of :func:`posterior_sample`, from an :func:`upward_pass` result of
    any float dtype: the root from its marginal, then one rule per sampled parent with weight
    ``prod_i up_i(b_i)``. Returns ``levels[l]`` ``(n, width_l)``."""
    n = bp.up[0].shape[0]
    levels: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * (grammar.L + 1)
    levels[grammar.L] = _categorical(bp.root_marginal, rng)  # (n, 1)
    for level in range(grammar.L, 0, -1):
        rules = grammar.rules[level]  # (card_l, m, s)
        parents = levels[level]  # (n, w)
        w = grammar.width(level)
        child_up = bp.up[level - 1].reshape(n, w, grammar.s, grammar.card(level - 1))
        tuples = rules[parents]  # (n, w, m, s): the candidate rules of each sampled parent
        weight = np.take_along_axis(child_up[:, :, 0, :], tuples[..., 0], axis=-1)
        for i in range(1, grammar.s):
            weight *= np.take_along_axis(child_up[:, :, i, :], tuples[..., i], axis=-1)
        choice = _categorical(weight, rng)  # (n, w)
        levels[level - 1] = rules[parents, choice].reshape(n, -1)
    return levels


def _block_rngs(entropy: int, block: int) -> tuple[np.random.Generator, np.random.Generator]:
    """The noise and posterior-sampling generators of one block of samples."""
    noise, sample = np.random.SeedSequence(entropy, spawn_key=(block,)).spawn(2)
    return np.random.default_rng(noise), np.random.default_rng(sample)


def exact_forward_backward(
    grammar: RHM,
    process: Process,
    x: np.ndarray,
    t: float | np.ndarray,
    seed: int | np.random.Generator | None = 0,
    *,
    dtype: type = np.float64,
    memory_budget: int | str | None = None,
) -> ForwardBackwardResult:
    """Noise ``x`` to time ``t``, then draw new trees from ``P(tree | x_t)`` exactly.

    What a perfect reverse process started at ``t`` produces: the forward process
    ``process.corrupt`` gives ``x_t``, its exact leaf likelihood enters an upward BP pass, and
    whole trees (every level, the class included) are drawn top-down from the posterior, as
    :func:`posterior_sample` does. Samples are processed in blocks of
    :data:`FORWARD_BACKWARD_BLOCK`; each block has its own random streams, spawned from
    ``seed``, so the result depends on ``seed`` and the data only, never on how the work is
    split.

    Parameters
    ----------
    grammar : RHM
        The model (any grammar with ``rules``, ``card``, ``width``, ``L``, ``s``, ``v``, ``d``).
    process : Process
        A forward process of :mod:`hiergrammar.processes` with ``process.v == grammar.v``.
    x : numpy.ndarray
        ``(n, d)`` integer leaves in ``[0, v)``, usually strings of the grammar.
    t : float or numpy.ndarray
        A time of the process's schedule, or one per sample ``(n,)``.
    seed : int, Generator or None
        Seed of the noise and of the posterior draws.
    dtype : np.float32 or np.float64
        Float type of the likelihood and of the BP messages. ``np.float32`` is about twice as
        fast; its ~1e-6 relative error in the rule weights shifts sampling probabilities by as
        much (zero weights stay exactly zero, so the masking invariant holds). Keep the default
        for cross-checks.
    memory_budget : int or str, optional
        Bound on one block's arrays (and on the Gaussian observation); default the library's.

    Returns
    -------
    ForwardBackwardResult
        ``levels`` (the new trees), ``observation`` (``x_t``) and ``t``.

    Raises
    ------
    InputError
        For bad arguments, a vocabulary mismatch or arrays above the memory budget.
    ZeroEvidenceError
        When no tree of the grammar can produce an observation (e.g. kept leaves of a masked
        string that is not in the grammar's language); it names the samples.

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> from hiergrammar.noise import MaskingProcess
    >>> rhm = RHM(v=8, n_classes=4, m=2, s=2, L=3, seed=0)
    >>> data = rhm.sample(200, seed=1)
    >>> res = exact_forward_backward(rhm, MaskingProcess(v=8), data.x, t=0.5, seed=2)
    >>> res.x.shape, res.y.shape
    ((200, 8), (200,))
    >>> kept = res.observation != 8                 # kept leaves are never changed
    >>> bool((res.x[kept] == data.x[kept]).all())
    True
    >>> bool(rhm.parse(res.x).valid.all())          # every draw is a string of the grammar
    True
    """
    if not isinstance(process, Process):
        raise InputError(f"process must be a hiergrammar.processes.Process, got {process!r}")
    if process.v != grammar.v:
        raise InputError(
            f"process.v={process.v} violates process.v == grammar.v = {grammar.v} "
            "(the process acts on the grammar's leaves)"
        )
    x = check_leaves("x", x, grammar.v)
    n, d = x.shape
    if d != grammar.d:
        raise InputError(f"x must have shape (n, d) = (n, {grammar.d}), got {x.shape}")
    if np.ndim(t) > 1 or (np.ndim(t) == 1 and np.shape(t)[0] != n):
        raise InputError(f"t must be a scalar or have shape (n,) = ({n},), got {np.shape(t)}")
    process.alpha(t)  # checks the times once, before any work
    seed = check_seed("seed", seed)
    if isinstance(seed, np.random.Generator):
        entropy = int(seed.integers(2**63))
    elif seed is None:
        entropy = int(np.random.SeedSequence().entropy)
    else:
        entropy = seed
    if dtype not in (np.float32, np.float64):
        raise InputError(f"dtype must be np.float32 or np.float64, got {dtype!r}")
    block = FORWARD_BACKWARD_BLOCK
    item = np.dtype(dtype).itemsize
    # Temporaries (input checks, normalisations) add to the counted arrays: the peak measured
    # with tracemalloc at L = 7, v = 32, m = 8 was 1.38x the count, hence the factor 1.5.
    check_memory(
        f"one forward-backward block of {min(block, n)} samples (likelihood, BP messages and "
        "rule gathers)",
        1.5 * min(block, n) * _block_floats_per_sample(grammar) * item,
        memory_budget,
    )
    if isinstance(process, GaussianProcess):
        check_memory(
            f"the Gaussian observation (n, d, v) = ({n}, {d}, {grammar.v})",
            n * d * grammar.v * np.dtype(np.float64).itemsize,
            memory_budget,
        )
    t_array = np.asarray(t)
    levels: list[list[np.ndarray]] = [[] for _ in range(grammar.L + 1)]
    observations: list[np.ndarray] = []
    for b, start in enumerate(range(0, n, block)):
        stop = min(start + block, n)
        t_block = t if t_array.ndim == 0 else t_array[start:stop]
        noise_rng, sample_rng = _block_rngs(entropy, b)
        obs = process.corrupt(x[start:stop], t_block, seed=noise_rng)
        evidence = process.leaf_likelihood(obs, t_block, dtype=dtype, memory_budget=memory_budget)
        try:
            bp = upward_pass(grammar, evidence, dtype=dtype)
        except ZeroEvidenceError as err:
            raise ZeroEvidenceError(np.asarray(err.samples) + start) from None
        for level, values in enumerate(_draw_trees(grammar, bp, sample_rng)):
            levels[level].append(values)
        observations.append(obs)
    if n == 0:
        empty = x.reshape(0, d)
        return ForwardBackwardResult(
            levels=tuple(
                np.empty((0, grammar.width(level)), dtype=np.int64)
                for level in range(grammar.L + 1)
            ),
            observation=process.corrupt(empty, t, seed=0),
            t=t,
        )
    return ForwardBackwardResult(
        levels=tuple(np.concatenate(parts) for parts in levels),
        observation=np.concatenate(observations),
        t=t,
    )
