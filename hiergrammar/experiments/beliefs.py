"""Exact-BP beliefs in the true symbol, per level, averaged over samples and rule draws.

What the mean-field theory (:mod:`hiergrammar.theory.meanfield`) predicts and what the figures
plot: for
each noise condition (an eps of the epsilon-process, or a diffusion noise level), draw data from
several independent RHMs, noise them, run exact BP and record, per level, the upward, downward
and marginal beliefs in the true symbol and whether the marginal's argmax is the true symbol
("P(correct symbol)"), with standard errors across rule draws.

Examples
--------
>>> bp = bp_profile(8, 4, 2, 2, 2, eps=[0.1, 0.5], n_samples=40, n_rules=2, seed=0)
>>> bp.accuracy.shape      # (len(eps), L + 1)
(2, 3)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from hiergrammar.artifacts import progress
from hiergrammar.bp import BPResult, bp_bytes_per_set, tree_bp
from hiergrammar.grammar import Grammar
from hiergrammar.noise import diffusion_evidence, eps_evidence
from hiergrammar.rhm import RHM, check_parameters
from hiergrammar.streaming import (
    STREAM_BLOCK,
    block_generators,
    chunk_ranges,
    stream_blocks,
    stream_chunk_size,
    stream_entropy,
)
from hiergrammar.validation import InputError, check_int, check_real_array, check_seed

__all__ = [
    "BELIEF_KEYS",
    "BPProfile",
    "belief_bytes_per_sample",
    "belief_chunk_size",
    "belief_sums",
    "bp_profile",
    "bp_profile_diffusion",
    "true_beliefs",
]

ArrayLike = float | Sequence[float] | np.ndarray


def true_beliefs(result: BPResult, levels: Sequence[np.ndarray]) -> dict[str, list[np.ndarray]]:
    """BP beliefs in the true symbol of every node.

    Parameters
    ----------
    result : BPResult
        What :func:`hiergrammar.bp.tree_bp` returned for ``n`` evidence sets.
    levels : sequence of numpy.ndarray
        The true symbols per level (``RHMSample.levels``), ``(n, width_l)`` integers each.

    Returns
    -------
    dict
        ``{"u", "d", "p"}`` -> lists over levels of ``(n, width_l)`` arrays (upward, downward
        and marginal belief in the true symbol), plus ``"correct"``: whether the marginal's
        argmax is the true symbol, ``(n, width_l)`` booleans.

    Raises
    ------
    InputError
        When ``levels`` does not match ``result`` (number of levels, shapes, symbol range).

    Examples
    --------
    >>> from hiergrammar.noise import eps_evidence
    >>> rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0)
    >>> data = rhm.sample(3, seed=1)
    >>> beliefs = true_beliefs(tree_bp(rhm, eps_evidence(data.x, 0.0, 4)), data.levels)
    >>> [float(p.min()) for p in beliefs["p"]]       # noiseless: certain of every symbol
    [1.0, 1.0, 1.0]
    """
    if len(levels) != len(result.marginals):
        raise InputError(
            f"levels must hold one array per level, {len(result.marginals)}, got {len(levels)}"
        )
    out: dict[str, list[np.ndarray]] = {"u": [], "d": [], "p": [], "correct": []}
    for level, truth in enumerate(levels):
        truth = np.asarray(truth)
        n, width, card = result.marginals[level].shape
        if truth.shape != (n, width) or not np.issubdtype(truth.dtype, np.integer):
            raise InputError(
                f"levels[{level}] must be integers of shape (n, width_l) = ({n}, {width}), "
                f"got {truth.dtype} {truth.shape}"
            )
        if truth.size and (truth.min() < 0 or truth.max() >= card):
            raise InputError(f"levels[{level}] values must lie in [0, {card})")
        idx = truth[..., None]
        out["u"].append(np.take_along_axis(result.up[level], idx, axis=-1)[..., 0])
        out["d"].append(np.take_along_axis(result.down[level], idx, axis=-1)[..., 0])
        out["p"].append(np.take_along_axis(result.marginals[level], idx, axis=-1)[..., 0])
        out["correct"].append(result.marginals[level].argmax(axis=-1) == truth)
    return out


@dataclass(frozen=True)
class BPProfile:
    """Exact-BP beliefs in the true symbol, averaged over samples, nodes and rule draws.

    ``u``, ``d``, ``p``: mean upward, downward and marginal belief in the true symbol;
    ``accuracy``: fraction of nodes whose marginal argmax is the true symbol. Each has shape
    ``(n_conditions, L+1)`` (a condition is one eps, or one diffusion noise level), and a
    standard error ``*_se`` of the same shape: the spread of the per-rule-draw means over
    ``sqrt(n_rules)`` (it counts the rule-to-rule fluctuations the annealed theory averages
    over); with a single rule draw, the spread of per-sample node averages over ``sqrt(n)``.
    ``n_per_rule``: samples per condition and rule draw.
    """

    u: np.ndarray
    d: np.ndarray
    p: np.ndarray
    accuracy: np.ndarray
    u_se: np.ndarray
    d_se: np.ndarray
    p_se: np.ndarray
    accuracy_se: np.ndarray
    n_rules: int
    n_per_rule: int


#: The keys of :func:`true_beliefs`, in the order of :func:`belief_sums`' rows.
BELIEF_KEYS = ("u", "d", "p", "correct")


def belief_bytes_per_sample(grammar: Grammar, dtype: type = np.float64) -> int:
    """Working memory per string of a chunk of :func:`belief_sums`, in bytes: the chunk's leaf
    evidence, what :func:`hiergrammar.bp.tree_bp` needs per set (its size guard's estimate)
    and the beliefs in the true symbol of every node.

    Parameters
    ----------
    grammar : Grammar
        The model.
    dtype : np.float32 or np.float64
        BP's float type.

    Returns
    -------
    int
        Bytes per string.

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> belief_bytes_per_sample(RHM(v=4, n_classes=2, m=2, s=2, L=1, seed=0)) > 0
    True
    """
    evidence = grammar.d * grammar.cards[0] * np.dtype(dtype).itemsize
    return evidence + bp_bytes_per_set(grammar, dtype) + 4 * 8 * grammar.n_nodes


def belief_chunk_size(
    grammar: Grammar,
    n: int,
    observation_bytes: int,
    *,
    dtype: type = np.float64,
    chunk_size: int | None = None,
    memory_budget: int | str | None = None,
    what: str = "BP beliefs",
) -> int:
    """Strings per BP call of :func:`belief_sums` on ``n`` strings: the largest whose working
    set fits the memory budget, with :func:`belief_bytes_per_sample` per string and, per block,
    the strings' trees and their observations (``observation_bytes`` each).

    Parameters
    ----------
    grammar : Grammar
    n : int
        Strings.
    observation_bytes : int
        Bytes of one string's observation.
    dtype : np.float32 or np.float64
    chunk_size : int, optional
        An explicit chunk size, checked against the budget.
    memory_budget : int or str, optional
        Overrides the library's memory budget.
    what : str
        What is streamed, for the error message.

    Returns
    -------
    int
        ``1 <= chunk <= STREAM_BLOCK``.

    Raises
    ------
    InputError
        When not even one string (or the given chunk) fits the budget.

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> belief_chunk_size(RHM(v=4, n_classes=2, m=2, s=2, L=1, seed=0), 10, 16, chunk_size=4)
    4
    """
    return stream_chunk_size(
        what,
        belief_bytes_per_sample(grammar, dtype),
        fixed_bytes=min(STREAM_BLOCK, n) * (8 * grammar.n_nodes + observation_bytes),
        chunk_size=chunk_size,
        memory_budget=memory_budget,
    )


def belief_sums(
    grammar: Grammar,
    n: int,
    seed: int | Sequence[int] | np.random.Generator | None,
    observe: Callable[[np.ndarray, np.random.Generator], np.ndarray],
    likelihood: Callable[[np.ndarray], np.ndarray],
    *,
    observation_bytes: int,
    dtype: type = np.float64,
    chunk_size: int | None = None,
    memory_budget: int | str | None = None,
    desc: str = "BP beliefs",
    disable_progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Stream ``n`` fresh strings of ``grammar`` through noise and exact BP; return, per level,
    the sums over strings of the node-averaged beliefs in the true symbol and of their squares.

    The strings and their noise are drawn block by block (:mod:`hiergrammar.streaming`: block
    ``b`` of ``STREAM_BLOCK`` strings draws from its own generators, spawned from ``seed``
    and ``b``), BP runs chunk by chunk (the largest chunk that fits the memory budget, at most
    a block), and the sums are taken per block, then over blocks: the result does not depend
    on the chunk size, bit for bit.

    Parameters
    ----------
    grammar : Grammar
        The model (``sample`` and what :func:`hiergrammar.bp.tree_bp` reads).
    n : int
        Strings, ``>= 1``.
    seed : int, sequence of int, Generator or None
        Seed of the strings and of the noise (a sequence of ints names a condition of an
        experiment, as :class:`numpy.random.SeedSequence` takes it).
    observe : callable
        ``observe(x, rng)``: the noisy observation of one block's strings ``x`` ``(k, d)``,
        drawing from ``rng`` (an integer array, or e.g. diffused one-hot floats).
    likelihood : callable
        ``likelihood(observation_rows)``: the leaf evidence ``(c, d, v)`` of a chunk's rows of
        the observation.
    observation_bytes : int
        Bytes of one string's observation (held for a whole block).
    dtype : np.float32 or np.float64
        BP's float type.
    chunk_size : int, optional
        Strings per BP call instead of the largest that fits (:func:`stream_chunk_size`).
    memory_budget : int or str, optional
        Overrides the library's memory budget.
    desc : str
        Label of the progress bar over blocks.
    disable_progress : bool, optional
        As ``disable`` of :func:`hiergrammar.artifacts.progress`.

    Returns
    -------
    sums, squares : numpy.ndarray
        ``(4, L+1)``: rows in the order of :data:`BELIEF_KEYS` (``u``, ``d``, ``p``,
        ``correct``).

    Raises
    ------
    InputError
        On a bad size, seed or chunk size, or a chunk above the memory budget.

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> rhm = RHM(v=8, n_classes=4, m=2, s=2, L=2, seed=0)
    >>> sums, _ = belief_sums(rhm, 50, 1, lambda x, rng: x, lambda x: eps_evidence(x, 0.0, 8),
    ...                       observation_bytes=8 * rhm.d)
    >>> (sums / 50).tolist()[2]               # p: no noise, every symbol certain
    [1.0, 1.0, 1.0]
    """
    n = check_int("n", n, 1)
    if isinstance(seed, Sequence) and not isinstance(seed, str):
        entropy = [check_seed("seed", part, allow_generator=False) for part in seed]
        if not entropy or None in entropy:
            raise InputError(f"seed={seed!r}: a sequence seed holds non-negative integers")
    else:
        entropy = stream_entropy(seed)
    chunk = belief_chunk_size(
        grammar,
        n,
        observation_bytes,
        dtype=dtype,
        chunk_size=chunk_size,
        memory_budget=memory_budget,
        what=desc,
    )
    L = grammar.L
    sums = np.zeros((len(BELIEF_KEYS), L + 1))
    squares = np.zeros((len(BELIEF_KEYS), L + 1))
    for b, start, stop in stream_blocks(n, desc=desc, disable=disable_progress):
        data_rng, noise_rng = block_generators(entropy, b, 2)
        data = grammar.sample(stop - start, seed=data_rng)
        observation = observe(data.x, noise_rng)
        # (k, 4, L+1): each string's average over the nodes of every level
        means = np.empty((stop - start, len(BELIEF_KEYS), L + 1))
        for a, z in chunk_ranges(0, stop - start, chunk):
            result = tree_bp(
                grammar, likelihood(observation[a:z]), dtype=dtype, memory_budget=memory_budget
            )
            found = true_beliefs(result, [values[a:z] for values in data.levels])
            for i, key in enumerate(BELIEF_KEYS):
                for level in range(L + 1):
                    means[a:z, i, level] = found[key][level].mean(axis=1, dtype=np.float64)
        sums += means.sum(axis=0)
        squares += (means**2).sum(axis=0)
    return sums, squares


def _bp_profile(
    v: int,
    n_classes: int,
    m: int,
    s: int,
    L: int,
    n_conditions: int,
    observe: Callable[[np.ndarray, int, np.random.Generator], np.ndarray],
    likelihood: Callable[[np.ndarray, int], np.ndarray],
    observation_bytes: int,
    n_samples: int,
    n_rules: int,
    seed: int | None,
    chunk_size: int | None,
    dtype: type,
    desc: str,
    memory_budget: int | str | None,
) -> BPProfile:
    """Shared loop: for each rule draw and condition, stream fresh strings through noise and
    BP (:func:`belief_sums`)."""
    check_parameters(v, n_classes, m, s, L)
    seed = check_seed("seed", seed, allow_generator=False)
    n_rules = check_int("n_rules", n_rules, 1)
    per_rule = max(1, check_int("n_samples", n_samples, 1) // n_rules)
    if chunk_size is not None:
        check_int("chunk_size", chunk_size, 1)
    keys = BELIEF_KEYS
    # sums[key][r, c, l]: per rule draw r and condition c, the sum over samples of the
    # node-averaged value at level l, and of its square (for the one-draw standard error).
    sums = {k: np.zeros((n_rules, n_conditions, L + 1)) for k in keys}
    squares = {k: np.zeros((n_rules, n_conditions, L + 1)) for k in keys}
    seeds = np.random.SeedSequence(seed).spawn(n_rules)
    jobs = [(r, c) for r in range(n_rules) for c in range(n_conditions)]
    rhm, current = None, -1
    for r, c in progress(jobs, desc=desc, total=len(jobs)):
        if r != current:  # jobs run draw by draw: one rule draw alive at a time
            rhm = RHM(v, n_classes, m, s, L, seed=int(seeds[r].generate_state(1)[0]))
            current = r
        total, total_sq = belief_sums(
            rhm,
            per_rule,
            [int(seeds[r].generate_state(1)[0]), c, 1],
            lambda x, rng, c=c: observe(x, c, rng),
            lambda rows, c=c: likelihood(rows, c),
            observation_bytes=observation_bytes,
            dtype=dtype,
            chunk_size=chunk_size,
            memory_budget=memory_budget,
            desc=desc,
            disable_progress=True,
        )
        for i, k in enumerate(keys):
            sums[k][r, c] = total[i]
            squares[k][r, c] = total_sq[i]
    means, ses = {}, {}
    for k in keys:
        per_draw = sums[k] / per_rule  # (R, C, L+1)
        means[k] = per_draw.mean(axis=0)
        if n_rules > 1:
            ses[k] = per_draw.std(axis=0, ddof=1) / np.sqrt(n_rules)
        else:
            var = squares[k][0] / per_rule - per_draw[0] ** 2
            ses[k] = np.sqrt(np.maximum(var, 0.0) * per_rule / max(per_rule - 1, 1) / per_rule)
    return BPProfile(
        u=means["u"],
        d=means["d"],
        p=means["p"],
        accuracy=means["correct"],
        u_se=ses["u"],
        d_se=ses["d"],
        p_se=ses["p"],
        accuracy_se=ses["correct"],
        n_rules=n_rules,
        n_per_rule=per_rule,
    )


def bp_profile(
    v: int,
    n_classes: int,
    m: int,
    s: int,
    L: int,
    eps: ArrayLike,
    *,
    n_samples: int = 1000,
    n_rules: int = 4,
    seed: int | None = 0,
    chunk_size: int | None = None,
    dtype: type = np.float64,
    memory_budget: int | str | None = None,
) -> BPProfile:
    """Exact-BP beliefs under the epsilon-process (the measured counterpart of the mean-field
    profile of :mod:`hiergrammar.theory.meanfield`).

    For each of ``n_rules`` independent rule draws and each eps, ``n_samples // n_rules`` data
    are drawn, their leaves get the evidence of eqs. 9-10, and exact BP gives the beliefs in
    the true symbol of every node; these are averaged over nodes of a level, samples and rule
    draws.

    Parameters
    ----------
    v, n_classes, m, s, L : int
        The RHM's parameters.
    eps : float or sequence of float
        Noise levels in ``[0, 1]``, a scalar or 1-d.
    n_samples : int
        Samples per eps over all rule draws, ``>= 1``.
    n_rules : int
        Independent rule draws, ``>= 1``.
    seed : int or None
        Seed of the rule draws, data and noise. The strings and their noise are drawn in
        blocks of :data:`~hiergrammar.streaming.STREAM_BLOCK` with their own streams
        (:func:`belief_sums`).
    chunk_size : int, optional
        Strings per BP call, ``>= 1``; default the largest that fits the memory budget (at
        most one block). The result does not depend on it.
    dtype : type
        BP message dtype; ``np.float32`` halves the BP cost (error ~1e-6, far below the
        sampling noise).
    memory_budget : int or str, optional
        Overrides the library's memory budget (it sizes the chunks).

    Returns
    -------
    BPProfile
        Arrays of shape ``(len(eps), L+1)``.

    Raises
    ------
    InputError
        On bad parameters, noise levels or seed.

    Examples
    --------
    >>> bp = bp_profile(8, 4, 2, 2, 2, eps=[0.1, 0.5], n_samples=40, n_rules=2, seed=0)
    >>> bp.p.shape
    (2, 3)
    """
    eps = np.atleast_1d(check_real_array("eps", eps))
    if eps.ndim != 1 or not np.all((eps >= 0) & (eps <= 1)):
        raise InputError(f"eps={eps} violates 0 <= eps <= 1 (a scalar or 1-d array)")

    # The eps-process acts on the evidence only: the observation is the string itself.
    return _bp_profile(
        v,
        n_classes,
        m,
        s,
        L,
        eps.size,
        lambda x, c, rng: x,
        lambda rows, c: eps_evidence(rows, float(eps[c]), v),
        8 * s**L,
        n_samples,
        n_rules,
        seed,
        chunk_size,
        dtype,
        f"BP eps-process L={L}",
        memory_budget,
    )


def bp_profile_diffusion(
    v: int,
    n_classes: int,
    m: int,
    s: int,
    L: int,
    alpha_bar: ArrayLike,
    *,
    n_samples: int = 1000,
    n_rules: int = 4,
    seed: int | None = 0,
    chunk_size: int | None = None,
    dtype: type = np.float64,
    memory_budget: int | str | None = None,
) -> BPProfile:
    """Exact-BP beliefs when the leaves are diffused one-hot vectors (eqs. 1-4).

    Like :func:`bp_profile`, with the leaf evidence ``P(x_0 | x_t)`` of a forward diffusion to
    each ``alpha_bar``. ``1 - u[:, 0]`` is then the effective eps (eq. 63) of that noise
    level, measured on the same leaves.

    Parameters
    ----------
    v, n_classes, m, s, L : int
        The RHM's parameters.
    alpha_bar : float or sequence of float
        Noise levels in ``[0, 1]``, a scalar or 1-d.
    n_samples, n_rules, seed, chunk_size, dtype, memory_budget
        As for :func:`bp_profile` (a block's diffused leaves, ``(STREAM_BLOCK, d, v)``
        floats, count towards the budget).

    Returns
    -------
    BPProfile
        Arrays of shape ``(len(alpha_bar), L+1)``.

    Raises
    ------
    InputError
        On bad parameters, noise levels or seed.

    Examples
    --------
    >>> bp = bp_profile_diffusion(8, 4, 2, 2, 2, alpha_bar=[1.0, 0.1], n_samples=20, n_rules=1)
    >>> bp.accuracy.shape, float(bp.accuracy[0].min())   # alpha_bar = 1: no noise, all right
    ((2, 3), 1.0)
    """
    alpha_bar = np.atleast_1d(check_real_array("alpha_bar", alpha_bar))
    if alpha_bar.ndim != 1 or np.any((alpha_bar < 0) | (alpha_bar > 1)):
        raise InputError("alpha_bar violates 0 <= alpha_bar <= 1 (a scalar or 1-d array)")

    # The diffused one-hot leaves are drawn per block; the evidence is their rows.
    return _bp_profile(
        v,
        n_classes,
        m,
        s,
        L,
        alpha_bar.size,
        lambda x, c, rng: diffusion_evidence(x, v, float(alpha_bar[c]), seed=rng),
        lambda rows, c: rows,
        8 * v * s**L,
        n_samples,
        n_rules,
        seed,
        chunk_size,
        dtype,
        f"BP diffusion L={L}",
        memory_budget,
    )
