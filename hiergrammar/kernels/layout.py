"""Plain-array inputs of the BP kernels: a weighted grammar flattened level by level, and the
checks and layouts every backend shares (pure numpy; no numba or torch here).

A grammar reaches the kernels as three plain objects, the form a general ``Grammar`` holds:

* ``rules``: ``{l: int array (card_l, m_l, s)}`` for ``l = 1..L``, the child tuples of each
  parent value (a tuple may appear under several parents: an ambiguous grammar);
* ``rule_probs``: ``{l: float array (card_l, m_l)}``, the rule weights (uniform ``1/m_l`` when
  None). The factor of a parent ``a`` and children ``(b_1..b_s)`` is the sum of ``a``'s weights
  over its rules with that tuple, so BP stays exact on ambiguous grammars: the tree is fixed;
* ``cards``: the cardinalities of levels ``0..L`` (``cards[l] = rules[l].shape[0]`` for
  ``l >= 1``; ``cards[0]`` is the leaf vocabulary).

Every per-level array of a result is stored inside one per-sample row of all levels, level
``l`` at columns ``offsets[l] .. offsets[l] + width_l * card_l``: node ``i``'s value ``a`` at
``offsets[l] + i * card_l + a``. The public ``(n, width_l, card_l)`` arrays are views of it.

Examples
--------
>>> import numpy as np
>>> rules = {1: np.array([[[0, 1], [1, 1]], [[1, 0], [0, 0]]])}     # card_1 = 2, m = 2, s = 2
>>> flat = flatten_grammar(rules, None, cards=(2, 2))
>>> flat.L, flat.s, flat.widths.tolist(), flat.offsets.tolist()
(1, 2, [2, 1], [0, 4, 6])
>>> flat.weights.tolist()                                           # uniform 1/m
[0.5, 0.5, 0.5, 0.5]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hiergrammar.validation import InputError, check_int, check_real_array

__all__ = [
    "FlatGrammar",
    "check_compute_dtype",
    "flatten_grammar",
    "level_views",
    "node_evidence_rows",
    "prepare_root_prior",
    "uniform_rule_probs",
]


@dataclass(frozen=True)
class FlatGrammar:
    """A grammar as contiguous arrays, the form the kernels read.

    Attributes
    ----------
    L, s : int
        Depth and branching factor.
    cards, widths : int64 arrays ``(L + 1,)``
        Cardinality and number of nodes of each level.
    offsets : int64 array ``(L + 2,)``
        Start of level ``l`` in a per-sample row of all levels; ``offsets[L + 1]`` is the row's
        length ``sum_l width_l * card_l``.
    rules : int32 array
        ``rules[l].ravel()`` for ``l = 1..L`` one after the other; level ``l`` starts at
        ``rule_offsets[l]`` (``rule_offsets[0] = 0`` is unused).
    weights : float64 array
        ``rule_probs[l].ravel()`` concatenated likewise, level ``l`` at ``rule_offsets[l] // s``.
    ms : int64 array ``(L + 1,)``
        Rules per symbol ``m_l`` (``ms[0] = 0``).
    rule_offsets : int64 array ``(L + 2,)``
    """

    L: int
    s: int
    cards: np.ndarray
    widths: np.ndarray
    offsets: np.ndarray
    rules: np.ndarray
    weights: np.ndarray
    ms: np.ndarray
    rule_offsets: np.ndarray

    @property
    def d(self) -> int:
        """Number of leaves ``s**L``."""
        return int(self.widths[0])

    @property
    def row_length(self) -> int:
        """Values of all levels of one sample, ``sum_l width_l * card_l``."""
        return int(self.offsets[-1])

    @property
    def n_internal(self) -> int:
        """Internal nodes (one rule choice each), ``sum_{l >= 1} width_l``."""
        return int(self.widths[1:].sum())

    def multiply_adds(self) -> tuple[int, int]:
        """Multiply-adds per sample of the upward and of the downward pass over the rule
        entries: upward ``s`` per entry and parent node (``s - 1`` products, the weight and
        the sum make ``s``), downward ``s`` per entry, parent node and child position."""
        up = down = 0
        for level in range(1, self.L + 1):
            entries = int(self.cards[level]) * int(self.ms[level]) * int(self.widths[level])
            up += entries * self.s
            down += entries * self.s * self.s
        return up, down


def uniform_rule_probs(rules: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Uniform weights ``1/m_l``, shape ``(card_l, m_l)`` per level: the RHM's rule law.

    Parameters
    ----------
    rules : dict ``{l: (card_l, m_l, s)}``

    Returns
    -------
    dict ``{l: float64 (card_l, m_l)}``

    Examples
    --------
    >>> uniform_rule_probs({1: np.zeros((3, 4, 2), dtype=int)})[1][0].tolist()
    [0.25, 0.25, 0.25, 0.25]
    """
    out = {}
    for level, r in rules.items():
        K, m = np.shape(r)[:2]
        out[level] = np.full((K, m), 1.0 / m)
    return out


def flatten_grammar(
    rules: Mapping[int, Any],
    rule_probs: Mapping[int, Any] | None,
    cards: Sequence[int],
) -> FlatGrammar:
    """Check a grammar's arrays and flatten them for the kernels.

    Parameters
    ----------
    rules : dict ``{l: int array (card_l, m_l, s)}``, ``l = 1..L``
        Child tuples; values at level ``l`` in ``[0, cards[l-1])``.
    rule_probs : dict ``{l: float array (card_l, m_l)}`` or None
        Non-negative finite rule weights (uniform ``1/m_l`` if None). Rows of a grammar sum to
        1; other weights are accepted and enter the log-evidence as given.
    cards : sequence of ``L + 1`` ints
        Cardinalities of levels ``0..L``.

    Returns
    -------
    FlatGrammar

    Raises
    ------
    InputError
        Naming the violated condition (levels not keyed ``1..L``, a bad shape, a tuple value out
        of range, a negative or non-finite weight).

    Examples
    --------
    >>> flatten_grammar({1: np.array([[[0, 2]]])}, None, (2, 1))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    hiergrammar.validation.InputError: rules[1] holds values in [0, 2], outside [0, cards[0]) ...
    """
    if not isinstance(rules, Mapping):
        raise InputError(f"rules must be a dict {{level: (card_l, m_l, s) array}}, got {rules!r}")
    cards = [check_int(f"cards[{i}]", c, low=1) for i, c in enumerate(cards)]
    L = len(cards) - 1
    if L < 1 or sorted(rules) != list(range(1, L + 1)):
        raise InputError(
            f"rules must be keyed by the levels 1..L = 1..{L} (len(cards) - 1), "
            f"got keys {sorted(rules)}"
        )
    if rule_probs is not None and sorted(rule_probs) != list(range(1, L + 1)):
        raise InputError(f"rule_probs must be keyed by the levels 1..{L}, got {sorted(rule_probs)}")
    s = None
    flat_rules, flat_weights, ms, rule_offsets = [], [], [0], [0, 0]
    for level in range(1, L + 1):
        r = np.asarray(rules[level])
        if not np.issubdtype(r.dtype, np.integer) or r.ndim != 3:
            raise InputError(
                f"rules[{level}] must be an int array (card_l, m_l, s), got dtype {r.dtype} "
                f"and shape {r.shape}"
            )
        K, m, s_level = r.shape
        if s is None:
            s = s_level
        if s_level != s or s < 2:
            raise InputError(f"rules[{level}] has s={s_level}; every level needs the same s >= 2")
        if K != cards[level] or m < 1:
            raise InputError(
                f"rules[{level}] must have shape (cards[{level}], m_l >= 1, s) = "
                f"({cards[level]}, m, {s}), got {r.shape}"
            )
        if r.size and (r.min() < 0 or r.max() >= cards[level - 1]):
            raise InputError(
                f"rules[{level}] holds values in [{r.min()}, {r.max()}], outside "
                f"[0, cards[{level - 1}]) = [0, {cards[level - 1]})"
            )
        if rule_probs is None:
            w = np.full((K, m), 1.0 / m)
        else:
            w = check_real_array(
                f"rule_probs[{level}]", rule_probs[level], shape=(K, m), nonnegative=True
            )
        flat_rules.append(r.astype(np.int32).ravel())
        flat_weights.append(np.asarray(w, dtype=np.float64).ravel())
        ms.append(m)
        rule_offsets.append(rule_offsets[-1] + r.size)
    widths = np.array([s ** (L - level) for level in range(L + 1)], dtype=np.int64)
    card_arr = np.array(cards, dtype=np.int64)
    offsets = np.zeros(L + 2, dtype=np.int64)
    offsets[1:] = np.cumsum(widths * card_arr)
    return FlatGrammar(
        L=L,
        s=int(s),
        cards=card_arr,
        widths=widths,
        offsets=offsets,
        rules=np.concatenate(flat_rules),
        weights=np.concatenate(flat_weights),
        ms=np.array(ms, dtype=np.int64),
        rule_offsets=np.array(rule_offsets, dtype=np.int64),
    )


def check_compute_dtype(dtype: Any) -> type:
    """``np.float32`` or ``np.float64`` from a numpy dtype-like, else an :class:`InputError`.

    Examples
    --------
    >>> check_compute_dtype("float32")
    <class 'numpy.float32'>
    """
    try:
        kind = np.dtype(dtype)
    except TypeError:
        kind = None
    if kind not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise InputError(f"dtype must be np.float32 or np.float64, got {dtype!r}")
    return kind.type


def leaf_evidence_shape(flat: FlatGrammar, leaf_evidence: Any) -> np.ndarray:
    """The leaf evidence as an ``(n, d, v)`` array (``(d, v)`` is one set), shape checked only:
    its values are checked by the kernels as they read it."""
    d, v = flat.d, int(flat.cards[0])
    array = np.asarray(leaf_evidence)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[1:] != (d, v):
        raise InputError(
            f"leaf_evidence must have shape (n, s**L, v) = (n, {d}, {v}), or (s**L, v) = "
            f"({d}, {v}) for one set; got {np.shape(leaf_evidence)}"
        )
    if array.dtype == object or np.iscomplexobj(array) or not np.issubdtype(array.dtype, np.number):
        array = check_real_array("leaf_evidence", array)
    return array


def prepare_root_prior(flat: FlatGrammar, root_prior: Any, n: int) -> np.ndarray:
    """The normalised root prior, float64 ``(1, card_L)`` (shared) or ``(n, card_L)``.

    Raises
    ------
    InputError
        On a wrong shape, NaN, infinite or negative values, or a zero sum.
    """
    card = int(flat.cards[-1])
    if root_prior is None:
        return np.full((1, card), 1.0 / card)
    array = np.asarray(root_prior)
    if array.shape == (card,):
        array = array[None]
    elif array.shape != (n, card):
        raise InputError(
            f"root_prior must have shape (card_L,) = ({card},) or (n, card_L) = ({n}, {card}); "
            f"got {array.shape}"
        )
    prior = check_real_array("root_prior", array, nonnegative=True)
    total = prior.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        bad = np.flatnonzero(total[:, 0] <= 0)
        raise InputError(
            "root_prior violates sum > 0: it must have a positive sum for every evidence set "
            f"(zero for sample(s) {bad[:10].tolist()})"
        )
    return prior / total


def _frexp_exponent(x: np.ndarray) -> np.ndarray:
    return np.frexp(x)[1].astype(np.int64)


def node_evidence_rows(
    flat: FlatGrammar, node_evidence: Mapping[int, Any] | None, n: int, dtype: type
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Node evidence as per-sample rows: ``(rows, level_offsets, log_scale)``.

    ``rows`` ``(n, total)`` of ``dtype`` holds the levels that carry evidence one after the
    other, each node's vector scaled by a power of two so that its maximum lies in ``[0.5, 1)``
    (exact; float32 then holds any scale); ``level_offsets`` ``(L + 1,)`` gives each level's
    start in a row, ``-1`` for levels without evidence; ``log_scale`` ``(n,)`` is the log of
    the scales taken out, to add to the log-evidence.

    Raises
    ------
    InputError
        On a level outside ``0..L``, a wrong shape, NaN, infinite or negative values.
    """
    level_offsets = np.full(flat.L + 1, -1, dtype=np.int64)
    log_scale = np.zeros(n)
    if not node_evidence:
        return np.zeros((n, 0), dtype=dtype), level_offsets, log_scale
    if not isinstance(node_evidence, Mapping):
        raise InputError(
            "node_evidence must be a dict {level: (n, width_l, card_l) array}, "
            f"got {type(node_evidence).__name__}"
        )
    parts, start = [], 0
    for key in sorted(node_evidence):
        level = check_int("node_evidence level", key, 0, flat.L)
        shape = (int(flat.widths[level]), int(flat.cards[level]))
        name = f"node_evidence[{key!r}]"
        array = check_real_array(name, node_evidence[key], nonnegative=True)
        if array.ndim == 2:
            array = array[None]
        if array.shape != (n, *shape):
            raise InputError(
                f"{name} must have shape (n, width_l, card_l) = ({n}, {shape[0]}, {shape[1]}), "
                f"or {shape} for one set; got {np.shape(node_evidence[key])}"
            )
        peak = array.max(axis=-1) if array.size else np.zeros(array.shape[:2])
        exponents = np.where(peak > 0, _frexp_exponent(peak), 0)
        parts.append(np.ldexp(array, -exponents[..., None]).reshape(n, -1))
        log_scale += exponents.sum(axis=1) * math.log(2.0)
        level_offsets[level] = start
        start += shape[0] * shape[1]
    rows = np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=dtype)
    return rows, level_offsets, log_scale


def level_views(flat: FlatGrammar, rows: tuple[Any, Any], offsets: np.ndarray) -> list[Any]:
    """Per-level ``(n, width_l, card_l)`` views of output rows; None at levels not kept.

    ``rows`` is ``(leaf_rows, internal_rows)``: level 0 lives in the first, levels ``1..L`` in
    the second from ``offsets[l]`` (``-1``: not kept). Works on numpy arrays and torch tensors.
    """
    out: list[Any] = [None] * (flat.L + 1)
    for level in range(flat.L + 1):
        start = int(offsets[level])
        if start < 0:
            continue
        array = rows[0] if level == 0 else rows[1]
        w, c = int(flat.widths[level]), int(flat.cards[level])
        out[level] = array[:, start : start + w * c].reshape(array.shape[0], w, c)
    return out


def check_levels(flat: FlatGrammar, levels: Any) -> list[int]:
    """The levels to return, sorted and unique (all of ``0..L`` if None).

    Examples
    --------
    >>> flat = flatten_grammar({1: np.array([[[0, 1]]])}, None, (2, 1))
    >>> check_levels(flat, None), check_levels(flat, 1)
    ([0, 1], [1])
    """
    if levels is None:
        return list(range(flat.L + 1))
    if isinstance(levels, int | np.integer):
        levels = [levels]
    return sorted({check_int("levels", level, 0, flat.L) for level in levels})


def output_offsets(flat: FlatGrammar, levels: Sequence[int]) -> tuple[np.ndarray, int, int]:
    """Where each kept level starts in its output rows (``-1``: not kept), and the lengths of
    the leaf rows and of the internal rows.

    Level 0 gets rows of its own: two arrays of half the size are each more often reused by
    the memory allocator than one (glibc serves blocks above 32 MiB by fresh, zeroed pages).

    Examples
    --------
    >>> flat = flatten_grammar({1: np.array([[[0, 1]]])}, None, (2, 1))
    >>> offsets, leaf, internal = output_offsets(flat, [0, 1])
    >>> offsets.tolist(), leaf, internal
    ([0, 0], 4, 1)
    """
    offsets = np.full(flat.L + 1, -1, dtype=np.int64)
    leaf = internal = 0
    for level in levels:
        size = int(flat.widths[level]) * int(flat.cards[level])
        if level == 0:
            offsets[0], leaf = 0, size
        else:
            offsets[level] = internal
            internal += size
    return offsets, leaf, internal


@dataclass(frozen=True)
class GatherLists:
    """The rule entries arranged for gathers (``s = 2`` only; empty otherwise).

    Entry ``t = a * m + j`` of a level is parent value ``a``'s ``j``-th rule.

    Attributes
    ----------
    children : uint32
        Per level and child position ``i``, the entries' ``i``-th child values, contiguous:
        level ``l``'s position ``i`` starts at ``children_offsets[l] + i * K_l * m_l``.
    children_offsets : uint64 ``(L + 2,)``
    parents, others : uint32
        Per level and child position ``i``, the entries sorted by their ``i``-th child value:
        each entry's parent value and its other child's value; ``weights`` float64 alike.
        Level ``l``, position ``i`` starts at ``list_offsets[2 * l + i]``.
    segments : uint64
        For level ``l``, position ``i``: ``card_{l-1} + 1`` bounds, from
        ``segment_offsets[2 * l + i]``; the entries whose ``i``-th child is ``c`` are
        ``segments[c] .. segments[c + 1] - 1`` of that list. The downward message into child
        ``i``'s value ``c`` is then a sum over one segment: a gather, like the upward pass.
    list_offsets, segment_offsets : uint64 ``(2 * (L + 1),)``
    """

    children: np.ndarray
    children_offsets: np.ndarray
    parents: np.ndarray
    others: np.ndarray
    weights: np.ndarray
    segments: np.ndarray
    list_offsets: np.ndarray
    segment_offsets: np.ndarray


def gather_lists(flat: FlatGrammar) -> GatherLists:
    """The rule entries of every level arranged for the gather kernels (see
    :class:`GatherLists`).

    Examples
    --------
    >>> flat = flatten_grammar({1: np.array([[[0, 1], [1, 1]], [[1, 0], [0, 0]]])}, None, (2, 2))
    >>> g = gather_lists(flat)
    >>> g.children[:4].tolist(), g.children[4:8].tolist()      # first and second children
    ([0, 1, 1, 0], [1, 1, 0, 0])
    >>> g.segments[:3].tolist(), g.parents[:4].tolist()        # sorted by the first child
    ([0, 2, 4], [0, 1, 0, 1])
    """
    L, s = flat.L, flat.s
    children_offsets = np.zeros(L + 2, dtype=np.uint64)
    list_offsets = np.zeros(2 * (L + 1), dtype=np.uint64)
    segment_offsets = np.zeros(2 * (L + 1), dtype=np.uint64)
    empty = np.zeros(0, dtype=np.uint32)
    if s != 2:
        return GatherLists(
            empty,
            children_offsets,
            empty,
            empty,
            np.zeros(0),
            np.zeros(0, np.uint64),
            list_offsets,
            segment_offsets,
        )
    children, parents, others, weights, segments = [], [], [], [], []
    n_children = n_lists = n_segments = 0
    for level in range(1, L + 1):
        start, stop = int(flat.rule_offsets[level]), int(flat.rule_offsets[level + 1])
        tuples = flat.rules[start:stop].reshape(-1, 2)
        w = flat.weights[start // 2 : stop // 2]
        m, cc = int(flat.ms[level]), int(flat.cards[level - 1])
        entries = len(tuples)
        children_offsets[level] = n_children
        children += [tuples[:, 0], tuples[:, 1]]
        n_children += 2 * entries
        for i in range(2):
            order = np.argsort(tuples[:, i], kind="stable")
            list_offsets[2 * level + i] = n_lists
            segment_offsets[2 * level + i] = n_segments
            parents.append(order // m)
            others.append(tuples[order, 1 - i])
            weights.append(w[order])
            segments.append(np.searchsorted(tuples[order, i], np.arange(cc + 1)))
            n_lists += entries
            n_segments += cc + 1
    children_offsets[L + 1] = n_children
    return GatherLists(
        np.concatenate(children).astype(np.uint32),
        children_offsets,
        np.concatenate(parents).astype(np.uint32),
        np.concatenate(others).astype(np.uint32),
        np.concatenate(weights),
        np.concatenate(segments).astype(np.uint64),
        list_offsets,
        segment_offsets,
    )
