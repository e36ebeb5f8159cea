"""Belief propagation on a weighted grammar's tree in torch: one implementation for any device.

The same computations as :mod:`hiergrammar.kernels.numba_bp`, with the same signatures plus a
``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, a ``torch.device``); results are torch tensors
on that device. Tests run it on the CPU; on CUDA it runs unchanged.

Each level is a few batched tensor operations. As in :mod:`hiergrammar.bp`, messages are stored
value-first, ``(card, width, n)``, so that a gather at the rules' tuples copies whole rows of
samples (contiguous on the CPU, coalesced on a GPU); results are returned as ``(n, width, card)``
views of them (``permute``, no copy).

* upward: gather the children's messages at the rules' tuples (``(K*m, width, n)`` per child
  position), multiply them and the rule weights, sum over each parent's ``m`` rules;
* downward: multiply the parent's outgoing message, the weights and the other children's
  messages, and add each entry onto its child value (``index_add_`` over rows);

with every message normalised and the log normalisers summed in float64, as in
:mod:`hiergrammar.bp`. Leaf evidence is rescaled per leaf by an exact power of two before it is
cast to the message dtype, so float32 holds any scale.

Memory: the gathered rule entries dominate (about ``(s + 2) * K * m * width`` numbers per level
and sample). Batches are cut into chunks whose working set stays under ``work_bytes`` (512 MiB
by default), and ``levels=``/``messages=False`` keep only what is asked for: with
``levels=[L]`` only the upward pass runs.

Examples
--------
>>> import numpy as np
>>> rules = {1: np.array([[[0, 1], [1, 0]], [[0, 0], [1, 1]]])}   # cards (2, 2), m = 2, s = 2
>>> probs = {1: np.array([[0.9, 0.1], [0.5, 0.5]])}
>>> res = tree_bp(rules, probs, (2, 2), np.array([[[1.0, 0.0], [0.0, 1.0]]]), device="cpu")
>>> res.marginals[1].tolist()          # a torch tensor on the device
[[[1.0, 0.0]]]
>>> round(float(res.log_evidence.exp()), 4)
0.45
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from hiergrammar.kernels import layout
from hiergrammar.validation import (
    InputError,
    ZeroEvidenceError,
    check_memory,
    check_real_array,
    make_rng,
)

__all__ = ["available", "posterior_sample", "to_torch_dtype", "tree_bp", "upward_pass"]

#: Default working-set size of one chunk of samples (bytes).
WORK_BYTES = 512 * 1024**2

_LOG2 = math.log(2.0)


def available() -> bool:
    """True: this module imported, so torch is installed.

    Examples
    --------
    >>> available()
    True
    """
    return True


def to_torch_dtype(dtype: Any) -> torch.dtype:
    """``torch.float32`` or ``torch.float64`` from a numpy or torch dtype, else an
    :class:`~hiergrammar.validation.InputError`.

    Examples
    --------
    >>> to_torch_dtype(np.float32), to_torch_dtype(torch.float64)
    (torch.float32, torch.float64)
    """
    if isinstance(dtype, torch.dtype):
        if dtype in (torch.float32, torch.float64):
            return dtype
        raise InputError(f"dtype must be float32 or float64, got {dtype}")
    kind = layout.check_compute_dtype(dtype)
    return torch.float32 if kind == np.float32 else torch.float64


class _Grammar:
    """A flattened grammar as tensors on one device: per level the tuples' values per child
    position ``rules[l][i]`` ``(K*m,)`` and the weights ``(K*m, 1, 1)``."""

    def __init__(self, flat: layout.FlatGrammar, device: torch.device, dtype: torch.dtype):
        self.flat = flat
        self.device = device
        s = flat.s
        self.tuples, self.rules, self.weights = [None], [None], [None]
        for level in range(1, flat.L + 1):
            start, stop = int(flat.rule_offsets[level]), int(flat.rule_offsets[level + 1])
            K, m = int(flat.cards[level]), int(flat.ms[level])
            r = torch.as_tensor(flat.rules[start:stop].astype(np.int64), device=device)
            self.tuples.append(r.reshape(K, m, s))
            self.rules.append([r.reshape(-1, s)[:, i].contiguous() for i in range(s)])
            w = torch.as_tensor(flat.weights[start // s : stop // s], device=device)
            self.weights.append(w.to(dtype).reshape(K * m, 1, 1))

    def width(self, level: int) -> int:
        return int(self.flat.widths[level])

    def card(self, level: int) -> int:
        return int(self.flat.cards[level])


def _device(device: Any) -> torch.device:
    try:
        resolved = torch.device("cpu" if device is None else device)
    except (RuntimeError, TypeError) as err:
        raise InputError(f"device={device!r} is not a torch device ({err})") from None
    # Refuse an absent accelerator here, in one line, rather than as the driver's error from
    # the first tensor moved there.
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(f"device={device!r}: no CUDA device is available here")
        if resolved.index is not None and resolved.index >= count:
            raise InputError(
                f"device={device!r} violates cuda index < {count} (the CUDA devices here)"
            )
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device={device!r}: no MPS device is available here")
    return resolved


def _as_tensor(name: str, value: Any, device: torch.device) -> torch.Tensor:
    """A float tensor on ``device`` (float32/float64 kept, anything else as float64)."""
    if isinstance(value, torch.Tensor):
        t = value.to(device)
        if t.is_complex():
            raise InputError(f"{name} must be real, got complex values (dtype {t.dtype})")
        return t if t.dtype in (torch.float32, torch.float64) else t.to(torch.float64)
    array = np.asarray(value)
    if array.dtype not in (np.float32, np.float64):
        array = check_real_array(name, array)
    return torch.as_tensor(array, device=device)


class _Inputs:
    """Checked inputs on the device: rescaled leaf evidence, prior, node evidence."""

    def __init__(
        self,
        rules,
        rule_probs,
        cards,
        leaf_evidence,
        root_prior,
        node_evidence,
        dtype,
        device,
        memory: tuple[int, Any, str] | None = None,
    ):
        self.device = _device(device)
        self.dtype = to_torch_dtype(dtype)
        self.flat = flat = layout.flatten_grammar(rules, rule_probs, cards)
        self.grammar = _Grammar(flat, self.device, self.dtype)
        d, v = flat.d, int(flat.cards[0])
        if not isinstance(leaf_evidence, torch.Tensor):
            leaf_evidence = layout.leaf_evidence_shape(flat, leaf_evidence)  # no copy yet
        shape = tuple(leaf_evidence.shape)
        if len(shape) == 3 and shape[1:] == (d, v) and memory is not None:
            # Before any copy: a broadcast view of millions of sets must be refused, not
            # materialised. ``memory``: numbers per sample of the outputs, budget, and name.
            numbers, memory_budget, what = memory
            b = 8 if self.dtype == torch.float64 else 4
            check_memory(
                f"{what} on n={shape[0]} evidence sets",
                shape[0] * (numbers * b + 16 + 2 * 8 * d * v),
                memory_budget,
            )
        ev = _as_tensor("leaf_evidence", leaf_evidence, self.device)
        if ev.ndim == 2:
            ev = ev[None]
        if ev.ndim != 3 or tuple(ev.shape[1:]) != (d, v):
            raise InputError(
                f"leaf_evidence must have shape (n, s**L, v) = (n, {d}, {v}), or (s**L, v) = "
                f"({d}, {v}) for one set; got {tuple(ev.shape)}"
            )
        self.n = n = int(ev.shape[0])
        if n and not bool(torch.isfinite(ev).all()):
            raise InputError("leaf_evidence must be finite (it holds NaN or inf)")
        if n and bool((ev < 0).any()):
            raise InputError(
                f"leaf_evidence violates evidence >= 0: it must be non-negative "
                f"(min {float(ev.min()):.3g})"
            )
        prior = layout.prepare_root_prior(flat, _numpy(root_prior), n)
        # value-first (card_L, 1, 1 or n)
        self.prior = torch.as_tensor(prior.T[:, None, :].copy(), device=self.device).to(self.dtype)
        nev, nev_offsets, log_scale = layout.node_evidence_rows(
            flat, _numpy_dict(node_evidence), n, np.float64
        )
        self.node = {}
        for level in range(flat.L + 1):
            start = int(nev_offsets[level])
            if start >= 0:
                w, c = int(flat.widths[level]), int(flat.cards[level])
                rows = torch.as_tensor(nev[:, start : start + w * c], device=self.device)
                self.node[level] = rows.reshape(n, w, c)
        if 0 in self.node:
            ev = ev * self.node.pop(0).to(ev.dtype)
        # An exact power of two per leaf brings its maximum into [0.5, 1): float32 holds any
        # scale; the exponents go back into the log-evidence.
        peak = ev.amax(dim=-1) if n else ev.new_zeros((0, d))
        _, exponents = torch.frexp(peak)
        exponents = torch.where(peak > 0, exponents, torch.zeros_like(exponents)).to(torch.int64)
        if n and int(exponents.abs().max()) > 100:
            # near the ends of the range: scale in float64, in two steps (2**-e itself may not
            # be representable)
            half = exponents // 2
            ev = torch.ldexp(ev.to(torch.float64), -half[..., None].to(torch.float64))
            ev = torch.ldexp(ev, -(exponents - half)[..., None].to(torch.float64))
        else:
            ev = torch.ldexp(ev, -exponents[..., None].to(ev.dtype))
        self.leaves = ev.to(self.dtype).permute(2, 1, 0).contiguous()  # (v, d, n)
        self.log_scale = exponents.sum(dim=1).to(torch.float64) * _LOG2
        self.log_scale = self.log_scale + torch.as_tensor(log_scale, device=self.device)
        self.node = {lv: x.to(self.dtype).permute(2, 1, 0) for lv, x in self.node.items()}

    def chunk_size(self, work_bytes: int, downward: bool) -> int:
        flat = self.flat
        b = 8 if self.dtype == torch.float64 else 4
        per = 0
        for level in range(1, flat.L + 1):
            entries = int(flat.widths[level]) * int(flat.cards[level]) * int(flat.ms[level])
            per = max(per, entries * (flat.s + 3) * b)
        per += flat.row_length * b * (4 if downward else 2) + int(flat.cards[0]) * flat.d * 8
        return max(1, int(work_bytes) // per)


def _numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return value


def _numpy_dict(mapping: Mapping[int, Any] | None) -> Mapping[int, Any] | None:
    if not mapping:
        return mapping
    return {key: _numpy(value) for key, value in mapping.items()}


def _normalise(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalise value-first ``(card, ...)`` over axis 0; zero sums stay zero.
    Returns (normalised, sums)."""
    total = raw.sum(dim=0)
    safe = torch.where(total > 0, total, torch.ones_like(total))
    return raw / safe, total


def _log(total: torch.Tensor) -> torch.Tensor:
    """``log`` of positive sums in float64 (zeros give 0: they are reported as dead)."""
    return torch.log(torch.where(total > 0, total, 1).to(torch.float64))


def _gathered(g: _Grammar, level: int, child_up: torch.Tensor) -> list[torch.Tensor]:
    """The children's messages at every rule entry: ``s`` tensors ``(K*m, width, c)``."""
    cc, w, s = g.card(level - 1), g.width(level), g.flat.s
    children = child_up.reshape(cc, w, s, -1)
    return [children[:, :, i, :].index_select(0, g.rules[level][i]) for i in range(s)]


def _prior(inp: _Inputs, sl: slice) -> torch.Tensor:
    return inp.prior if inp.prior.shape[-1] == 1 else inp.prior[..., sl]


def _upward(inp: _Inputs, sl: slice) -> tuple:
    """Upward pass of samples ``sl``: ``up`` per level (value-first ``(card, width, c)``), the
    root's marginal ``(card_L, 1, c)``, the log-evidence ``(c,)`` and the mask of dead samples
    (a zero normaliser)."""
    g, flat = inp.grammar, inp.flat
    message, total = _normalise(inp.leaves[..., sl])
    dead = (total <= 0).any(dim=0)
    log_z = _log(total).sum(dim=0)
    up = [message]
    for level in range(1, flat.L + 1):
        gathered = _gathered(g, level, up[-1])
        product = gathered[0] * g.weights[level]
        for x in gathered[1:]:
            product = product * x
        K = g.card(level)
        raw = product.reshape(K, -1, *product.shape[1:]).sum(dim=1)  # (K, w, c)
        if level in inp.node:
            raw = raw * inp.node[level][..., sl]
        message, total = _normalise(raw)
        dead |= (total <= 0).any(dim=0)
        log_z += _log(total).sum(dim=0)
        up.append(message)
    root, total = _normalise(up[-1] * _prior(inp, sl))
    dead |= total[0] <= 0
    log_z += _log(total[0])
    return up, root, log_z, dead


def _downward(inp: _Inputs, up: list, sl: slice, lowest: int, on_level) -> None:
    """Downward messages (value-first) from the root to level ``lowest``;
    ``on_level(level, down)`` receives each (the caller stores what it needs; nothing else is
    kept)."""
    g, flat = inp.grammar, inp.flat
    s = flat.s
    down = _prior(inp, sl).expand(up[-1].shape)
    on_level(flat.L, down)
    for level in range(flat.L, lowest, -1):
        parent_out = down * inp.node[level][..., sl] if level in inp.node else down
        gathered = _gathered(g, level, up[level - 1])
        K, w, c = parent_out.shape
        cc = g.card(level - 1)
        # the parent's message and the weight at every rule entry, (K*m, w, c)
        base = (parent_out[:, None] * g.weights[level].reshape(K, -1, 1, 1)).reshape(-1, w, c)
        children = parent_out.new_zeros((cc, w, s, c))
        for i in range(s):
            weight = base
            for k in range(s):
                if k != i:
                    weight = weight * gathered[k]
            children[:, :, i, :].index_add_(0, g.rules[level][i], weight)
        down, _ = _normalise(children.reshape(cc, w * s, c))
        on_level(level - 1, down)


def _public(a: torch.Tensor) -> torch.Tensor:
    """Value-first ``(card, w, n)`` -> the public ``(n, w, card)`` (a view)."""
    return a.permute(2, 1, 0)


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
    work_bytes: int = WORK_BYTES,
):
    """Exact marginals of every node of the tree, for ``n`` evidence sets, as torch tensors.

    Parameters
    ----------
    rules, rule_probs, cards, root_prior, node_evidence, levels, messages, memory_budget
        As for :func:`hiergrammar.kernels.numba_bp.tree_bp` (arrays or tensors).
    leaf_evidence : array_like or torch.Tensor ``(n, s**L, cards[0])`` or ``(s**L, cards[0])``
        Non-negative finite likelihoods, any scale.
    dtype : numpy or torch float32/float64
        Message precision.
    device : None, str or torch.device
        Where to compute and return (None: the CPU).
    work_bytes : int
        Working-set size of one chunk of samples.

    Returns
    -------
    hiergrammar.bp.BPResult
        ``up``, ``down``, ``marginals``: lists over levels of ``(n, width_l, card_l)`` tensors
        on ``device`` (None at levels not kept, and for ``up``/``down`` without
        ``messages``); ``log_evidence`` float64 ``(n,)``.

    Raises
    ------
    InputError
        On bad shapes, values, dtype or device, or an estimate above the memory budget.
    ZeroEvidenceError
        Naming the evidence sets that no tree can produce.

    Examples
    --------
    >>> rules = {1: np.array([[[0, 1]], [[1, 0]]])}
    >>> res = tree_bp(rules, None, (2, 2), np.array([[[0.2, 0.8], [0.6, 0.4]]]), levels=[1])
    >>> res.marginals[1].round(decimals=3).tolist(), res.marginals[0] is None
    ([[[0.143, 0.857]]], True)
    """
    from hiergrammar.bp import BPResult

    flat = layout.flatten_grammar(rules, rule_probs, cards)
    kept = layout.check_levels(flat, levels)
    sizes = sum(int(flat.widths[lv]) * int(flat.cards[lv]) for lv in kept)
    memory = (sizes * (3 if messages else 1), memory_budget, "tree_bp")
    inp = _Inputs(
        rules, rule_probs, cards, leaf_evidence, root_prior, node_evidence, dtype, device, memory
    )
    n = inp.n
    b = 8 if inp.dtype == torch.float64 else 4
    check_memory(
        f"tree_bp on n={n} evidence sets",
        n * sizes * b * (3 if messages else 1) + n * 16,
        memory_budget,
    )
    L = flat.L
    out = {name: [None] * (L + 1) for name in ("up", "down", "marginals")}
    for lv in kept:
        shape = (int(flat.cards[lv]), int(flat.widths[lv]), n)
        for name in ("up", "down", "marginals") if messages else ("marginals",):
            out[name][lv] = torch.empty(shape, dtype=inp.dtype, device=inp.device)
    log_evidence = torch.empty(n, dtype=torch.float64, device=inp.device)
    dead = torch.zeros(n, dtype=torch.bool, device=inp.device)
    lowest = min(kept)
    chunk = inp.chunk_size(work_bytes, True)
    for start in range(0, n, chunk):
        sl = slice(start, min(n, start + chunk))
        up, root, log_z, dead_chunk = _upward(inp, sl)
        log_evidence[sl] = log_z
        dead[sl] = dead_chunk

        def on_level(level, down, up=up, sl=sl):
            if out["marginals"][level] is None:
                return
            out["marginals"][level][..., sl] = _normalise(up[level] * down)[0]
            if messages:
                out["up"][level][..., sl] = up[level]
                out["down"][level][..., sl] = down

        _downward(inp, up, sl, lowest, on_level)
    _raise_for_dead(dead)
    views = {
        name: [None if a is None else _public(a) for a in arrays] for name, arrays in out.items()
    }
    return BPResult(
        up=views["up"],
        down=views["down"],
        marginals=views["marginals"],
        log_evidence=log_evidence + inp.log_scale,
    )


def _raise_for_dead(dead: torch.Tensor) -> None:
    if bool(dead.any()):
        raise ZeroEvidenceError(torch.nonzero(dead).flatten().cpu().numpy())


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
    work_bytes: int = WORK_BYTES,
):
    """The upward half of :func:`tree_bp` (same arguments): upward messages, the root's
    marginal and the log-evidence, as tensors on ``device``.

    Returns
    -------
    hiergrammar.bp.UpwardResult
        ``up`` (list over levels of ``(n, width_l, card_l)``; None at levels not kept),
        ``root_marginal`` ``(n, 1, card_L)``, ``log_evidence`` float64 ``(n,)``.

    Raises
    ------
    InputError, ZeroEvidenceError
        As for :func:`tree_bp`.

    Examples
    --------
    >>> rules = {1: np.array([[[0, 1]], [[1, 0]]])}
    >>> res = upward_pass(rules, None, (2, 2), np.array([[[0.2, 0.8], [0.6, 0.4]]]))
    >>> res.root_marginal.shape
    torch.Size([1, 1, 2])
    """
    from hiergrammar.bp import UpwardResult

    flat = layout.flatten_grammar(rules, rule_probs, cards)
    kept = layout.check_levels(flat, levels)
    sizes = sum(int(flat.widths[lv]) * int(flat.cards[lv]) for lv in kept)
    memory = (sizes, memory_budget, "upward_pass")
    inp = _Inputs(
        rules, rule_probs, cards, leaf_evidence, root_prior, node_evidence, dtype, device, memory
    )
    n = inp.n
    b = 8 if inp.dtype == torch.float64 else 4
    check_memory(f"upward_pass on n={n} evidence sets", n * (sizes * b + 16), memory_budget)
    up_out = [None] * (flat.L + 1)
    for lv in kept:
        shape = (int(flat.cards[lv]), int(flat.widths[lv]), n)
        up_out[lv] = torch.empty(shape, dtype=inp.dtype, device=inp.device)
    root_out = torch.empty((int(flat.cards[-1]), 1, n), dtype=inp.dtype, device=inp.device)
    log_evidence = torch.empty(n, dtype=torch.float64, device=inp.device)
    dead = torch.zeros(n, dtype=torch.bool, device=inp.device)
    chunk = inp.chunk_size(work_bytes, False)
    for start in range(0, n, chunk):
        sl = slice(start, min(n, start + chunk))
        up, root, log_z, dead_chunk = _upward(inp, sl)
        for lv in kept:
            up_out[lv][..., sl] = up[lv]
        root_out[..., sl] = root
        log_evidence[sl] = log_z
        dead[sl] = dead_chunk
    _raise_for_dead(dead)
    return UpwardResult(
        up=[None if a is None else _public(a) for a in up_out],
        root_marginal=_public(root_out),
        log_evidence=log_evidence + inp.log_scale,
    )


def _categorical(cdf: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The first index whose cumulative weight exceeds ``u * total`` (the last if none)."""
    threshold = u[..., None] * cdf[..., -1:]
    return (cdf <= threshold).sum(dim=-1).clamp(max=cdf.shape[-1] - 1)


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
    work_bytes: int = WORK_BYTES,
):
    """Draw one tree per evidence set from ``P(tree | evidence)``, exactly, in one pass.

    As :func:`hiergrammar.kernels.numba_bp.posterior_sample`, whose uniform numbers it uses
    when ``seed`` is an int, None or a numpy Generator (then both backends draw the same trees,
    up to rounding at a cumulative weight's edge). A ``torch.Generator`` instead draws the
    uniform numbers on ``device`` (no transfer; different draws).

    Returns
    -------
    hiergrammar.rhm.RHMSample
        ``levels[l]`` int64 tensors ``(n, width_l)`` on ``device``; ``v = cards[0]``.

    Raises
    ------
    InputError, ZeroEvidenceError
        As for :func:`tree_bp`, and on a bad seed.

    Examples
    --------
    >>> rules = {1: np.array([[[0, 1], [1, 0]]])}          # one class, two rules
    >>> draw = posterior_sample(rules, None, (2, 1), np.array([[[1.0, 0.0], [1.0, 1.0]]]))
    >>> draw.x.tolist()                                    # the first leaf is observed as 0
    [[0, 1]]
    """
    from hiergrammar.rhm import RHMSample

    inp = _Inputs(
        rules,
        rule_probs,
        cards,
        leaf_evidence,
        root_prior,
        node_evidence,
        dtype,
        device,
        (0, memory_budget, "posterior_sample"),
    )
    flat, n, g = inp.flat, inp.n, inp.grammar
    nodes = int(flat.widths.sum())
    check_memory(f"posterior_sample on n={n} evidence sets", n * 8 * (2 * nodes + 1), memory_budget)
    if isinstance(seed, torch.Generator):
        uniforms = torch.rand(
            (n, 1 + flat.n_internal), generator=seed, dtype=torch.float64, device=inp.device
        )
    else:
        rng = make_rng(seed, "seed")
        uniforms = torch.as_tensor(rng.random((n, 1 + flat.n_internal)), device=inp.device)
    levels = [
        torch.empty((n, g.width(lv)), dtype=torch.int64, device=inp.device)
        for lv in range(flat.L + 1)
    ]
    dead = torch.zeros(n, dtype=torch.bool, device=inp.device)
    chunk = inp.chunk_size(work_bytes, False)
    for start in range(0, n, chunk):
        sl = slice(start, min(n, start + chunk))
        up, root, _, dead_chunk = _upward(inp, sl)
        dead[sl] = dead_chunk
        c = sl.stop - sl.start
        u = uniforms[sl]
        samples = torch.arange(c, device=inp.device)
        values = _categorical(torch.cumsum(root[:, 0].T.to(torch.float64), dim=-1), u[:, 0])
        levels[flat.L][sl] = values[:, None]
        used = 1
        for level in range(flat.L, 0, -1):
            parents = levels[level][sl]  # (c, w)
            w, s = g.width(level), flat.s
            tuples = g.tuples[level][parents]  # (c, w, m, s)
            weight = g.weights[level].reshape(g.card(level), -1)[parents].to(torch.float64)
            children = up[level - 1]  # (cc, w * s, c)
            for i in range(s):
                position = (torch.arange(w, device=inp.device) * s + i)[None, :, None]
                weight = weight * children[tuples[..., i], position, samples[:, None, None]].to(
                    torch.float64
                )
            choice = _categorical(torch.cumsum(weight, dim=-1), u[:, used : used + w])
            used += w
            picked = torch.gather(tuples, 2, choice[..., None, None].expand(-1, -1, 1, s))
            levels[level - 1][sl] = picked.reshape(c, w * s)
    _raise_for_dead(dead)
    return RHMSample(levels=tuple(levels), v=int(flat.cards[0]))
