"""The compiled loops of :mod:`hiergrammar.kernels.numba_bp` (numba; imported only there).

Layout. Samples are processed in blocks of ``nl`` lanes (32 in float32, 16 in float64). Inside
a block every message is stored node-major with the lanes last,
``scratch[(offsets[l] + i * card_l + a) * nl + b]``, so each rule entry costs one index load
and then ``nl``-wide vector arithmetic over the block's samples: the children's messages at the
rule's tuple are contiguous rows. A node's values for all lanes stay in the L1 cache while its
rules are visited, and a block's scratch stays in L2 level after level. Blocks are independent
and run in parallel (``prange``). Results are transposed into the public per-sample rows as
each level completes, so nothing else is written to memory.

Vectorisation. numba disables LLVM's SLP vectoriser, so the lane loops must be loop-vectorised:
their trip count ``nl`` is a run-time value (a constant would be fully unrolled into scalar
code first), their indices are unsigned (a signed index gets numba's negative-index wraparound,
a select that blocks vectorisation), and the helpers are compiled with no-alias array arguments
(:class:`_NoAliasCompiler`) so that accumulators and operands need no run-time overlap checks.
Every array a helper receives is a distinct allocation, which is what makes that flag true.

Normalisers. Every node's message is normalised; the log normalisers of a lane are kept as a
float64 product (with ``log`` taken only when it leaves ``[1e-200, 1e200]``) plus a sum of
powers of two, which costs a multiply per node instead of a ``log``.

Status codes per sample: 0 fine, 1 zero evidence (a zero normaliser), 2 leaf evidence that is
negative, NaN or infinite (found while the leaves are read, so there is no validation pass).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types, uint64
from numba.core import cgutils
from numba.core.compiler import CompilerBase, DefaultPassBuilder
from numba.extending import intrinsic

from hiergrammar.kernels._tiles import dot_rows, tile_leaves, tile_product, tile_store

OK, DEAD, INVALID = 0, 1, 2


class _NoAliasCompiler(CompilerBase):
    """numba's nopython pipeline with the ``noalias`` flag: array arguments do not overlap."""

    def define_pipelines(self):
        self.state.flags.noalias = True
        return [DefaultPassBuilder.define_nopython_pipeline(self.state)]


_COMMON = dict(cache=True, error_model="numpy", fastmath={"contract"}, nogil=True)
#: Functions called once per level and block: compiled with no-alias array arguments.
_HOT = dict(_COMMON, pipeline_class=_NoAliasCompiler)
#: Per-rule-entry helpers: inlined into their callers at numba's IR level (a compiled call
#: costs a call and atomic reference counts on every array argument, far more than these
#: loops). Per-node helpers stay compiled functions: inlining costs compile time.
_INLINE = dict(error_model="numpy", fastmath={"contract"}, inline="always")

_LOG2 = math.log(2.0)
_U0 = uint64(0)
_U1 = uint64(1)


# -- prefetching ----------------------------------------------------------------------------------
@intrinsic
def _prefetch(typingctx, array, index):
    """Hint that ``array[index]`` will be read soon: LLVM's ``prefetch`` (a no-op on targets
    without one). The rows a rule entry reads are in random order within a node's block, so
    without it every row of a block that is not in cache costs a full memory latency."""
    if not isinstance(array, types.Array) or not isinstance(index, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        array_type, index_type = signature.args
        data = context.make_array(array_type)(context, builder, args[0]).data
        offset = context.cast(builder, args[1], index_type, types.intp)
        byte_pointer = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        prefetch = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]),
            "llvm.prefetch.p0",
        )
        pointer = builder.bitcast(builder.gep(data, [offset]), byte_pointer)
        builder.call(prefetch, [pointer, i32(0), i32(3), i32(1)])  # read, keep, data cache
        return context.get_dummy_value()

    return types.void(array, index), codegen


@njit(**_INLINE)
def _prefetch_range(x, start, count):
    """Prefetch ``x[start : start + count]``, one cache line at a time."""
    step = uint64(64 // x.itemsize)
    for i in range(_U0, count, step):
        _prefetch(x, start + i)


# -- log normalisers -------------------------------------------------------------------------------
@njit(**_INLINE)
def _add_log(t, b, prod, logs):
    """Add ``log(t)`` (``t > 0``) to lane ``b``: multiply it into ``prod[b]`` and take the log
    only when the product leaves ``[1e-200, 1e200]`` (or ``t`` itself is extreme)."""
    if t < 1e-50 or t > 1e50:
        logs[b] += math.log(t)
        return
    p = prod[b] * t
    if p < 1e-200 or p > 1e200:
        logs[b] += math.log(p)
        p = 1.0
    prod[b] = p


@njit(**_HOT)
def _sum_node(x, start, card, nl, tot):
    """``tot[b] = sum_a x[start + a * nl + b]``: the lane sums of a lane-last node block."""
    for b in range(nl):
        tot[b] = 0.0
    for a in range(card):
        base = start + a * nl
        for b in range(nl):
            tot[b] += x[base + b]


@njit(**_HOT)
def _scale_node(x, start, card, nl, tot):
    """Divide a lane-last node block by the lane sums in ``tot`` (zero sums stay zero);
    ``tot`` is overwritten by the inverses."""
    for b in range(nl):
        tot[b] = 1.0 / tot[b] if tot[b] > 0.0 else 0.0
    for a in range(card):
        base = start + a * nl
        for b in range(nl):
            x[base + b] *= tot[b]


@njit(**_COMMON)
def _log_lanes(tot, nb, prod, logs, status):
    """Add ``log(tot[b])`` to each live lane; a zero sum marks the lane dead."""
    for b in range(nb):
        t = np.float64(tot[b])
        if t > 0.0:
            _add_log(t, b, prod, logs)
        else:
            status[b] = max(status[b], DEAD)


# -- leaves ----------------------------------------------------------------------------------------
#: The leaf pass may reorder the sum over a leaf's values, so that it vectorises.
_LEAVES = dict(_HOT, fastmath={"contract", "reassoc"})

_POW2_ZERO = 1074
#: ``POW2[_POW2_ZERO + j] = 2.0**j`` for ``-1074 <= j <= 1023`` (every power of two float64
#: holds, subnormal ones included).
POW2 = np.ldexp(1.0, np.arange(-_POW2_ZERO, 1024))


@njit(**_LEAVES)
def _read_leaves(
    ev,
    bits,
    mant_bits,
    bias,
    inf_bits,
    pow2,
    k0,
    nb,
    nl,
    d,
    v,
    up,
    inv,
    inv_same,
    direct,
    prod,
    logs,
    twos,
    status,
):
    """Read the block's leaf evidence ``ev[k0 + b]`` ``(d, v)`` in the public layout, check it,
    and store each leaf normalised, lane-last, in ``up``; add its log normalisers.

    Per leaf, one contiguous sweep per lane finds the sum and, on ``bits`` (``ev`` viewed as
    signed integers of the same width: for non-negative floats their order is the values'
    order), the maximum, any negative value (a set sign bit) and any NaN or infinity
    (``>= inf_bits``); the maximum's exponent field gives the power of two ``2**e`` kept
    exactly in the log normaliser, so any scale works. Then 8x8 tiles write ``x / sum``
    transposed (lanes whose evidence sits at the ends of float64's range, or is reported, and
    the edges of the tiles are written one number at a time)."""
    lanes8 = nb - nb % uint64(8)
    values8 = v - v % uint64(8)
    for i in range(d):
        base = i * v * nl
        for b in range(nb):
            k = k0 + b
            inv[b] = 0.0
            direct[b] = 1
            lo = bits[k, i, 0]
            hi = lo
            total = 0.0
            for a in range(v):
                q = bits[k, i, a]
                lo = min(lo, q)
                hi = max(hi, q)
                total += np.float64(ev[k, i, a])
            if lo < 0:  # a sign bit: a negative value, -0.0 (allowed) or a negative NaN
                for a in range(v):
                    if not ev[k, i, a] >= 0.0:
                        status[b] = INVALID
                hi = lo - lo
                for a in range(v):
                    hi = max(hi, bits[k, i, a])
            if hi >= inf_bits:
                status[b] = INVALID
            elif hi == 0:
                status[b] = max(status[b], DEAD)
            if status[b] != OK:
                continue
            field = hi >> mant_bits
            if field > 0:
                e = np.int64(field) - bias
            else:  # a subnormal maximum
                peak = 0.0
                for a in range(v):
                    peak = max(peak, np.float64(ev[k, i, a]))
                e = np.int64(math.frexp(peak)[1])
            twos[b] += e
            inv[b] = 0.0
            inv_same[b] = 0.0
            if -1000 <= e <= 1000 and total < np.inf:
                _add_log(total * pow2[_POW2_ZERO - e], b, prod, logs)  # exact: in [0.5, v]
                inv[b] = 1.0 / total
                inv_same[b] = inv[b]
                # (a float32 inverse can overflow: such a lane is written one by one)
                direct[b] = 0 if inv_same[b] < np.inf else 2
            else:  # near the ends of float64's range: scaled first, below
                direct[b] = 3
        for b0 in range(_U0, lanes8, uint64(8)):
            for a0 in range(_U0, values8, uint64(8)):
                tile_leaves(
                    ev,
                    ((k0 + b0) * d + i) * v + a0,
                    d * v,
                    inv,
                    inv_same,
                    b0,
                    up,
                    base + a0 * nl + b0,
                    nl,
                )
        for b in range(nl):
            if b >= nb or status[b] != OK:
                # a padding lane of the last block, or one that is reported: keep its numbers
                # finite (uniform evidence); it is never written out
                for a in range(v):
                    up[base + a * nl + b] = 1.0 / v
            elif direct[b] == 0:  # the edges of the tiles
                first = values8 if b < lanes8 else _U0
                for a in range(first, v):
                    up[base + a * nl + b] = np.float64(ev[k0 + b, i, a]) * inv[b]
            elif direct[b] == 2:
                for a in range(v):
                    up[base + a * nl + b] = np.float64(ev[k0 + b, i, a]) * inv[b]
            else:  # scale in two exact steps, then normalise
                _extreme_leaf(ev, k0 + b, i, v, pow2, up, base + b, nl, prod, logs, b)


@njit(**_COMMON)
def _extreme_leaf(ev, k, i, v, pow2, up, start, nl, prod, logs, b):
    """A leaf whose evidence sits near the ends of float64's range: scale it by ``2**-e`` in
    two exact steps (``2**-e`` itself may not be a float64), normalise, add the log."""
    peak = 0.0
    for a in range(v):
        peak = max(peak, np.float64(ev[k, i, a]))
    e = np.int64(math.frexp(peak)[1])
    s1 = pow2[_POW2_ZERO - e // 2]
    s2 = pow2[_POW2_ZERO - (e - e // 2)]
    scaled = 0.0
    for a in range(v):
        scaled += np.float64(ev[k, i, a]) * s1 * s2
    _add_log(scaled, b, prod, logs)
    for a in range(v):
        up[start + a * nl] = np.float64(ev[k, i, a]) * s1 * s2 / scaled


# -- upward ----------------------------------------------------------------------------------------
@njit(**_INLINE)
def _up_pairs(rules, weights, uniform, e, w, m, first, cc, nl, up, acc):
    """``acc[b] = sum_j w_j up[c0_j, b] up[c1_j, b]`` over one parent value's ``m`` rules
    (``s = 2``; ``c*_j`` the rule's children rows, ``e``/``w`` its first rule's offsets).
    With ``uniform`` weights the common weight multiplies the sum once. (Measured: one rule
    per pass over the lanes beats four.)"""
    for b in range(nl):
        acc[b] = 0.0
    second = first + cc
    if uniform:
        for j in range(m):
            i0 = (first + rules[e + j * uint64(2)]) * nl
            i1 = (second + rules[e + j * uint64(2) + _U1]) * nl
            for b in range(nl):
                acc[b] += up[i0 + b] * up[i1 + b]
        wc = weights[w]
        for b in range(nl):
            acc[b] *= wc
    else:
        for j in range(m):
            i0 = (first + rules[e + j * uint64(2)]) * nl
            i1 = (second + rules[e + j * uint64(2) + _U1]) * nl
            wt = weights[w + j]
            for b in range(nl):
                acc[b] += wt * up[i0 + b] * up[i1 + b]


@njit(**_INLINE)
def _up_tuples(rules, weights, e, w, m, s, first, cc, nl, up, acc, tmp):
    """As :func:`_up_pairs` for any ``s``: ``acc[b] = sum_j w_j prod_i up[c_ij, b]``."""
    for b in range(nl):
        acc[b] = 0.0
    for j in range(m):
        f = e + j * s
        wt = weights[w + j]
        i0 = (first + rules[f]) * nl
        for b in range(nl):
            tmp[b] = wt * up[i0 + b]
        for i in range(_U1, s):
            ii = (first + i * cc + rules[f + i]) * nl
            for b in range(nl):
                tmp[b] *= up[ii + b]
        for b in range(nl):
            acc[b] += tmp[b]


@njit(**_COMMON)
def _times_node_evidence(x, start, card, nl, nb, k0, nev, row):
    """Multiply a lane-last node block by the node evidence ``nev[k0 + b, row + a]``."""
    for a in range(card):
        for b in range(nb):
            x[start + a * nl + b] *= nev[k0 + b, row + a]


@njit(**_HOT)
def _up_level(
    level,
    s,
    cards,
    widths,
    offsets,
    rules,
    roff,
    ms,
    weights,
    uniform,
    gl,
    nl,
    nb,
    k0,
    nev,
    nev_off,
    up,
    acc,
    tmp,
    tot,
    prod,
    logs,
    status,
):
    """Upward messages of every node of ``level`` from those of ``level - 1``:
    ``raw[a] = sum_j w[a, j] prod_i up_child_i[rules[a, j, i]]``, times node evidence, then
    normalised. ``s = 2`` uses the register-accumulating gather (:func:`_up_level_dot`) and
    has a loop of its own for other lane counts (keeping the general one out of its function
    makes it measurably faster)."""
    if s == 2 and _dot_lanes(nl, up):
        _up_level_dot(level, cards, widths, offsets, gl[0], gl[1], weights, roff, ms, nl, up)
    elif s == 2:
        _up_level_pairs(
            level, cards, widths, offsets, rules, roff, ms, weights, uniform, nl, up, acc
        )
    else:
        _up_level_tuples(
            level, s, cards, widths, offsets, rules, roff, ms, weights, nl, up, acc, tmp
        )
    K = cards[level]
    for p in range(widths[level]):
        parent = (offsets[level] + p * K) * nl
        if nev_off >= 0:
            _times_node_evidence(up, parent, K, nl, nb, k0, nev, uint64(nev_off) + p * K)
        _sum_node(up, parent, K, nl, tot)
        _log_lanes(tot, nb, prod, logs, status)
        _scale_node(up, parent, K, nl, tot)


@njit(**_COMMON)
def _dot_lanes(nl, x):
    """Whether :func:`dot_rows` serves ``nl`` lanes of ``x``'s dtype: one, two or four 32-byte
    vectors (the lane counts :func:`hiergrammar.kernels.numba_bp.lanes` chooses)."""
    size = nl * x.itemsize
    return size == 32 or size == 64 or size == 128


@njit(**_HOT)
def _up_level_dot(
    level, cards, widths, offsets, children, children_offsets, weights, roff, ms, nl, up
):
    """The raw upward messages of ``level`` for ``s = 2``: one :func:`dot_rows` per parent
    value (its ``m`` rules' children rows, accumulated in registers)."""
    K = cards[level]
    cc = cards[level - 1]
    m = ms[level]
    entries = K * m
    c0 = children_offsets[level]
    first_children = children[c0 : c0 + entries]
    second_children = children[c0 + entries : c0 + uint64(2) * entries]
    w0 = roff[level] // uint64(2)
    w = weights[w0 : w0 + entries]
    block = uint64(2) * cc * nl
    # the next parent's children, spread over this parent's values (a burst of prefetches
    # overflows the core's queue of outstanding misses)
    step = uint64(64 // up.itemsize)
    share = (block // step + K - _U1) // K * step
    for p in range(widths[level]):
        parent = (offsets[level] + p * K) * nl
        first = offsets[level - 1] + p * uint64(2) * cc
        ahead = first * nl + block
        last = p + _U1 == widths[level]
        for a in range(K):
            if not last:
                done = min(block, a * share)
                _prefetch_range(up, ahead + done, min(share, block - done))
            dot_rows(
                up,
                first * nl,
                first_children,
                up,
                (first + cc) * nl,
                second_children,
                a * m,
                m,
                w,
                nl,
                up,
                parent + a * nl,
            )


@njit(**_HOT)
def _up_level_pairs(level, cards, widths, offsets, rules, roff, ms, weights, uniform, nl, up, acc):
    """The raw upward messages of ``level`` for ``s = 2`` (see :func:`_up_pairs`)."""
    K = cards[level]
    cc = cards[level - 1]
    m = ms[level]
    r0 = roff[level]
    w0 = r0 // uint64(2)
    block = uint64(2) * cc * nl
    for p in range(widths[level]):
        parent = (offsets[level] + p * K) * nl
        first = offsets[level - 1] + p * uint64(2) * cc
        if p + _U1 < widths[level]:
            _prefetch_range(up, first * nl + block, block)
        for a in range(K):
            _up_pairs(
                rules,
                weights,
                uniform,
                r0 + a * m * uint64(2),
                w0 + a * m,
                m,
                first,
                cc,
                nl,
                up,
                acc,
            )
            for b in range(nl):
                up[parent + a * nl + b] = acc[b]


@njit(**_HOT)
def _up_level_tuples(level, s, cards, widths, offsets, rules, roff, ms, weights, nl, up, acc, tmp):
    """The raw upward messages of ``level`` for any ``s`` (see :func:`_up_tuples`)."""
    K = cards[level]
    cc = cards[level - 1]
    m = ms[level]
    r0 = roff[level]
    w0 = r0 // s
    block = s * cc * nl
    for p in range(widths[level]):
        parent = (offsets[level] + p * K) * nl
        first = offsets[level - 1] + p * s * cc
        if p + _U1 < widths[level]:
            _prefetch_range(up, first * nl + block, block)
        for a in range(K):
            _up_tuples(
                rules, weights, r0 + a * m * s, w0 + a * m, m, s, first, cc, nl, up, acc, tmp
            )
            for b in range(nl):
                up[parent + a * nl + b] = acc[b]


# -- downward --------------------------------------------------------------------------------------
@njit(**_HOT)
def _down_level(
    level,
    s,
    cards,
    widths,
    offsets,
    rules,
    roff,
    ms,
    weights,
    gl,
    nl,
    nb,
    k0,
    nev,
    nev_off,
    up,
    down,
    po,
    d0,
    d1,
    dch,
    tmp,
    tot,
):
    """Downward messages into every node of ``level - 1`` from those into ``level``: each rule
    entry adds ``w * parent_out[a] * prod_{k != i} up_child_k`` onto child ``i``'s value, where
    ``parent_out`` is the parent's downward message times its node evidence; then every child
    message is normalised (no log: downward normalisers cancel in the marginals)."""
    if s == 2 and _dot_lanes(nl, up):
        _down_level_dot(
            level,
            cards,
            widths,
            offsets,
            ms,
            gl[2],
            gl[3],
            gl[4],
            gl[5],
            gl[6],
            gl[7],
            nl,
            nb,
            k0,
            nev,
            nev_off,
            up,
            down,
            po,
        )
    elif s == 2:
        _down_level_pairs(
            level,
            cards,
            widths,
            offsets,
            rules,
            roff,
            ms,
            weights,
            nl,
            nb,
            k0,
            nev,
            nev_off,
            up,
            down,
            po,
            d0,
            d1,
        )
    else:
        _down_level_tuples(
            level,
            s,
            cards,
            widths,
            offsets,
            rules,
            roff,
            ms,
            weights,
            nl,
            nb,
            k0,
            nev,
            nev_off,
            up,
            down,
            po,
            dch,
            tmp,
            tot,
        )
    cc = cards[level - 1]
    for c in range(widths[level - 1]):
        start = (offsets[level - 1] + c * cc) * nl
        _sum_node(down, start, cc, nl, tot)
        _scale_node(down, start, cc, nl, tot)


@njit(**_HOT)
def _parent_out(down, parent, K, nl, nb, k0, nev, nev_off, p, po):
    for i in range(K * nl):
        po[i] = down[parent + i]
    if nev_off >= 0:
        _times_node_evidence(po, _U0, K, nl, nb, k0, nev, uint64(nev_off) + p * K)


@njit(**_HOT)
def _down_level_dot(
    level,
    cards,
    widths,
    offsets,
    ms,
    parents,
    others,
    weights,
    segments,
    list_offsets,
    segment_offsets,
    nl,
    nb,
    k0,
    nev,
    nev_off,
    up,
    down,
    po,
):
    """The raw downward messages into ``level - 1`` for ``s = 2``, as gathers:
    child ``i``'s value ``c`` receives ``sum w po[a] up_other[c']`` over the entries whose
    ``i``-th child is ``c`` (one segment of the entries sorted by it), one :func:`dot_rows`
    each, accumulated in registers."""
    K = cards[level]
    cc = cards[level - 1]
    entries = K * ms[level]
    block = uint64(2) * cc * nl
    for p in range(widths[level]):
        parent = (offsets[level] + p * K) * nl
        first = offsets[level - 1] + p * uint64(2) * cc
        if p + _U1 < widths[level]:
            _prefetch_range(up, first * nl + block, block)
            _prefetch_range(down, parent + K * nl, K * nl)
        _parent_out(down, parent, K, nl, nb, k0, nev, nev_off, p, po)
        for i in range(uint64(2)):
            start = list_offsets[uint64(2) * level + i]
            seg = segment_offsets[uint64(2) * level + i]
            by_parent = parents[start : start + entries]
            by_other = others[start : start + entries]
            w = weights[start : start + entries]
            other = (first + (_U1 - i) * cc) * nl
            for c in range(cc):
                lo = segments[seg + c]
                dot_rows(
                    po,
                    _U0,
                    by_parent,
                    up,
                    other,
                    by_other,
                    lo,
                    segments[seg + c + _U1] - lo,
                    w,
                    nl,
                    down,
                    (first + i * cc + c) * nl,
                )


@njit(**_HOT)
def _down_level_pairs(
    level,
    cards,
    widths,
    offsets,
    rules,
    roff,
    ms,
    weights,
    nl,
    nb,
    k0,
    nev,
    nev_off,
    up,
    down,
    po,
    d0,
    d1,
):
    """The raw downward messages into ``level - 1`` for ``s = 2``: entry ``(a, j)`` with
    tuple ``(c0, c1)`` adds ``w po[a] up_1[c1]`` onto child 0's ``c0`` and ``w po[a] up_0[c0]``
    onto child 1's ``c1`` (separate buffers ``d0``, ``d1``: no aliasing between the two)."""
    K = cards[level]
    cc = cards[level - 1]
    m = ms[level]
    r0 = roff[level]
    w0 = r0 // uint64(2)
    block = uint64(2) * cc * nl
    for p in range(widths[level]):
        parent = (offsets[level] + p * K) * nl
        first = offsets[level - 1] + p * uint64(2) * cc
        if p + _U1 < widths[level]:
            _prefetch_range(up, first * nl + block, block)
            _prefetch_range(down, parent + K * nl, K * nl)
        _parent_out(down, parent, K, nl, nb, k0, nev, nev_off, p, po)
        for i in range(cc * nl):
            d0[i] = 0.0
        for i in range(cc * nl):
            d1[i] = 0.0
        for a in range(K):
            pa = a * nl
            for j in range(m):
                e = r0 + (a * m + j) * uint64(2)
                wt = weights[w0 + a * m + j]
                c0 = rules[e] * nl
                c1 = rules[e + _U1] * nl
                i0 = first * nl + c0
                i1 = (first + cc) * nl + c1
                for b in range(nl):
                    t = wt * po[pa + b]
                    d0[c0 + b] += t * up[i1 + b]
                    d1[c1 + b] += t * up[i0 + b]
        start = first * nl
        for i in range(cc * nl):
            down[start + i] = d0[i]
        for i in range(cc * nl):
            down[start + cc * nl + i] = d1[i]


@njit(**_HOT)
def _down_level_tuples(
    level,
    s,
    cards,
    widths,
    offsets,
    rules,
    roff,
    ms,
    weights,
    nl,
    nb,
    k0,
    nev,
    nev_off,
    up,
    down,
    po,
    dch,
    tmp,
    tot,
):
    """The raw downward messages into ``level - 1`` for any ``s``: prefix products of the
    entry's children ``tmp[i] = w po[a] prod_{k < i} up_k``, then suffix products on the way
    back, so child ``i`` receives ``prod_{k != i}``."""
    K = cards[level]
    cc = cards[level - 1]
    m = ms[level]
    r0 = roff[level]
    w0 = r0 // s
    block = s * cc * nl
    for p in range(widths[level]):
        parent = (offsets[level] + p * K) * nl
        first = offsets[level - 1] + p * s * cc
        if p + _U1 < widths[level]:
            _prefetch_range(up, first * nl + block, block)
            _prefetch_range(down, parent + K * nl, K * nl)
        _parent_out(down, parent, K, nl, nb, k0, nev, nev_off, p, po)
        for i in range(s * cc * nl):
            dch[i] = 0.0
        for a in range(K):
            for j in range(m):
                e = r0 + (a * m + j) * s
                wt = weights[w0 + a * m + j]
                for b in range(nl):
                    tmp[b] = wt * po[a * nl + b]
                for i in range(_U1, s):
                    prev = (first + (i - _U1) * cc + rules[e + i - _U1]) * nl
                    for b in range(nl):
                        tmp[i * nl + b] = tmp[(i - _U1) * nl + b] * up[prev + b]
                for b in range(nl):
                    tot[b] = 1.0
                for q in range(s):
                    ui = s - _U1 - q
                    ii = (first + ui * cc + rules[e + ui]) * nl
                    ci = (ui * cc + rules[e + ui]) * nl
                    for b in range(nl):
                        dch[ci + b] += tmp[ui * nl + b] * tot[b]
                        tot[b] *= up[ii + b]
        start = first * nl
        for i in range(s * cc * nl):
            down[start + i] = dch[i]


# -- outputs ---------------------------------------------------------------------------------------
@njit(**_HOT)
def _store(src, start, count, nl, nb, k0, out, out_start):
    """``out[k0 + b, out_start + i] = src[(start + i) * nl + b]`` for ``i < count``, ``b < nb``:
    lane-last scratch to public rows, by 8x8 transposed tiles (the edges one by one)."""
    row = uint64(out.shape[1])
    lanes8 = nb - nb % uint64(8)
    count8 = count - count % uint64(8)
    for b0 in range(_U0, lanes8, uint64(8)):
        for i0 in range(_U0, count8, uint64(8)):
            tile_store(src, (start + i0) * nl + b0, nl, out, (k0 + b0) * row + out_start + i0, row)
    for b in range(nb):
        for i in range(count8 if b < lanes8 else _U0, count):
            out[k0 + b, out_start + i] = src[(start + i) * nl + b]


@njit(**_HOT)
def _store_marginals(up, down, level, cards, widths, offsets, nl, nb, k0, out, out_start, tot):
    """Write ``normalise(up * down)`` of every node of ``level`` into the public rows (8x8
    transposed tiles, the edges one by one)."""
    card = cards[level]
    row = uint64(out.shape[1])
    lanes8 = nb - nb % uint64(8)
    card8 = card - card % uint64(8)
    for p in range(widths[level]):
        start = (offsets[level] + p * card) * nl
        for b in range(nl):
            tot[b] = 0.0
        for a in range(card):
            for b in range(nl):
                tot[b] += up[start + a * nl + b] * down[start + a * nl + b]
        for b in range(nl):
            tot[b] = 1.0 / tot[b] if tot[b] > 0.0 else 0.0
        first = out_start + p * card
        for b0 in range(_U0, lanes8, uint64(8)):
            for a0 in range(_U0, card8, uint64(8)):
                tile_product(
                    up,
                    down,
                    start + a0 * nl + b0,
                    nl,
                    tot,
                    b0,
                    out,
                    (k0 + b0) * row + first + a0,
                    row,
                )
        for b in range(nb):
            for a in range(card8 if b < lanes8 else _U0, card):
                i = start + a * nl + b
                out[k0 + b, first + a] = up[i] * down[i] * tot[b]


# -- one block -------------------------------------------------------------------------------------
#: What the kernel computes: the upward pass only, full belief propagation, or posterior draws.
UPWARD, FULL, SAMPLE = 0, 1, 2


@njit(**_INLINE)
def _upward_block(
    E, G, nl, k0, nb, up, root, acc, tmp, tot, inv, inv_same, direct, prod, logs, twos, status
):
    """The upward pass of one block: messages into ``up`` (lane-last), the root's marginal
    into ``root`` ``(card_L * nl)``, the log normalisers into ``prod``, ``logs``, ``twos``."""
    ev64, bits64, ev32, bits32, pow2, prior, nev, nev_offsets = E
    L, s, cards, widths, offsets, rules, roff, ms, weights, uniform, gl = G
    for b in range(nl):
        prod[b] = 1.0
        logs[b] = 0.0
        twos[b] = 0
        status[b] = OK
    # One of the two evidence arrays is empty: a kernel compiled per message dtype serves
    # float32 and float64 evidence (its leaf reader is compiled for both).
    if ev64.size:
        _read_leaves(
            ev64,
            bits64,
            52,
            1022,
            0x7FF0000000000000,
            pow2,
            k0,
            nb,
            nl,
            widths[0],
            cards[0],
            up,
            inv,
            inv_same,
            direct,
            prod,
            logs,
            twos,
            status,
        )
    else:
        _read_leaves(
            ev32,
            bits32,
            23,
            126,
            0x7F800000,
            pow2,
            k0,
            nb,
            nl,
            widths[0],
            cards[0],
            up,
            inv,
            inv_same,
            direct,
            prod,
            logs,
            twos,
            status,
        )
    for level in range(1, L + 1):
        _up_level(
            uint64(level),
            s,
            cards,
            widths,
            offsets,
            rules,
            roff,
            ms,
            weights,
            uniform[level],
            gl,
            nl,
            nb,
            k0,
            nev,
            nev_offsets[level],
            up,
            acc,
            tmp,
            tot,
            prod,
            logs,
            status,
        )
    card = cards[L]
    start = offsets[L] * nl
    for a in range(card):
        for b in range(nl):
            root[a * nl + b] = up[start + a * nl + b] * _prior(prior, a, b, k0, nb)
    _sum_node(root, _U0, card, nl, tot)
    _log_lanes(tot, nb, prod, logs, status)
    _scale_node(root, _U0, card, nl, tot)


@njit(**_COMMON)
def _prior(prior, a, b, k0, nb):
    """The root prior of lane ``b`` (one shared row, or one per sample)."""
    return prior[0, a] if prior.shape[0] == 1 or b >= nb else prior[k0 + b, a]


@njit(**_COMMON)
def _store_level(src, level, offsets, widths, cards, nl, nb, k0, out0, out, out_offsets):
    """Store a level's lane-last block into its rows: level 0 into ``out0``, the others into
    ``out`` (two arrays, so that each stays small enough for the allocator to reuse)."""
    start = out_offsets[level]
    if start >= 0:
        count = widths[level] * cards[level]
        target = out0 if level == 0 else out
        _store(src, offsets[level], count, nl, nb, k0, target, uint64(start))


# -- the kernel ------------------------------------------------------------------------------------
@njit(**_COMMON)
def run_blocks(first_block, last_block, mode, E, G, lanes, O, scratch):
    """Process the samples of blocks ``first_block .. last_block - 1`` (``lanes`` samples each).

    ``E`` = (float64 evidence ``(n, d, v)`` and its bits, or float32 evidence and its bits
    (the other pair empty), powers of two, root prior ``(1 or n, card_L)``, node-evidence rows,
    their level offsets); ``G`` = the flat grammar
    (``L, s, cards, widths, offsets, rules, rule offsets, ms, weights, uniform``); ``O`` = the
    outputs: level offsets of up / down / marginal rows (``-1``: not kept), the rows (level 0
    apart), the root marginals ``(n, card_L)``, ``log_evidence`` and ``status`` ``(n,)``, and
    for sampling the uniforms ``(n, 1 + internal nodes)``, the levels' offsets in a row of
    values and the sampled values ``(n, nodes)``.

    ``mode``: :data:`UPWARD` (up rows, root marginal, log-evidence), :data:`FULL` (and the
    downward messages and marginals), :data:`SAMPLE` (draws instead of rows). ``scratch``
    holds at least ``2 * offsets[L + 1] * lanes`` numbers of the message dtype
    (``offsets[L + 1] * lanes`` without the downward pass).
    """
    (
        up_off,
        down_off,
        marg_off,
        out_up0,
        out_up,
        out_down0,
        out_down,
        out_marg0,
        out_marg,
        out_root,
        log_evidence,
        status_out,
        uniforms,
        node_offsets,
        out_levels,
    ) = O
    L, s, cards, widths, offsets, rules, roff, ms, weights, uniform, gl = G
    prior, nev, nev_offsets = E[5], E[6], E[7]
    n = max(E[0].shape[0], E[2].shape[0])
    nl = uint64(lanes)
    s = uint64(s)
    total = offsets[L + 1]
    max_card = cards.max()
    max_child = cards[:L].max()
    dtype = weights.dtype
    # scratch of this call (distinct allocations: the compiled helpers assume no aliasing)
    # the two large buffers come from the caller (kept per thread between calls: fresh pages
    # cost a fault and zeroing each); distinct halves of one array, never overlapping
    up = scratch[: total * nl]
    root = np.empty(max_card * nl, dtype=dtype)
    acc = np.empty(nl, dtype=dtype)
    tmp = np.empty((s + _U1) * nl, dtype=dtype)
    tot = np.empty(nl, dtype=dtype)
    inv = np.empty(nl)
    inv_same = np.empty(nl, dtype=dtype)
    direct = np.empty(nl, dtype=np.int8)
    prod = np.ones(nl)
    logs = np.zeros(nl)
    twos = np.zeros(nl, dtype=np.int64)
    status = np.zeros(nl, dtype=np.int8)
    size = nl if mode == FULL else _U0  # the downward pass's scratch
    down = scratch[total * nl : total * (nl + size)]
    po = np.empty(max_card * size, dtype=dtype)
    d0 = np.empty(max_child * size, dtype=dtype)
    d1 = np.empty(max_child * size, dtype=dtype)
    dch = np.empty(s * max_child * size, dtype=dtype)
    cdf = np.empty(max(ms.max(), max_card) if mode == SAMPLE else _U0)
    for block in range(first_block, last_block):
        k0 = uint64(block) * nl
        nb = min(nl, uint64(n) - k0)
        _upward_block(
            E,
            G,
            nl,
            k0,
            nb,
            up,
            root,
            acc,
            tmp,
            tot,
            inv,
            inv_same,
            direct,
            prod,
            logs,
            twos,
            status,
        )
        for b in range(nb):
            log_evidence[k0 + b] = logs[b] + math.log(prod[b]) + twos[b] * _LOG2
            status_out[k0 + b] = status[b]
        if mode == SAMPLE:
            for b in range(nb):
                if status[b] == OK:
                    _sample_lane(
                        up,
                        root,
                        b,
                        k0 + b,
                        L,
                        s,
                        cards,
                        widths,
                        offsets,
                        rules,
                        roff,
                        ms,
                        weights,
                        nl,
                        uniforms,
                        node_offsets,
                        out_levels,
                        cdf,
                    )
            continue
        if out_root.shape[1]:
            for b in range(nb):
                for a in range(cards[L]):
                    out_root[k0 + b, a] = root[a * nl + b]
        for level in range(L + 1):
            _store_level(up, level, offsets, widths, cards, nl, nb, k0, out_up0, out_up, up_off)
        if mode != FULL:
            continue
        start = offsets[L] * nl
        for a in range(cards[L]):
            for b in range(nl):
                down[start + a * nl + b] = _prior(prior, a, b, k0, nb)
        lowest = L
        for level in range(L + 1):
            if down_off[level] >= 0 or marg_off[level] >= 0:
                lowest = min(lowest, level)
        for level in range(L, lowest - 1, -1):
            if level < L:
                _down_level(
                    uint64(level + 1),
                    s,
                    cards,
                    widths,
                    offsets,
                    rules,
                    roff,
                    ms,
                    weights,
                    gl,
                    nl,
                    nb,
                    k0,
                    nev,
                    nev_offsets[level + 1],
                    up,
                    down,
                    po,
                    d0,
                    d1,
                    dch,
                    tmp,
                    tot,
                )
            _store_level(
                down, level, offsets, widths, cards, nl, nb, k0, out_down0, out_down, down_off
            )
            if marg_off[level] >= 0:
                target = out_marg0 if level == 0 else out_marg
                _store_marginals(
                    up,
                    down,
                    uint64(level),
                    cards,
                    widths,
                    offsets,
                    nl,
                    nb,
                    k0,
                    target,
                    uint64(marg_off[level]),
                    tot,
                )


@njit(**_INLINE)
def _sample_lane(
    up,
    root,
    b,
    k,
    L,
    s,
    cards,
    widths,
    offsets,
    rules,
    roff,
    ms,
    weights,
    nl,
    uniforms,
    node_offsets,
    out_levels,
    cdf,
):
    """Draw lane ``b``'s tree top-down: the root from its marginal, then each node's rule with
    weight ``w[a, j] * prod_i up_i(b_i)``, using the sample's row of uniform numbers."""
    card = cards[L]
    c = 0.0
    for a in range(card):
        c += root[a * nl + b]
        cdf[a] = c
    out_levels[k, node_offsets[L]] = _draw(cdf, card, uniforms[k, 0] * c)
    u = 1
    for level in range(L, 0, -1):
        ul = uint64(level)
        cc = cards[ul - _U1]
        m = ms[ul]
        r0 = roff[ul]
        w0 = r0 // s
        for p in range(widths[ul]):
            a = uint64(out_levels[k, node_offsets[ul] + p])
            first = offsets[ul - _U1] + p * s * cc
            c = 0.0
            for j in range(m):
                e = r0 + (a * m + j) * s
                wt = np.float64(weights[w0 + a * m + j])
                for i in range(s):
                    wt *= up[(first + i * cc + rules[e + i]) * nl + b]
                c += wt
                cdf[j] = c
            j = uint64(_draw(cdf, m, uniforms[k, u] * c))
            u += 1
            e = r0 + (a * m + j) * s
            for i in range(s):
                out_levels[k, node_offsets[ul - _U1] + p * s + i] = rules[e + i]


@njit(**_COMMON)
def _draw(cdf, count, threshold):
    """The first index whose cumulative weight exceeds ``threshold`` (the last one if round-off
    leaves none)."""
    for j in range(count):
        if cdf[j] > threshold:
            return j
    return count - 1
