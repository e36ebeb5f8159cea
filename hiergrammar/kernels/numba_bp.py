"""Fused CPU belief propagation on a weighted grammar's tree (numba).

The same quantities as :func:`hiergrammar.bp.tree_bp`, :func:`hiergrammar.bp.upward_pass` and
:func:`hiergrammar.sampling.posterior_sample`, computed by compiled loops that visit each rule
entry once per pass: gather the children's messages at the rule's tuple, multiply, accumulate,
with no temporaries. The grammar comes as plain arrays (see :mod:`hiergrammar.kernels.layout`):
``rules[l]`` ``(card_l, m_l, s)``, ``rule_probs[l]`` ``(card_l, m_l)`` and ``cards`` (levels
``0..L``), so weighted, ambiguous and per-level-cardinality grammars all run here.

Speed comes from the layout (a block of 32 samples in float32, 16 in float64, processed
together with the samples in the vector lanes, see :mod:`hiergrammar.kernels._numba_loops`) and
from reading the ``(n, d, v)`` evidence directly: its checks (finite, non-negative, not zero at a
leaf) happen while it is read, so validation and the change of layout cost no extra pass.

Threads: the blocks run in parallel on numba's threads; their number is numba's setting
(``numba.set_num_threads``, the ``NUMBA_NUM_THREADS`` environment variable; all cores by
default). Compiled code is cached on disk (``numba`` ``cache=True``), so only the first call
of each message dtype after installation compiles (about 15 s of CPU on a 2-core machine; 0.6 s
to load from the cache afterwards; see :func:`available`).

Results agree with the numpy reference to rounding: 1e-12 in float64, 1e-5 in float32.

Examples
--------
>>> import numpy as np
>>> rules = {1: np.array([[[0, 1], [1, 0]], [[0, 0], [1, 1]]])}   # cards (2, 2), m = 2, s = 2
>>> probs = {1: np.array([[0.9, 0.1], [0.5, 0.5]])}
>>> res = tree_bp(rules, probs, (2, 2), np.array([[[1.0, 0.0], [0.0, 1.0]]]))
>>> res.marginals[1].round(4).tolist()        # the root: only tuple (0, 1) fits, rule of a=0
[[[1.0, 0.0]]]
>>> float(np.exp(res.log_evidence[0]).round(4))   # P(x) = prior(0) * 0.9
0.45
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

import numpy as np

from hiergrammar.kernels import layout
from hiergrammar.validation import (
    InputError,
    ZeroEvidenceError,
    check_memory,
    check_real_array,
    make_rng,
)

__all__ = [
    "available",
    "compile_kernels",
    "lanes",
    "posterior_sample",
    "release_scratch",
    "threads",
    "tree_bp",
    "upward_pass",
]


def lanes(dtype: Any, n: int | None = None) -> int:
    """Samples per block (the vector lanes of the inner loops): 32 in float32, 16 in float64;
    for a batch of ``n`` too small to give every thread full blocks, fewer (down to 8 and 4),
    so that the threads share the work and scratch is not wasted on empty lanes.

    Examples
    --------
    >>> lanes(np.float32), lanes(np.float64)
    (32, 16)
    >>> lanes(np.float32, n=1)
    8
    """
    single = np.dtype(dtype) == np.float32
    full, smallest = (32, 8) if single else (16, 4)
    if n is None:
        return full
    per_thread = -(-int(n) // threads())
    count = smallest
    while count < min(per_thread, full):
        count *= 2
    return count


@cache
def available(full: bool = False) -> bool:
    """Whether numba imports and compiles code here.

    The default check compiles a one-line function (a fraction of a second). With ``full``
    the kernel itself is compiled for float64 (or loaded from numba's disk cache): the first
    call of each message dtype compiles it, about 15 s of CPU on a 2-core machine, once per
    installation.

    Examples
    --------
    >>> isinstance(available(), bool)
    True
    """
    try:
        import numba

        probe = numba.njit(lambda x: x + 1)
        if probe(1) != 2:  # pragma: no cover - a broken compiler
            return False
        if full:
            compile_kernels((np.float64,))
    except Exception:  # noqa: BLE001 - any failure to import or compile means: not available
        return False
    return True


def compile_kernels(dtypes: Sequence[Any] = (np.float32, np.float64)) -> None:
    """Compile the kernels for each message dtype of ``dtypes``, or load them from numba's
    on-disk cache: a tiny :func:`tree_bp` call per dtype. The first call after an installation
    compiles (about 15 s of CPU per dtype on a 2-core machine); later processes load the cache
    in about a second, which a new worker process can pay here rather than in its first task.

    Examples
    --------
    >>> compile_kernels((np.float64,))
    """
    for dtype in dtypes:
        tree_bp({1: np.array([[[0, 1]]])}, None, (2, 1), np.ones((1, 2, 2)), dtype=dtype)


def _loops():
    from hiergrammar.kernels import _numba_loops

    return _numba_loops


_POOL: dict[int, ThreadPoolExecutor] = {}
_POOL_LOCK = threading.Lock()


def threads() -> int:
    """Threads the kernels use: numba's setting (``numba.set_num_threads``, or the
    ``NUMBA_NUM_THREADS`` environment variable; all cores by default).

    Examples
    --------
    >>> threads() >= 1
    True
    """
    import numba

    return int(numba.get_num_threads())


#: Largest scratch buffer kept per thread between calls (bytes); larger ones are freed.
SCRATCH_KEEP = 512 * 1024**2

_SCRATCH = threading.local()


def _scratch(size: int, dtype: type) -> np.ndarray:
    """``size`` numbers of ``dtype`` of this thread's scratch, grown as needed and kept for its
    next call when at most :data:`SCRATCH_KEEP` bytes (fresh pages cost a fault and zeroing
    each: about half the time of a deep tree)."""
    buffers = getattr(_SCRATCH, "buffers", None)
    if buffers is None:
        buffers = _SCRATCH.buffers = {}
    key = np.dtype(dtype).str
    buffer = buffers.get(key)
    if buffer is None or buffer.size < size:
        buffer = np.empty(size, dtype=dtype)
        if buffer.nbytes <= SCRATCH_KEEP:
            buffers[key] = buffer
    return buffer[:size]


def release_scratch() -> None:
    """Free the scratch kept by the calling thread (the pool's threads keep theirs until
    their next call with a larger batch, or the end of the process).

    Examples
    --------
    >>> release_scratch()
    """
    _SCRATCH.buffers = {}


def _run_blocks(kernel: Callable, n: int, n_lanes: int, args: tuple, scratch: int) -> None:
    """Run ``kernel(first_block, last_block, *args, buffer)`` over the ``ceil(n / n_lanes)``
    blocks, split into a few tasks per thread (the compiled kernels release the GIL), so that
    a busy core does not hold the others back; ``buffer`` is the running thread's scratch of
    ``scratch`` numbers of the message dtype."""
    dtype = args[2][8].dtype  # the grammar's weights: the message dtype

    def task(first: int, last: int) -> None:
        kernel(first, last, *args, _scratch(scratch, dtype))

    n_blocks = -(-n // n_lanes)
    workers = min(threads(), n_blocks)
    if workers <= 1:
        task(0, n_blocks)
        return
    tasks = min(n_blocks, 4 * workers)
    bounds = [n_blocks * i // tasks for i in range(tasks + 1)]
    with _POOL_LOCK:
        pool = _POOL.get(workers)
        if pool is None:
            pool = _POOL[workers] = ThreadPoolExecutor(workers, "hiergrammar-bp")
    futures = [pool.submit(task, bounds[i], bounds[i + 1]) for i in range(tasks)]
    for future in futures:
        future.result()


def _check_device(device: Any) -> None:
    if device not in (None, "cpu"):
        raise InputError(f"device={device!r}: the numba backend runs on the CPU only")


class _Prepared:
    """Everything the compiled kernel reads, checked once: ``E`` (evidence), ``G`` (grammar)."""

    def __init__(
        self,
        rules,
        rule_probs,
        cards,
        leaf_evidence,
        root_prior,
        node_evidence,
        dtype,
        memory: tuple[int, Any, str],
    ):
        self.dtype = layout.check_compute_dtype(dtype)
        self.flat = flat = layout.flatten_grammar(rules, rule_probs, cards)
        ev = layout.leaf_evidence_shape(flat, leaf_evidence)
        # The memory estimate comes before any copy of the evidence: a broadcast view of
        # millions of sets costs nothing to pass in but must be refused, not materialised.
        outputs_per_sample, memory_budget, what = memory
        self.n, self.lanes = ev.shape[0], lanes(self.dtype, ev.shape[0])
        self.check_memory(outputs_per_sample, memory_budget, what, copies=1)
        if (
            ev.dtype == np.float32
            and self.dtype == np.float64
            or ev.dtype
            not in (
                np.float32,
                np.float64,
            )
        ):
            ev = ev.astype(np.float64)  # (three compiled variants: f64->f64, f64->f32, f32->f32)
        n = self.n
        prior = np.ascontiguousarray(layout.prepare_root_prior(flat, root_prior, n))
        nev, nev_offsets, log_scale = layout.node_evidence_rows(flat, node_evidence, n, self.dtype)
        if nev_offsets[0] >= 0:
            # Level-0 node evidence multiplies the leaf evidence (checked here first: the kernel
            # checks what it reads, the product).
            check_real_array("leaf_evidence", ev, nonnegative=True)
            v = int(flat.cards[0])
            ev = ev * nev[:, : flat.d * v].reshape(ev.shape).astype(ev.dtype)
            nev_offsets = nev_offsets.copy()
            nev_offsets[0] = -1
        ev = np.ascontiguousarray(ev)
        # The kernel reads the evidence's bits too (as signed integers of the same width).
        if ev.dtype == np.float32:
            ev64, ev32 = np.empty((0, 0, 0)), ev
        else:
            ev64, ev32 = ev, np.empty((0, 0, 0), dtype=np.float32)
        evidence = (ev64, ev64.view(np.int64), ev32, ev32.view(np.int32))
        self.log_scale = log_scale
        weights = flat.weights.astype(self.dtype)
        uniform = np.zeros(flat.L + 1, dtype=np.bool_)
        for level in range(1, flat.L + 1):
            w = weights[
                int(flat.rule_offsets[level]) // flat.s : int(flat.rule_offsets[level + 1])
                // flat.s
            ]
            uniform[level] = bool(np.all(w == w[0]))
        u8 = np.uint64
        self.E = (*evidence, _loops().POW2, prior, nev, nev_offsets)
        self.G = (
            flat.L,
            flat.s,
            flat.cards.astype(u8),
            flat.widths.astype(u8),
            flat.offsets.astype(u8),
            flat.rules.astype(np.uint32),
            flat.rule_offsets.astype(u8),
            flat.ms.astype(u8),
            weights,
            uniform,
            self._gather(flat),
        )

    def _gather(self, flat: layout.FlatGrammar) -> tuple:
        """The rule entries arranged for the gather kernels (:func:`layout.gather_lists`)."""
        g = layout.gather_lists(flat)
        return (
            g.children,
            g.children_offsets,
            g.parents,
            g.others,
            g.weights.astype(self.dtype),
            g.segments,
            g.list_offsets,
            g.segment_offsets,
        )

    def check_memory(
        self, outputs_per_sample: int, memory_budget: Any, what: str, copies: int = 0
    ) -> None:
        """Outputs of ``outputs_per_sample`` numbers, ``copies`` float64 copies of the evidence
        (a conversion or a product with level-0 node evidence) and the threads' scratch."""
        b = np.dtype(self.dtype).itemsize
        scratch = 2 * self.flat.row_length * self.lanes * b  # per running task (one per thread)
        evidence = copies * 8 * self.flat.d * int(self.flat.cards[0])
        check_memory(
            f"{what} on n={self.n} evidence sets",
            self.n * (outputs_per_sample * b + 16 + evidence) + threads() * scratch,
            memory_budget,
        )

    def run(self, mode: int, outputs: dict) -> tuple[np.ndarray, np.ndarray]:
        """Run the kernel in ``mode`` with the outputs named in ``outputs`` (the others empty);
        return ``(log_evidence, status)``."""
        n, dt = self.n, self.dtype
        none = np.full(self.flat.L + 1, -1, dtype=np.int64)
        rows = np.empty((n, 0), dtype=dt)
        log_evidence = np.empty(n)
        status = np.zeros(n, dtype=np.int8)
        O = (  # noqa: N806 - the kernel's name for its outputs
            outputs.get("up_offsets", none),
            outputs.get("down_offsets", none),
            outputs.get("marg_offsets", none),
            *outputs.get("up", (rows, rows)),
            *outputs.get("down", (rows, rows)),
            *outputs.get("marginals", (rows, rows)),
            outputs.get("root", np.empty((n, 0), dtype=dt)),
            log_evidence,
            status,
            outputs.get("uniforms", np.empty((n, 0))),
            outputs.get("node_offsets", np.zeros(self.flat.L + 1, dtype=np.uint64)),
            outputs.get("levels", np.empty((n, 0), dtype=np.int64)),
        )
        if n:
            kernel = _loops().run_blocks
            size = self.flat.row_length * self.lanes * (2 if mode == _loops().FULL else 1)
            _run_blocks(kernel, n, self.lanes, (mode, self.E, self.G, self.lanes, O), size)
        self.raise_for_status(status)
        return log_evidence + self.log_scale, status

    @staticmethod
    def raise_for_status(status: np.ndarray) -> None:
        if not status.any():
            return
        invalid = np.flatnonzero(status == 2)
        if invalid.size:
            raise InputError(
                "leaf_evidence must be finite and non-negative (it holds NaN, inf or negative "
                f"values in sample(s) {invalid[:10].tolist()})"
            )
        raise ZeroEvidenceError(np.flatnonzero(status))


def _rows(n: int, leaf: int, internal: int, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    return np.empty((n, leaf), dtype=dtype), np.empty((n, internal), dtype=dtype)


def tree_bp(
    rules: Mapping[int, Any],
    rule_probs: Mapping[int, Any] | None,
    cards: Sequence[int],
    leaf_evidence: Any,
    root_prior: Any = None,
    node_evidence: Mapping[int, Any] | None = None,
    dtype: Any = np.float64,
    *,
    levels: Any = None,
    messages: bool = True,
    memory_budget: int | str | None = None,
    device: Any = None,
):
    """Exact marginals of every node of the tree, for ``n`` evidence sets at once.

    Parameters
    ----------
    rules : dict ``{l: int array (card_l, m_l, s)}``, ``l = 1..L``
        Child tuples of each parent value.
    rule_probs : dict ``{l: float array (card_l, m_l)}`` or None
        Rule weights (uniform ``1/m_l`` if None).
    cards : sequence of ``L + 1`` ints
        Cardinalities of levels ``0..L``.
    leaf_evidence : array_like ``(n, s**L, cards[0])``, or ``(s**L, cards[0])`` for one set
        Non-negative finite likelihoods, any scale (each leaf is rescaled by a power of two).
    root_prior : array_like ``(cards[L],)`` or ``(n, cards[L])``, optional
        Uniform if None.
    node_evidence : dict ``{l: (n, width_l, card_l)}``, optional
        Extra unary factors (level 0 multiplies the leaf evidence).
    dtype : np.float32 or np.float64
        Message precision.
    levels : int or iterable of int, optional
        The levels whose arrays are returned (all if None); the others are None. The downward
        pass stops at the lowest level asked for.
    messages : bool
        Return ``up`` and ``down`` too (else they are lists of None: less memory traffic).
    memory_budget : int or str, optional
        Overrides the memory budget (:func:`hiergrammar.validation.memory_budget`).
    device : None or "cpu"
        For a signature shared with the torch backend; only the CPU is served.

    Returns
    -------
    hiergrammar.bp.BPResult
        ``up``, ``down``, ``marginals``: lists over levels ``0..L`` of ``(n, width_l,
        card_l)`` arrays (views of per-sample rows); ``log_evidence`` ``(n,)`` float64, ``log
        sum_trees P(tree) prod(evidence)`` with ``P(tree)`` = root prior times the rule
        probabilities.

    Raises
    ------
    InputError
        On bad shapes, negative, NaN or infinite evidence, bad weights or dtype, or an estimate
        above the memory budget.
    ZeroEvidenceError
        Naming the evidence sets that no tree can produce.

    Examples
    --------
    >>> from hiergrammar import RHM
    >>> rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=0)
    >>> cards = [rhm.card(l) for l in range(rhm.L + 1)]
    >>> ev = rhm.sample(3, seed=1).onehot()
    >>> res = tree_bp(rhm.rules, None, cards, ev, dtype=np.float32)
    >>> res.marginals[2].shape, res.up[0].dtype.name
    ((3, 1, 2), 'float32')
    """
    from hiergrammar.bp import BPResult

    _check_device(device)
    flat = layout.flatten_grammar(rules, rule_probs, cards)
    kept = layout.check_levels(flat, levels)
    offsets, leaf, internal = layout.output_offsets(flat, kept)
    outputs = (leaf + internal) * (3 if messages else 1)
    prep = _Prepared(
        rules,
        rule_probs,
        cards,
        leaf_evidence,
        root_prior,
        node_evidence,
        dtype,
        (outputs, memory_budget, "tree_bp"),
    )
    n, dt = prep.n, prep.dtype
    outputs = {"marg_offsets": offsets, "marginals": _rows(n, leaf, internal, dt)}
    if messages:
        outputs.update(up_offsets=offsets, down_offsets=offsets)
        outputs.update(up=_rows(n, leaf, internal, dt), down=_rows(n, leaf, internal, dt))
    log_evidence, _ = prep.run(_loops().FULL, outputs)
    empty = [None] * (flat.L + 1)
    return BPResult(
        up=layout.level_views(flat, outputs["up"], offsets) if messages else empty,
        down=layout.level_views(flat, outputs["down"], offsets) if messages else list(empty),
        marginals=layout.level_views(flat, outputs["marginals"], offsets),
        log_evidence=log_evidence,
    )


def upward_pass(
    rules: Mapping[int, Any],
    rule_probs: Mapping[int, Any] | None,
    cards: Sequence[int],
    leaf_evidence: Any,
    root_prior: Any = None,
    node_evidence: Mapping[int, Any] | None = None,
    dtype: Any = np.float64,
    *,
    levels: Any = None,
    memory_budget: int | str | None = None,
    device: Any = None,
):
    """The upward half of :func:`tree_bp` (same arguments): the upward messages, the root's
    marginal and the log-evidence, at about a third of the cost.

    Returns
    -------
    hiergrammar.bp.UpwardResult
        ``up`` (list over levels of ``(n, width_l, card_l)``; None at levels not kept),
        ``root_marginal`` ``(n, 1, card_L)``, ``log_evidence`` ``(n,)``.

    Raises
    ------
    InputError, ZeroEvidenceError
        As for :func:`tree_bp`.

    Examples
    --------
    >>> rules = {1: np.array([[[0, 1]], [[1, 0]]])}      # two classes, one rule each
    >>> res = upward_pass(rules, None, (2, 2), np.array([[[0.2, 0.8], [0.6, 0.4]]]))
    >>> res.root_marginal.round(3).tolist()           # (0.2*0.4) : (0.8*0.6)
    [[[0.143, 0.857]]]
    """
    from hiergrammar.bp import UpwardResult

    _check_device(device)
    flat = layout.flatten_grammar(rules, rule_probs, cards)
    kept = layout.check_levels(flat, levels)
    offsets, leaf, internal = layout.output_offsets(flat, kept)
    prep = _Prepared(
        rules,
        rule_probs,
        cards,
        leaf_evidence,
        root_prior,
        node_evidence,
        dtype,
        (leaf + internal, memory_budget, "upward_pass"),
    )
    n, dt = prep.n, prep.dtype
    outputs = {
        "up_offsets": offsets,
        "up": _rows(n, leaf, internal, dt),
        "root": np.empty((n, int(flat.cards[-1])), dtype=dt),
    }
    log_evidence, _ = prep.run(_loops().UPWARD, outputs)
    return UpwardResult(
        up=layout.level_views(flat, outputs["up"], offsets),
        root_marginal=outputs["root"][:, None, :],
        log_evidence=log_evidence,
    )


def posterior_sample(
    rules: Mapping[int, Any],
    rule_probs: Mapping[int, Any] | None,
    cards: Sequence[int],
    leaf_evidence: Any,
    root_prior: Any = None,
    seed: Any = 0,
    dtype: Any = np.float64,
    *,
    node_evidence: Mapping[int, Any] | None = None,
    memory_budget: int | str | None = None,
    device: Any = None,
):
    """Draw one tree per evidence set from ``P(tree | evidence)``, exactly, in one pass.

    The root is drawn from its marginal; then, top-down, each node with sampled value ``a``
    picks one of ``a``'s rules ``j`` with weight ``rule_probs[a, j] * prod_i up_i(b_i)`` (its
    children's upward messages at the rule's tuple) and writes the tuple into its children.

    Parameters
    ----------
    rules, rule_probs, cards, leaf_evidence, root_prior, dtype, node_evidence, memory_budget,
    device
        As for :func:`tree_bp`.
    seed : int, numpy.random.Generator or None
        Seed of the draws. Each sample uses its own row of ``1 + internal nodes`` uniform
        numbers, drawn in sample order, so the draws do not depend on how a batch is split
        (two calls on halves with one Generator give the draws of one call on the whole).

    Returns
    -------
    hiergrammar.rhm.RHMSample
        ``levels[l]`` int64 ``(n, width_l)``, ``v = cards[0]``.

    Raises
    ------
    InputError, ZeroEvidenceError
        As for :func:`tree_bp`, and on a bad seed.

    Examples
    --------
    >>> rules = {1: np.array([[[0, 1], [1, 0]]])}         # one class, two rules
    >>> draw = posterior_sample(rules, None, (2, 1), np.array([[[1.0, 0.0], [1.0, 1.0]]]))
    >>> draw.x.tolist()                                   # the first leaf is observed as 0
    [[0, 1]]
    """
    from hiergrammar.rhm import RHMSample

    _check_device(device)
    rng = make_rng(seed, "seed")
    prep = _Prepared(
        rules,
        rule_probs,
        cards,
        leaf_evidence,
        root_prior,
        node_evidence,
        dtype,
        (0, memory_budget, "posterior_sample"),
    )
    flat, n = prep.flat, prep.n
    nodes = int(flat.widths.sum())
    node_offsets = np.zeros(flat.L + 1, dtype=np.uint64)
    node_offsets[1:] = np.cumsum(flat.widths[:-1])
    check_memory(
        f"posterior_sample's uniform numbers and draws on n={n} evidence sets",
        n * 8 * (nodes + 1 + flat.n_internal),
        memory_budget,
    )
    outputs = {
        "uniforms": rng.random((n, 1 + flat.n_internal)),
        "node_offsets": node_offsets,
        "levels": np.empty((n, nodes), dtype=np.int64),
    }
    prep.run(_loops().SAMPLE, outputs)
    out = outputs["levels"]
    levels = tuple(
        out[:, int(node_offsets[level]) : int(node_offsets[level]) + int(flat.widths[level])]
        for level in range(flat.L + 1)
    )
    return RHMSample(levels=levels, v=int(flat.cards[0]))
