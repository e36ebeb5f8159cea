"""Population dynamics (density evolution) of belief propagation on the Random Hierarchy Model.

The mean-field theory (:mod:`hiergrammar.theory.meanfield`) keeps two numbers per message. Here we
keep the whole distribution: a *population* of ``n_pop`` message vectors per level, sampled
from the law of a BP message over the RHM ensemble (rules, data and noise), and propagate it
level by level with the library's own BP step (:func:`hiergrammar.bp.factor_messages`).

What is sampled, and why it is exact on a tree with independent rules per factor
-------------------------------------------------------------------------------------
Every message is stored in the *canonical frame* of its node: the node's true symbol is value
0. The RHM ensemble is invariant under relabelling the symbols of a level (a uniform rule draw
stays uniform), so the law of a message given the node's true symbol ``b`` is the canonical law
with values 0 and ``b`` exchanged; nothing is lost.

*Upward*, level ``l - 1`` to ``l``. One new member is one local configuration: a parent whose
true symbol is 0, a fresh rule table for its factor, drawn as the RHM draws a level (``K m``
distinct ``s``-tuples without replacement, ``m`` per parent value; ``K = n_classes`` at the
root, ``v`` elsewhere), conditioned on the parent producing its true children, and the
children's upward messages. Relabelling every child position so that the true children are all
0 maps a uniform table to a uniform table in which the tuple ``(0, ..., 0)`` is one of parent
0's rules: that is the table we draw (parent 0 owns ``(0, ..., 0)`` and ``m - 1`` more tuples,
the other parents ``m`` each, all distinct). Given their true symbols the children's subtrees
are independent of each other and of the table, so the children's messages are independent
members of the level ``l - 1`` population. The parent's message is the exact BP step on them.

*Downward*, level ``l`` to ``l - 1``. What the parent receives from above depends on the
outside of its subtree (its ancestors' rules, its siblings' subtrees); what its factor sends
down also depends on its subtree (its rule table, its children). Given the parent's true
symbol the two are independent. So a downward member is built from a *whole* local
configuration that is consistent with the true tree: we keep, for every upward member, the
table and the children it was computed from, pair a member of the level-``l`` downward
population with the configuration of the node it describes, run the BP step with the parent's
downward message and the children's upward messages, and follow one child at random. The
child's downward message is then paired with its own upward message (one of the children of
that configuration), which gives its marginal. At the root the downward message is the uniform
prior over the ``n_classes`` classes.

Approximations: a finite population (a statistical error, measured by running independent
replicas, and a bias of order ``1 / n_pop`` from members reused in two places of one
genealogy), and rules drawn afresh for every factor, where one RHM shares a rule table across
a level (the nodes of one level of a real tree are weakly coupled through it). Both are
measured against exact BP by :mod:`hiergrammar.theory.validate_population`.

Leaf noise: the epsilon-process at ``eps`` (``process=None``), or any noise process with ``v``,
``corrupt(x, t, seed=...)`` (observation of integer leaves ``x`` of shape ``(n, d)``) and
``leaf_likelihood(observation, t)`` (``(n, d, v)`` evidence); then ``eps`` is the time ``t``.

Examples
--------
>>> pop = profile(v=8, n_classes=8, m=2, s=2, L=3, eps=0.2, n_pop=2000, seed=0)
>>> pop.u.shape, pop.samples_u.shape, pop.hist_p.shape    # (L+1,), (L+1, n_pop), (L+1, bins)
((4,), (4, 2000), (4, 50))
>>> round(float(pop.u[0]), 6), float(pop.d[3]) == 1 / 8   # leaves: 1 - eps; root: the prior
(0.8, True)
>>> profile(8, 8, 2, 2, 3, eps=[0.1, 0.5], n_pop=500).p.shape   # (len(eps), L+1)
(2, 4)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hiergrammar.artifacts import progress
from hiergrammar.bp import factor_messages
from hiergrammar.rhm import check_parameters
from hiergrammar.validation import (
    InputError,
    ZeroEvidenceError,
    check_float,
    check_int,
    check_memory,
    check_seed,
)

__all__ = [
    "PopulationProfile",
    "draw_tables",
    "profile",
]

ArrayLike = float | Sequence[float] | np.ndarray

#: Bytes of temporaries per rule entry in one BP step (the gathered messages, their products
#: and the downward weights); sets the chunk of factors processed at once.
_BYTES_PER_ENTRY = 8 * 8
_CHUNK_BYTES = 64 * 1024**2


@dataclass(frozen=True)
class PopulationProfile:
    """Beliefs in the true symbol per level (index ``l = 0..L``, 0 = input), from population
    dynamics.

    ``u``, ``d``, ``p``: mean upward, downward and marginal belief in the true symbol, as in
    :class:`hiergrammar.theory.meanfield.MeanFieldProfile`; ``accuracy``: probability that the
    marginal's argmax is the true symbol (ties shared evenly). Shape ``(L+1,)`` for a scalar
    ``eps``, ``(len(eps), L+1)`` for an array. ``*_se``: their standard errors, from the
    spread of ``n_replicas`` independent populations.

    ``samples_u``, ``samples_d``, ``samples_p``: the populations themselves, the belief in the
    true symbol of every member, float32 of shape ``(..., L+1, n_pop)``.
    ``hist_u``, ``hist_d``, ``hist_p``: their histograms (densities on ``bin_edges``, which
    split ``[0, 1]`` evenly), shape ``(..., L+1, n_bins)``.
    """

    u: np.ndarray
    d: np.ndarray
    p: np.ndarray
    accuracy: np.ndarray
    u_se: np.ndarray
    d_se: np.ndarray
    p_se: np.ndarray
    accuracy_se: np.ndarray
    samples_u: np.ndarray
    samples_d: np.ndarray
    samples_p: np.ndarray
    hist_u: np.ndarray
    hist_d: np.ndarray
    hist_p: np.ndarray
    bin_edges: np.ndarray
    n_pop: int
    n_replicas: int

    def to_dict(self, samples: bool = False) -> dict[str, Any]:
        """JSON-ready data for a figure: the means, their standard errors, the histograms and
        ``bin_edges`` (lists), and the populations themselves if ``samples``.

        Examples
        --------
        >>> data = profile(8, 8, 2, 2, 2, eps=[0.2, 0.6], n_pop=400).to_dict()
        >>> sorted(data)[:4], len(data["hist_p"][0])      # (len(eps), L+1, n_bins) nested
        (['accuracy', 'accuracy_se', 'bin_edges', 'd'], 3)
        """
        keys = ["u", "d", "p", "accuracy", "u_se", "d_se", "p_se", "accuracy_se"]
        keys += ["hist_u", "hist_d", "hist_p", "bin_edges"]
        if samples:
            keys += ["samples_u", "samples_d", "samples_p"]
        out: dict[str, Any] = {k: np.asarray(getattr(self, k)).tolist() for k in keys}
        out.update(n_pop=self.n_pop, n_replicas=self.n_replicas)
        return out


# -- random local configurations -------------------------------------------------------------
def _distinct(rng: np.random.Generator, n: int, k: int, population: int) -> np.ndarray:
    """``(n, k)`` rows, each ``k`` distinct integers of ``[0, population)`` in uniformly random
    order (a uniform ordered draw without replacement, independently per row)."""
    if k == 0:
        return np.zeros((n, 0), dtype=np.int64)
    if population <= 8 * k:
        # The first k steps of a Fisher-Yates shuffle, vectorised over rows (value-major
        # layout, so that the column being fixed is one contiguous row of the array).
        dtype = np.int16 if population <= np.iinfo(np.int16).max else np.int32
        out = np.empty((n, k), dtype=np.int64)
        step = max(1, _CHUNK_BYTES // (np.dtype(dtype).itemsize * population))
        for start in range(0, n, step):
            rows = min(step, n - start)
            deck = np.tile(np.arange(population, dtype=dtype)[:, None], (1, rows))
            flat = deck.reshape(-1)
            cols = np.arange(rows)
            for j in range(k):
                pick = (j + rng.integers(population - j, size=rows)) * rows + cols
                chosen = flat[pick]
                flat[pick] = deck[j]
                deck[j] = chosen
            out[start : start + rows] = deck[:k].T
        return out
    # Sparse draw: redraw later duplicates until none is left. The procedure commutes with any
    # relabelling of the values, so the set it returns is a uniform k-subset; a final shuffle
    # makes the order uniform too.
    out = rng.integers(population, size=(n, k))
    while True:
        order = np.argsort(out, axis=1, kind="stable")
        ranked = np.take_along_axis(out, order, axis=1)
        rows, cols = np.nonzero(ranked[:, 1:] == ranked[:, :-1])
        if rows.size == 0:
            break
        out[rows, order[rows, cols + 1]] = rng.integers(population, size=rows.size)
    shuffle = np.argsort(rng.random((n, k)), axis=1)
    return np.take_along_axis(out, shuffle, axis=1)


#: Largest tuple space for which tuple codes are decoded through a lookup table.
_MAX_LOOKUP = 1 << 20


def draw_tables(
    n: int, K: int, m: int, s: int, v: int, seed: int | np.random.Generator | None = 0
) -> np.ndarray:
    """``n`` independent rule tables of one factor, in the canonical frame of a true parent.

    Each table is an RHM level's rules (``K m`` distinct ``s``-tuples of ``[0, v)``, ``m`` per
    parent value) drawn uniformly given that the true parent 0 produced the true children
    ``(0, ..., 0)``: parent 0's first rule is ``(0, ..., 0)``, and its other ``m - 1`` rules and
    the other parents' ``K m - m`` are a uniform draw without replacement from the remaining
    ``v**s - 1`` tuples.

    Parameters
    ----------
    n : number of tables.
    K, m, s, v : parent cardinality, rules per parent, branching factor, child vocabulary;
        ``K m <= v**s``.
    seed : seed or generator.

    Returns
    -------
    ``(n, K, m, s)`` array of child symbols (the smallest unsigned integer type that fits).

    Examples
    --------
    >>> tables = draw_tables(3, K=4, m=2, s=2, v=4, seed=0)
    >>> tables.shape, tables[:, 0, 0].tolist()
    ((3, 4, 2, 2), [[0, 0], [0, 0], [0, 0]])
    >>> codes = tables[0].reshape(8, 2) @ [4, 1]
    >>> len(set(codes.tolist()))      # all 8 tuples distinct
    8
    """
    n, K, m = check_int("n", n, 0), check_int("K", K, 1), check_int("m", m, 1)
    s, v = check_int("s", s, 1), check_int("v", v, 2)
    tuples = v**s
    if K * m > tuples:
        raise InputError(f"K*m = {K * m} violates K*m <= v**s = {tuples}")
    rng = np.random.default_rng(check_seed("seed", seed))
    codes = np.concatenate(
        [np.zeros((n, 1), dtype=np.int64), 1 + _distinct(rng, n, K * m - 1, tuples - 1)], axis=1
    )
    dtype = np.uint8 if v <= 256 else np.uint16 if v <= 65536 else np.int64
    if tuples <= _MAX_LOOKUP:  # one gather instead of s integer divisions
        digits = np.stack(np.unravel_index(np.arange(tuples), (v,) * s), axis=1).astype(dtype)
        return digits[codes].reshape(n, K, m, s)
    powers = v ** np.arange(s - 1, -1, -1, dtype=np.int64)
    return ((codes[..., None] // powers) % v).astype(dtype).reshape(n, K, m, s)


# -- leaves ----------------------------------------------------------------------------------
def _check_process(process: Any, v: int) -> None:
    for attr in ("v", "corrupt", "leaf_likelihood"):
        if not hasattr(process, attr):
            raise InputError(
                f"process must have v, corrupt(x, t, seed=...) and leaf_likelihood(obs, t); "
                f"{type(process).__name__} has no {attr!r}"
            )
    if process.v != v:
        raise InputError(f"process.v = {process.v} must equal v = {v}")


def _leaf_messages(v: int, n: int, t: float, process: Any, rng: np.random.Generator) -> np.ndarray:
    """``(n, v)`` normalised leaf evidence in the canonical frame (true symbol 0)."""
    if process is None:
        row = np.full(v, t / (v - 1))
        row[0] = 1.0 - t
        return np.tile(row, (n, 1))
    # Random true symbols (so that a process need not be symmetric in its values to be
    # sampled right), then each row relabelled so that its true symbol is 0.
    x = rng.integers(v, size=(n, 1))
    observation = process.corrupt(x, t, seed=int(rng.integers(2**63)))
    evidence = np.asarray(process.leaf_likelihood(observation, t), dtype=np.float64)
    if evidence.shape != (n, 1, v):
        raise InputError(
            f"process.leaf_likelihood returned shape {evidence.shape}, expected ({n}, 1, {v})"
        )
    evidence = evidence[:, 0, :]
    total = evidence.sum(axis=1, keepdims=True)
    if not np.all(np.isfinite(evidence)) or np.any(evidence < 0) or np.any(total <= 0):
        raise InputError("process.leaf_likelihood must be finite, non-negative, not all zero")
    evidence = evidence / total
    rows = np.arange(n)
    true = evidence[rows, x[:, 0]].copy()
    evidence[rows, x[:, 0]] = evidence[rows, 0]
    evidence[rows, 0] = true
    return evidence


# -- one population run ----------------------------------------------------------------------
def _chunked_step(
    tables: np.ndarray, child_up: np.ndarray, parent_down: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`factor_messages` over chunks of factors (bounded temporaries)."""
    n, K, m, s = tables.shape
    step = max(1, _CHUNK_BYTES // (_BYTES_PER_ENTRY * K * m * s))
    ups, downs = [], []
    for start in range(0, n, step):
        sl = slice(start, start + step)
        up, down = factor_messages(
            tables[sl], child_up[sl], None if parent_down is None else parent_down[sl]
        )
        ups.append(up)
        downs.append(down)
    up = np.concatenate(ups)
    down = None if parent_down is None else np.concatenate(downs)
    dead = up.sum(axis=1) <= 0
    if dead.any():
        raise ZeroEvidenceError(np.flatnonzero(dead))
    return up, down


def _tie_shared_accuracy(marginal: np.ndarray) -> np.ndarray:
    """Per row, the probability that an argmax with ties broken uniformly is value 0."""
    best = marginal.max(axis=1, keepdims=True)
    ties = (marginal == best).sum(axis=1)
    return (marginal[:, 0] == best[:, 0]) / ties


def _upward_levels(
    v: int,
    n_classes: int,
    m: int,
    s: int,
    L: int,
    t: float,
    N: int,
    process: Any,
    rng: np.random.Generator,
) -> Iterator[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]:
    """The upward populations ``(N, card_l)`` level by level from the leaves, each with the
    rule tables ``(N, K, m, s)`` and children ``(N, s)`` it was computed from (None at the
    leaves)."""
    up = _leaf_messages(v, N, t, process, rng)
    yield up, None, None
    for level in range(1, L + 1):
        K = n_classes if level == L else v
        kids = rng.integers(N, size=(N, s))
        table = draw_tables(N, K, m, s, v, seed=rng)
        up, _ = _chunked_step(table, up[kids], None)
        yield up, table, kids


def upward_populations(
    v: int,
    n_classes: int,
    m: int,
    s: int,
    L: int,
    eps: float,
    n_pop: int = 20000,
    seed: int = 0,
    process: Any = None,
    memory_budget: int | str | None = None,
    stop: Callable[[np.ndarray], bool] | None = None,
) -> np.ndarray:
    """The upward population of the root after ``L`` levels, in the canonical frame (the
    true symbol is value 0): the upward half of :func:`profile`, one population, keeping only
    one level in memory, for deep trees.

    Parameters
    ----------
    v, n_classes, m, s, L, eps, process : as for :func:`profile` (``eps`` a scalar).
    n_pop : members.
    seed : a non-negative int or None.
    memory_budget : see :func:`hiergrammar.validation.check_memory`.
    stop : optional test of a level's population ``(n_pop, v)``; when it holds, the
        population of that level is returned early (e.g. once it has settled on a fixed point).

    Returns
    -------
    numpy.ndarray
        ``(n_pop, n_classes)`` normalised root messages (``(n_pop, v)`` if stopped early);
        ``[:, 0]`` the beliefs in the truth.

    Examples
    --------
    >>> root = upward_populations(8, 8, 2, 2, L=6, eps=0.0, n_pop=100)
    >>> root.shape, float(root[:, 0].min())
    ((100, 8), 1.0)
    """
    v, n_classes, m, s, L = check_parameters(v, n_classes, m, s, L)
    n_pop = check_int("n_pop", n_pop, 1)
    if process is not None:
        _check_process(process, v)
    t = float(_check_eps(eps, process))
    check_memory(
        "the upward populations of population dynamics",
        n_pop * (8 * (2 * v + v * s + 2 * max(v, n_classes)) + v * m * s * 2) + _CHUNK_BYTES,
        memory_budget,
    )
    seed = check_seed("seed", seed, allow_generator=False)
    rng = np.random.default_rng(seed)
    root = None
    for level, (up, _, _) in enumerate(
        _upward_levels(v, n_classes, m, s, L, t, n_pop, process, rng)
    ):
        root = up
        if stop is not None and level < L and stop(up):
            break
    return root


def _run(
    v: int,
    n_classes: int,
    m: int,
    s: int,
    L: int,
    t: float,
    n_pop: int,
    seed: list[int],
    process: Any,
) -> dict[str, np.ndarray]:
    """One population-dynamics run; returns per-level true-symbol beliefs ``(L+1, n_pop)`` and
    per-member accuracies."""
    rng = np.random.default_rng(seed)
    N = n_pop
    levels = list(_upward_levels(v, n_classes, m, s, L, t, N, process, rng))
    up = [level[0] for level in levels]
    tables = [level[1] for level in levels]
    children = [level[2] for level in levels]

    beliefs = {k: np.empty((L + 1, N)) for k in ("u", "d", "p", "correct")}
    down = np.full((N, n_classes), 1.0 / n_classes)
    own = np.arange(N)  # down[j] is the downward message of the node whose upward is up[own[j]]
    for level in range(L, -1, -1):
        marginal = up[level][own] * down
        total = marginal.sum(axis=1, keepdims=True)
        if np.any(total <= 0):  # contradictory certainties (e.g. eps = 1): no NaN beliefs
            raise ZeroEvidenceError(np.flatnonzero(total[:, 0] <= 0))
        marginal /= total
        beliefs["u"][level] = up[level][:, 0]
        beliefs["d"][level] = down[:, 0]
        beliefs["p"][level] = marginal[:, 0]
        beliefs["correct"][level] = _tie_shared_accuracy(marginal)
        if level == 0:
            break
        # The local configuration below each node: its table and children, as built upward.
        kids = children[level][own]
        _, into_children = _chunked_step(tables[level][own], up[level - 1][kids], down)
        which = rng.integers(s, size=N)  # follow one child per member
        rows = np.arange(N)
        down = into_children[rows, which]
        own = kids[rows, which]
    return beliefs


def _check_eps(eps: ArrayLike, process: Any) -> np.ndarray:
    eps = np.asarray(eps, dtype=np.float64)
    if eps.ndim > 1:
        raise InputError(f"eps must be a scalar or a 1-d array, got shape {eps.shape}")
    for value in np.atleast_1d(eps):
        if process is None:
            check_float("eps", value, 0.0, 1.0)
        else:
            check_float("eps (the process time t)", value, 0.0)
    return eps


def profile(
    v: int,
    n_classes: int,
    m: int,
    s: int,
    L: int,
    eps: ArrayLike,
    n_pop: int = 20000,
    seed: int | np.random.Generator | None = 0,
    process: Any = None,
    n_replicas: int = 4,
    n_bins: int = 50,
    memory_budget: int | str | None = None,
) -> PopulationProfile:
    """Population dynamics of BP on the RHM: the law of its messages at every level.

    Parameters
    ----------
    v, n_classes, m, s, L : the RHM's parameters (validated as :class:`hiergrammar.rhm.RHM`).
    eps : scalar or 1-d array. The epsilon-process noise (``0 <= eps <= 1``) when ``process``
        is None; the process time ``t`` otherwise.
    n_pop : population size per level, all replicas together.
    seed : seed or generator. Every ``eps`` uses the same random draws (rules, children), so
        curves in ``eps`` are smooth.
    process : None for the epsilon-process, or a noise process with ``v``,
        ``corrupt(x, t, seed=...)`` and ``leaf_likelihood(observation, t)`` (the leaf noise).
    n_replicas : the population is run as this many independent populations of
        ``n_pop // n_replicas`` members; the means pool them and their spread gives the
        standard errors ``*_se``. Members of one population share ancestors (a member is the
        child of about ``s`` others), so the naive ``std / sqrt(n_pop)`` underestimates the
        error, by a factor up to about 3 near the transition; the replicas measure it.
    n_bins : bins of the histograms on ``[0, 1]``.
    memory_budget : bytes (or text such as ``"2GiB"``); see
        :func:`hiergrammar.validation.check_memory`.

    Returns
    -------
    :class:`PopulationProfile`: ``u``, ``d``, ``p``, ``accuracy`` of shape ``(L+1,)`` (scalar
    ``eps``) or ``(len(eps), L+1)``, their standard errors ``*_se``, the populations
    ``samples_*`` ``(..., L+1, n_pop)`` and histograms ``hist_*`` ``(..., L+1, n_bins)``.

    Raises
    ------
    InputError
        on parameters out of range, a process without the interface, or ``v`` mismatch;
        :class:`hiergrammar.validation.ZeroEvidenceError` when leaf evidence no rule can
        produce empties a message.

    Examples
    --------
    >>> noiseless = profile(8, 8, 2, 2, 2, eps=0.0, n_pop=300)
    >>> noiseless.p.tolist(), noiseless.accuracy.tolist()
    ([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    >>> flat = profile(8, 8, 2, 2, 2, eps=1 - 1 / 8, n_pop=300)   # uninformative leaves
    >>> bool(np.allclose(flat.u, 1 / 8)), round(float(flat.p[2]), 6)
    (True, 0.125)
    """
    v, n_classes, m, s, L = check_parameters(v, n_classes, m, s, L)
    n_replicas = check_int("n_replicas", n_replicas, 1)
    n_pop = check_int("n_pop", n_pop, n_replicas)
    per = n_pop // n_replicas
    n_bins = check_int("n_bins", n_bins, 1)
    if process is not None:
        _check_process(process, v)
    eps = _check_eps(eps, process)
    scalar = eps.ndim == 0
    eps = np.atleast_1d(eps)
    per_level = per * (
        8 * (v + v * s + 2 * max(v, n_classes))  # upward populations, gathers, messages
        + v * m * s * np.dtype(np.uint16 if v > 256 else np.uint8).itemsize  # tables
    )
    check_memory(
        "the populations and rule tables of population dynamics",
        L * per_level + 4 * 3 * eps.size * (L + 1) * per * n_replicas + _CHUNK_BYTES,
        memory_budget,
    )
    seed = check_seed("seed", seed)
    if isinstance(seed, np.random.Generator):
        base = int(seed.integers(2**63))
    elif seed is None:
        base = int(np.random.SeedSequence().generate_state(1, np.uint64)[0])
    else:
        base = seed
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    keys = ("u", "d", "p", "correct")
    out: dict[str, list] = {k: [] for k in keys}
    jobs = [(t, r) for t in eps for r in range(n_replicas)]
    for t, r in progress(jobs, desc=f"population dynamics L={L}", total=len(jobs)):
        beliefs = _run(v, n_classes, m, s, L, float(t), per, [base, r], process)
        for k in keys:
            out[k].append(beliefs[k])
    # (n_eps, R, L+1, per) -> pooled (n_eps, L+1, R*per), and per-replica means (n_eps, R, L+1)
    shaped = {k: np.stack(a).reshape(eps.size, n_replicas, L + 1, per) for k, a in out.items()}
    stacked = {k: a.transpose(0, 2, 1, 3).reshape(eps.size, L + 1, -1) for k, a in shaped.items()}
    means = {k: a.mean(axis=-1) for k, a in stacked.items()}
    replica_means = {k: a.mean(axis=-1) for k, a in shaped.items()}
    if n_replicas > 1:
        ses = {k: a.std(axis=1, ddof=1) / np.sqrt(n_replicas) for k, a in replica_means.items()}
    else:  # a lower bound: it ignores the genealogy's correlations
        ses = {k: a.std(axis=-1) / np.sqrt(a.shape[-1]) for k, a in stacked.items()}
    samples = {k: stacked[k].astype(np.float32) for k in ("u", "d", "p")}
    hists = {
        k: np.apply_along_axis(lambda a: np.histogram(a, bins=edges, density=True)[0], -1, a)
        for k, a in samples.items()
    }

    def pick(a: np.ndarray) -> np.ndarray:
        return a[0] if scalar else a

    return PopulationProfile(
        u=pick(means["u"]),
        d=pick(means["d"]),
        p=pick(means["p"]),
        accuracy=pick(means["correct"]),
        u_se=pick(ses["u"]),
        d_se=pick(ses["d"]),
        p_se=pick(ses["p"]),
        accuracy_se=pick(ses["correct"]),
        samples_u=pick(samples["u"]),
        samples_d=pick(samples["d"]),
        samples_p=pick(samples["p"]),
        hist_u=pick(hists["u"]),
        hist_d=pick(hists["d"]),
        hist_p=pick(hists["p"]),
        bin_edges=edges,
        n_pop=per * n_replicas,
        n_replicas=n_replicas,
    )
