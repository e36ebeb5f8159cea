"""Exact posterior sampling of whole trees of a grammar given leaf evidence (docs/model.md §4).

:func:`posterior_sample` draws every tree of a batch in one top-down pass: the root from its BP
marginal, then, for each factor whose parent already has value ``a``, one of ``a``'s rules ``r``
with weight ``rule_probs[a, r] * prod_i mu_up_i(b_i)`` (its probability times the children's
upward messages at its tuple), whose children it writes. Any
:class:`~hiergrammar.grammar.Grammar` works: weighted, per-level, ambiguous (several rules, even
of several parents, may give the same children: the draw is over rules, and the tree's
probability is the sum over them). This is the paper's forward-backward resampling (section 5):
noise an input, then sample a new one from the posterior. It runs on the backends of
:mod:`hiergrammar.bp` (``backend=``); :func:`exact_forward_backward` streams: it noises
integer strings block by block and draws their trees chunk by chunk
(:mod:`hiergrammar.streaming`).

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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hiergrammar.bp import (
    UpwardResult,
    _canonical,
    _check_dtype,
    _run,
    _upward_result,
    bp_bytes_per_set,
    resolve_backend,
    tree_bp,
)
from hiergrammar.evidence import check_leaf_evidence
from hiergrammar.grammar import Grammar, GrammarSample, check_grammar
from hiergrammar.processes import GaussianProcess, Process, check_leaves
from hiergrammar.streaming import (
    STREAM_BLOCK,
    block_generators,
    chunk_ranges,
    stream_blocks,
    stream_chunk_size,
    stream_entropy,
)
from hiergrammar.validation import (
    InputError,
    ZeroEvidenceError,
    check_memory,
    make_rng,
)

__all__ = [
    "FORWARD_BACKWARD_BLOCK",
    "ForwardBackwardResult",
    "exact_forward_backward",
    "forward_backward_bytes_per_sample",
    "forward_backward_chunk_size",
    "posterior_sample",
    "posterior_sample_reference",
    "sampling_bytes_per_set",
]


def _pick(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """One draw per row of ``weights`` (``(..., k)``, non-negative, positive sums) from the
    uniform numbers ``u`` ``(...)``: the first index whose cumulative weight exceeds ``u``
    times the total; min() guards against round-off."""
    cdf = np.cumsum(weights, axis=-1)
    return np.minimum((cdf <= u[..., None] * cdf[..., -1:]).sum(axis=-1), weights.shape[-1] - 1)


def _categorical(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row of ``weights`` (``(..., k)``) from ``rng``."""
    return _pick(weights, rng.random(weights.shape[:-1]))


def _row_reader(uniforms: np.ndarray) -> Callable[[tuple[int, ...]], np.ndarray]:
    """A source of uniform numbers for :func:`_draw_trees` that reads one row per sample,
    ``(n, 1 + internal nodes)``, column by column: the root, then the internal nodes level by
    level from the top, left to right, as the fused kernels read theirs."""
    column = 0

    def read(shape: tuple[int, ...]) -> np.ndarray:  # shape (n, w)
        nonlocal column
        block = uniforms[:, column : column + shape[1]]
        column += shape[1]
        return block

    return read


def sampling_bytes_per_set(grammar: Grammar) -> int:
    """Memory the numpy top-down draws of :func:`posterior_sample` need per evidence set, in
    bytes, beyond the upward pass: the sampled levels, and at the widest level the candidate
    rules ``(width, m, s)`` with their weights and cumulative weights.

    Parameters
    ----------
    grammar : Grammar
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
    total = 8 * sum(int(grammar.width(level)) for level in range(grammar.L + 1))
    largest = 0
    for level in range(1, grammar.L + 1):
        _, m, s = (int(x) for x in grammar.rules[level].shape)
        w = int(grammar.width(level))
        largest = max(largest, w * m * (8 * s + 8 * 4))
    return total + largest


def _draw_trees(
    grammar: Grammar, bp: UpwardResult, uniforms: Callable[[tuple[int, ...]], np.ndarray]
) -> list[np.ndarray]:
    """The top-down half of posterior sampling, from an :func:`upward_pass` result of any float
    dtype: the root from its marginal, then at every sampled parent ``a`` one of its rules
    ``r`` with weight ``rule_probs[a, r] * prod_i up_i(b_i)`` (its children's upward messages
    at the rule's tuple). ``uniforms(shape)`` gives the uniform numbers of each draw, ``(n, 1)``
    for the root and then ``(n, width_l)`` per level from the top (``rng.random``, or
    :func:`_row_reader`). Returns ``levels[l]`` ``(n, width_l)``.

    A level whose rules are all equally likely skips the multiplication by their (constant)
    probability: the draw is the same, and a uniform RHM draws what earlier versions drew."""
    n = bp.up[0].shape[0]
    levels: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * (grammar.L + 1)
    root = bp.root_marginal.reshape(n, 1, grammar.card(grammar.L))
    levels[grammar.L] = _pick(root, uniforms((n, 1)))  # (n, 1)
    for level in range(grammar.L, 0, -1):
        rules = grammar.rules[level]  # (card_l, m, s)
        parents = levels[level]  # (n, w)
        w = grammar.width(level)
        child_up = bp.up[level - 1].reshape(n, w, grammar.s, grammar.card(level - 1))
        tuples = rules[parents]  # (n, w, m, s): the candidate rules of each sampled parent
        weight = np.take_along_axis(child_up[:, :, 0, :], tuples[..., 0], axis=-1)
        for i in range(1, grammar.s):
            weight *= np.take_along_axis(child_up[:, :, i, :], tuples[..., i], axis=-1)
        probs = grammar.rule_probs[level]
        if not np.all(probs == probs.flat[0]):
            weight = weight * probs[parents]
        choice = _pick(weight, uniforms((n, w)))  # (n, w)
        levels[level - 1] = rules[parents, choice].reshape(n, -1)
    return levels


def posterior_sample(
    grammar: Grammar,
    leaf_evidence: np.ndarray,
    root_prior: np.ndarray | None = None,
    seed: int | np.random.Generator | None = 0,
    dtype: type = np.float64,
    *,
    memory_budget: int | str | None = None,
    backend: str | None = None,
    device: Any = None,
) -> GrammarSample:
    """Draw one tree per evidence set from ``P(tree | evidence)``, exactly, in one pass.

    Parameters
    ----------
    grammar : Grammar
        Any :class:`~hiergrammar.grammar.Grammar` (weighted, per-level, ambiguous included).
    leaf_evidence : array_like
        ``(n, s**L, v)``, or ``(s**L, v)`` for one set: leaf likelihoods (the contract of
        :mod:`hiergrammar.evidence`, ``v = grammar.cards[0]``). ``n = 0`` gives an empty sample.
    root_prior : array_like, optional
        ``(card_L,)`` or ``(n, card_L)``; the grammar's ``root_prior`` if None.
    seed : int, numpy.random.Generator or None
        Seed of the draws (a non-negative int, None for fresh entropy, or a Generator).
    dtype : type
        Message dtype of the upward pass, ``np.float64`` or ``np.float32``.
    memory_budget : int or str, optional
        Overrides the memory budget.
    backend : {None, "numpy", "numba", "torch"}
        As for :func:`hiergrammar.bp.tree_bp`. The backends draw from the same distribution
        but consume the seed's random numbers differently: the numba and torch kernels take one
        row of ``1 + internal nodes`` uniform numbers per sample (so their draws do not depend
        on how a batch is split), the numpy reference draws level by level.
    device : None, str or torch.device
        With ``backend="torch"``: where the drawn levels live (torch tensors).

    Returns
    -------
    GrammarSample
        ``levels[l]`` of shape ``(n, s**(L-l))``.

    Raises
    ------
    InputError
        On bad evidence, prior, seed, dtype or backend, or an estimate above the memory budget.
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
    >>> zipf = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0, rule_law="zipf", zipf_a=2.0)
    >>> draws = posterior_sample(zipf, np.ones((4, 4)), seed=1, backend="numpy")
    >>> bool(np.isfinite(zipf.tree_log_prob(draws.levels)).all())
    True
    """
    grammar = check_grammar(grammar)
    _check_dtype(dtype)  # None is float64 to numpy, refused here whichever backend runs

    def reference() -> GrammarSample:
        rng = make_rng(seed, "seed")
        # Only upward messages are needed: a rule's weight given its sampled parent is its
        # probability times the product of its children's upward messages.
        bp = _upward_result(
            grammar,
            leaf_evidence,
            root_prior,
            None,
            dtype,
            memory_budget,
            "posterior_sample",
            sampling_bytes_per_set(grammar),
        )
        return GrammarSample(levels=tuple(_draw_trees(grammar, bp, rng.random)), v=grammar.cards[0])

    return _run(
        "posterior_sample",
        backend,
        device,
        reference,
        lambda fn, device: fn(
            grammar.rules,
            grammar.rule_probs,
            grammar.cards,
            leaf_evidence,
            grammar.root_prior if root_prior is None else root_prior,
            seed,
            dtype,
            memory_budget=memory_budget,
            device=device,
        ),
        _canonical(grammar, leaf_evidence, root_prior, None, dtype, "posterior_sample"),
    )


def posterior_sample_reference(
    grammar: Grammar,
    leaf_evidence: np.ndarray,
    root_prior: np.ndarray | None = None,
    seed: int | np.random.Generator | None = 0,
    dtype: type = np.float64,
    *,
    memory_budget: int | str | None = None,
) -> GrammarSample:
    """Slow reference: sample nodes top-down, each from its BP marginal given all the nodes
    clamped so far, clamping it before moving on (one numpy BP run per node).

    Costs ``O(number of nodes)`` BP runs, so use it on small trees only. It shares no code
    with the one-pass sampler beyond :func:`hiergrammar.bp.tree_bp` (numpy backend).

    Parameters
    ----------
    grammar, leaf_evidence, root_prior, seed, dtype, memory_budget
        As for :func:`posterior_sample`.

    Returns
    -------
    GrammarSample
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
    grammar = check_grammar(grammar)
    rng = make_rng(seed, "seed")
    levels_with_clamps = range(grammar.L + 1)
    clamp_bytes = 8 * sum(
        grammar.width(level) * grammar.card(level) for level in levels_with_clamps
    )
    per_set = bp_bytes_per_set(grammar, dtype, node_levels=levels_with_clamps) + clamp_bytes
    ev = check_leaf_evidence(
        grammar,
        leaf_evidence,
        bytes_per_set=per_set,
        what="posterior_sample_reference",
        memory_budget=memory_budget,
    )
    n = ev.shape[0]
    clamps = {
        level: np.ones((n, grammar.width(level), grammar.card(level)))
        for level in range(grammar.L + 1)
    }
    rows = np.arange(n)
    levels: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * (grammar.L + 1)
    for level in range(grammar.L, -1, -1):
        values = np.empty((n, grammar.width(level)), dtype=np.int64)
        for i in range(grammar.width(level)):
            marginal = tree_bp(
                grammar,
                ev,
                root_prior,
                node_evidence=clamps,
                dtype=dtype,
                memory_budget=memory_budget,
                backend="numpy",
            ).marginals
            values[:, i] = _categorical(marginal[level][:, i], rng)
            clamps[level][:, i] = 0.0  # clamp: a one-hot row, written by index (no eye(card))
            clamps[level][rows, i, values[:, i]] = 1.0
        levels[level] = values
    return GrammarSample(levels=tuple(levels), v=grammar.cards[0])


# -- forward-backward: noise a string, then sample its tree from the exact posterior ----------
#: Samples per random stream of :func:`exact_forward_backward`
#: (:data:`hiergrammar.streaming.STREAM_BLOCK`). Block ``b`` (samples
#: ``b*BLOCK .. (b+1)*BLOCK - 1``) draws its noise and its trees from its own streams, so the
#: result does not depend on how the work is cut into chunks.
FORWARD_BACKWARD_BLOCK = STREAM_BLOCK


def _block_floats_per_sample(grammar: Grammar) -> int:
    """Floats per sample alive at the peak of one chunk: the likelihood and its value-first
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
    return 2 * grammar.d * grammar.cards[0] + messages + gathers


def forward_backward_bytes_per_sample(grammar: Grammar, dtype: type = np.float64) -> int:
    """Working memory per sample of one chunk of :func:`exact_forward_backward`, in bytes:
    the likelihood, BP messages and rule gathers (with a factor 1.5 for the temporaries of
    input checks and normalisations: the peak measured with tracemalloc at ``L = 7``,
    ``v = 32``, ``m = 8`` was 1.38 times the count), the row of uniform numbers of the
    draws, and the drawn levels.

    Parameters
    ----------
    grammar : Grammar
        The grammar.
    dtype : np.float32 or np.float64
        The float type of the likelihood and the messages.

    Returns
    -------
    int
        Bytes per sample.

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> forward_backward_bytes_per_sample(RHM(v=4, n_classes=2, m=2, s=2, L=1, seed=0))
    496
    """
    item = np.dtype(dtype).itemsize
    floats = int(1.5 * _block_floats_per_sample(grammar) * item)
    return floats + 8 * (1 + grammar.n_internal) + 8 * grammar.n_nodes


def forward_backward_chunk_size(
    grammar: Grammar,
    process: Process,
    n: int,
    *,
    dtype: type = np.float64,
    chunk_size: int | None = None,
    memory_budget: int | str | None = None,
) -> int:
    """Strings per chunk of :func:`exact_forward_backward` on ``n`` strings: the largest whose
    working set fits the memory budget (:func:`hiergrammar.streaming.stream_chunk_size`), with
    :func:`forward_backward_bytes_per_sample` per string and, per block, its strings and their
    observations (:meth:`~hiergrammar.processes.Process.observation_bytes`).

    Parameters
    ----------
    grammar : Grammar
    process : Process
    n : int
        Strings, ``>= 0``.
    dtype : np.float32 or np.float64
    chunk_size : int, optional
        An explicit chunk size, checked against the budget.
    memory_budget : int or str, optional
        Overrides the library's memory budget.

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
    >>> from hiergrammar.noise import MaskingProcess
    >>> rhm = RHM(v=4, n_classes=2, m=2, s=2, L=1, seed=0)
    >>> forward_backward_chunk_size(rhm, MaskingProcess(v=4), 10, chunk_size=3)
    3
    """
    d = grammar.d
    return stream_chunk_size(
        "exact forward-backward (likelihood, BP messages, rule gathers and draws)",
        forward_backward_bytes_per_sample(grammar, dtype),
        fixed_bytes=min(STREAM_BLOCK, n) * (d * 8 + process.observation_bytes(d)),
        chunk_size=chunk_size,
        memory_budget=memory_budget,
    )


@dataclass(frozen=True)
class ForwardBackwardResult:
    """What :func:`exact_forward_backward` returns.

    Attributes
    ----------
    levels : tuple of numpy.ndarray
        The new samples' trees, as in :class:`~hiergrammar.grammar.GrammarSample`: ``levels[l]`` has
        shape ``(n, width_l)``, ``levels[0]`` the leaves, ``levels[L]`` ``(n, 1)`` the class.
    observation : numpy.ndarray or None
        The noisy observation the trees were drawn from: ``(n, d)`` ints for the masking
        (``v`` = MASK), uniform and eps processes (the eps-process's is the input itself),
        ``(n, d, v)`` floats for the Gaussian process; None with ``keep_observation=False``.
    t : float or numpy.ndarray
        The time(s), as given.
    chunk_size : int
        Samples per chunk the work was cut into (the results do not depend on it).
    """

    levels: tuple[np.ndarray, ...]
    observation: np.ndarray | None
    t: float | np.ndarray
    chunk_size: int = STREAM_BLOCK

    @property
    def x(self) -> np.ndarray:
        """The new leaves, shape ``(n, d)``."""
        return self.levels[0]

    @property
    def y(self) -> np.ndarray:
        """The new classes, shape ``(n,)``."""
        return self.levels[-1][:, 0]


def _as_numpy(values: Any) -> np.ndarray:
    """Drawn levels as a numpy array (the torch backend returns tensors)."""
    return values.cpu().numpy() if hasattr(values, "cpu") else np.asarray(values)


def _draw_chunk(
    grammar: Grammar,
    evidence: np.ndarray,
    rng: np.random.Generator,
    dtype: type,
    backend: str,
    memory_budget: int | str | None,
) -> tuple[np.ndarray, ...]:
    """One chunk's trees. Every backend takes one row of ``1 + internal nodes`` uniform numbers
    per sample from ``rng``, in sample order: consecutive chunks of a block read the block's
    stream as one batch would."""
    if backend == "numpy":
        bp = _upward_result(
            grammar,
            evidence,
            None,
            None,
            dtype,
            memory_budget,
            "exact_forward_backward",
            sampling_bytes_per_set(grammar),
        )
        uniforms = rng.random((evidence.shape[0], 1 + grammar.n_internal))
        return tuple(_draw_trees(grammar, bp, _row_reader(uniforms)))
    trees = posterior_sample(
        grammar, evidence, seed=rng, dtype=dtype, memory_budget=memory_budget, backend=backend
    )
    return tuple(_as_numpy(values) for values in trees.levels)


def exact_forward_backward(
    grammar: Grammar,
    process: Process,
    x: np.ndarray,
    t: float | np.ndarray,
    seed: int | np.random.Generator | None = 0,
    *,
    dtype: type = np.float64,
    memory_budget: int | str | None = None,
    backend: str | None = None,
    chunk_size: int | None = None,
    keep_observation: bool = True,
) -> ForwardBackwardResult:
    """Noise ``x`` to time ``t``, then draw new trees from ``P(tree | x_t)`` exactly.

    What a perfect reverse process started at ``t`` produces: the forward process
    ``process.corrupt`` gives ``x_t``, its exact leaf likelihood enters an upward BP pass, and
    whole trees (every level, the class included) are drawn top-down from the posterior.

    The work streams (:mod:`hiergrammar.streaming`): samples are noised block by block
    (:data:`FORWARD_BACKWARD_BLOCK` samples, each block with its own random streams spawned
    from ``seed``), and the likelihoods and BP messages exist for one chunk at a time (the
    largest that fits the memory budget, at most a block), never for all ``n``. Each sample's
    draws read a fixed row of its block's stream, so the result depends on ``seed``, the data
    and the backend only, never on the chunk size. A progress bar follows the blocks.

    Parameters
    ----------
    grammar : Grammar
        The model (any :class:`~hiergrammar.grammar.Grammar`).
    process : Process
        A forward process of :mod:`hiergrammar.processes` with ``process.v ==
        grammar.cards[0]`` (the leaf vocabulary).
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
        Bound on one chunk's working set (and on a kept Gaussian observation); default the
        library's (``$HIERGRAMMAR_MEMORY_BUDGET``, 4 GiB). It sets the chunk size.
    backend : {None, "numpy", "numba", "torch"}
        The BP backend (None: the fastest on the CPU). Every backend reads the same uniform
        numbers in the same places; their draws agree except where round-off in the weights
        moves a number across a boundary of the cumulative weights.
    chunk_size : int, optional
        Samples per chunk, ``>= 1`` (a value above the block size counts as one block),
        instead of the largest that fits the budget. The result does not depend on it.
    keep_observation : bool
        Return ``x_t`` (default). ``False`` returns None instead: with the Gaussian process
        ``x_t`` is ``(n, d, v)`` floats, which a long stream should not keep.

    Returns
    -------
    ForwardBackwardResult
        ``levels`` (the new trees), ``observation`` (``x_t`` or None), ``t`` and the
        ``chunk_size`` used.

    Raises
    ------
    InputError
        For bad arguments, a vocabulary mismatch, a bad ``chunk_size``, or a chunk of one
        sample (or of ``chunk_size``) above the memory budget: the message names the bound.
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
    >>> small = exact_forward_backward(rhm, MaskingProcess(v=8), data.x, 0.5, seed=2,
    ...                                chunk_size=7)
    >>> bool((small.x == res.x).all())              # the chunk size changes nothing
    True
    """
    grammar = check_grammar(grammar)
    v = grammar.cards[0]
    if not isinstance(process, Process):
        raise InputError(f"process must be a hiergrammar.processes.Process, got {process!r}")
    if process.v != v:
        raise InputError(
            f"process.v={process.v} violates process.v == grammar.cards[0] = {v} "
            "(the process acts on the grammar's leaves)"
        )
    x = check_leaves("x", x, v)
    n, d = x.shape
    if d != grammar.d:
        raise InputError(f"x must have shape (n, d) = (n, {grammar.d}), got {x.shape}")
    if np.ndim(t) > 1 or (np.ndim(t) == 1 and np.shape(t)[0] != n):
        raise InputError(f"t must be a scalar or have shape (n,) = ({n},), got {np.shape(t)}")
    process.alpha(t)  # checks the times once, before any work
    entropy = stream_entropy(seed)
    if dtype not in (np.float32, np.float64):
        raise InputError(f"dtype must be np.float32 or np.float64, got {dtype!r}")
    backend = resolve_backend(backend)  # checks the backend once, before any work
    chunk = forward_backward_chunk_size(
        grammar, process, n, dtype=dtype, chunk_size=chunk_size, memory_budget=memory_budget
    )
    if isinstance(process, GaussianProcess) and keep_observation:
        check_memory(
            f"the Gaussian observation (n, d, v) = ({n}, {d}, {v}) (keep_observation=False "
            "streams without it)",
            n * d * v * np.dtype(np.float64).itemsize,
            memory_budget,
        )
    if n == 0:
        empty = x.reshape(0, d)
        return ForwardBackwardResult(
            levels=tuple(
                np.empty((0, grammar.width(level)), dtype=np.int64)
                for level in range(grammar.L + 1)
            ),
            observation=process.corrupt(empty, t, seed=0) if keep_observation else None,
            t=t,
            chunk_size=chunk,
        )
    t_array = np.asarray(t)
    levels: list[np.ndarray] = []
    observation: np.ndarray | None = None
    for b, start, stop in stream_blocks(n, desc="exact forward-backward"):
        noise_rng, sample_rng = block_generators(entropy, b, 2)
        t_block = t if t_array.ndim == 0 else t_array[start:stop]
        obs = process.corrupt(x[start:stop], t_block, seed=noise_rng)
        if keep_observation:
            if observation is None:
                observation = np.empty((n,) + obs.shape[1:], dtype=obs.dtype)
            observation[start:stop] = obs
        for a, z in chunk_ranges(start, stop, chunk):
            t_chunk = t if t_array.ndim == 0 else t_array[a:z]
            evidence = process.leaf_likelihood(
                obs[a - start : z - start], t_chunk, dtype=dtype, memory_budget=memory_budget
            )
            try:
                trees = _draw_chunk(grammar, evidence, sample_rng, dtype, backend, memory_budget)
            except ZeroEvidenceError as err:
                raise ZeroEvidenceError(np.asarray(err.samples) + a, err.reason) from None
            del evidence
            if not levels:  # the outputs, written in place: no list of parts to concatenate
                levels = [np.empty((n,) + values.shape[1:], values.dtype) for values in trees]
            for level, values in enumerate(trees):
                levels[level][a:z] = values
    return ForwardBackwardResult(
        levels=tuple(levels), observation=observation, t=t, chunk_size=chunk
    )
