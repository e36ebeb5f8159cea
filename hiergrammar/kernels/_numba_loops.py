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
from numba import njit, uint64
from numba.core.compiler import CompilerBase, DefaultPassBuilder

OK, DEAD, INVALID = 0, 1, 2


class _NoAliasCompiler(CompilerBase):
    """numba's nopython pipeline with the ``noalias`` flag: array arguments do not overlap."""

    def define_pipelines(self):
        self.state.flags.noalias = True
        return [DefaultPassBuilder.define_nopython_pipeline(self.state)]


_COMMON = dict(cache=True, error_model="numpy", fastmath={"contract"}, nogil=True)
#: Functions called once per level and block: compiled with no-alias array arguments.
_HOT = dict(_COMMON, pipeline_class=_NoAliasCompiler)
#: Small helpers: inlined into their callers at numba's IR level (a compiled call costs a
#: call and atomic reference counts on every array argument, far more than these loops).
_INLINE = dict(error_model="numpy", fastmath={"contract"}, inline="always")

_LOG2 = math.log(2.0)
_U0 = uint64(0)
_U1 = uint64(1)


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


@njit(**_INLINE)
def _sum_node(x, start, card, nl, tot):
    """``tot[b] = sum_a x[start + a * nl + b]``: the lane sums of a lane-last node block."""
    for b in range(nl):
        tot[b] = 0.0
    for a in range(card):
        base = start + a * nl
        for b in range(nl):
            tot[b] += x[base + b]


@njit(**_INLINE)
def _scale_node(x, start, card, nl, tot):
    """Divide a lane-last node block by the lane sums in ``tot`` (zero sums stay zero);
    ``tot`` is overwritten by the inverses."""
    for b in range(nl):
        tot[b] = 1.0 / tot[b] if tot[b] > 0.0 else 0.0
    for a in range(card):
        base = start + a * nl
        for b in range(nl):
            x[base + b] *= tot[b]


@njit(**_INLINE)
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
    ev, bits, mant_bits, bias, inf_bits, pow2, k0, nb, nl, d, v, up, prod, logs, twos, status
):
    """Read the block's leaf evidence ``ev[k0 + b]`` ``(d, v)`` in the public layout, check it,
    and store each leaf normalised, lane-last, in ``up``; add its log normaliser.

    One contiguous sweep per leaf finds its sum and, on ``bits`` (``ev`` viewed as signed
    integers of the same width: for non-negative floats their order is the values' order), its
    maximum, any negative value (a set sign bit) and any NaN or infinity (``>= inf_bits``); the
    maximum's exponent field gives the power of two ``2**e`` kept exactly in the log
    normaliser, so any scale works. A second sweep writes ``x / sum``."""
    for b in range(nl):
        if b >= nb:  # a padding lane of the last block: uniform evidence, never written out
            for i in range(d * v):
                up[i * nl + b] = 1.0 / v
            continue
        k = k0 + b
        for i in range(d):
            base = i * v * nl + b
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
            if status[b] != OK:  # reported, not used: keep the lane's numbers finite
                for a in range(v):
                    up[base + a * nl] = 1.0 / v
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
            if -1000 <= e <= 1000 and total < np.inf:
                scaled = total * pow2[_POW2_ZERO - e]  # exact: in [0.5, v]
                inv = 1.0 / total
                for a in range(v):
                    up[base + a * nl] = np.float64(ev[k, i, a]) * inv
            else:  # near the ends of float64's range: scale first, in two exact steps
                s1 = pow2[_POW2_ZERO - e // 2]
                s2 = pow2[_POW2_ZERO - (e - e // 2)]
                scaled = 0.0
                for a in range(v):
                    scaled += np.float64(ev[k, i, a]) * s1 * s2
                inv = 1.0 / scaled
                for a in range(v):
                    up[base + a * nl] = np.float64(ev[k, i, a]) * s1 * s2 * inv
            _add_log(scaled, b, prod, logs)


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


@njit(**_INLINE)
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
    normalised. ``s = 2`` has its own loop (keeping the general one out of its function makes
    it measurably faster)."""
    if s == 2:
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


@njit(**_HOT)
def _up_level_pairs(level, cards, widths, offsets, rules, roff, ms, weights, uniform, nl, up, acc):
    """The raw upward messages of ``level`` for ``s = 2`` (see :func:`_up_pairs`)."""
    K = cards[level]
    cc = cards[level - 1]
    m = ms[level]
    r0 = roff[level]
    w0 = r0 // uint64(2)
    for p in range(widths[level]):
        parent = (offsets[level] + p * K) * nl
        first = offsets[level - 1] + p * uint64(2) * cc
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
    for p in range(widths[level]):
        parent = (offsets[level] + p * K) * nl
        first = offsets[level - 1] + p * s * cc
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
    if s == 2:
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


@njit(**_INLINE)
def _parent_out(down, parent, K, nl, nb, k0, nev, nev_off, p, po):
    for i in range(K * nl):
        po[i] = down[parent + i]
    if nev_off >= 0:
        _times_node_evidence(po, _U0, K, nl, nb, k0, nev, uint64(nev_off) + p * K)


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
    for p in range(widths[level]):
        parent = (offsets[level] + p * K) * nl
        first = offsets[level - 1] + p * uint64(2) * cc
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
    for p in range(widths[level]):
        parent = (offsets[level] + p * K) * nl
        first = offsets[level - 1] + p * s * cc
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
    lane-last scratch to public rows, in tiles of 16 values (16 cache lines of ``src``) so
    that the strided reads stay in L1."""
    tile = uint64(16)
    for i0 in range(_U0, count, tile):
        stop = min(count, i0 + tile)
        for b in range(nb):
            for i in range(i0, stop):
                out[k0 + b, out_start + i] = src[(start + i) * nl + b]


@njit(**_HOT)
def _store_marginals(up, down, level, cards, widths, offsets, nl, nb, k0, out, out_start, tot):
    """Write ``normalise(up * down)`` of every node of ``level`` into the public rows."""
    card = cards[level]
    for p in range(widths[level]):
        start = (offsets[level] + p * card) * nl
        for b in range(nl):
            tot[b] = 0.0
        for a in range(card):
            for b in range(nl):
                tot[b] += up[start + a * nl + b] * down[start + a * nl + b]
        for b in range(nl):
            tot[b] = 1.0 / tot[b] if tot[b] > 0.0 else 0.0
        row = out_start + p * card
        for b in range(nb):
            for a in range(card):
                i = start + a * nl + b
                out[k0 + b, row + a] = up[i] * down[i] * tot[b]


# -- one block -------------------------------------------------------------------------------------
#: What the kernel computes: the upward pass only, full belief propagation, or posterior draws.
UPWARD, FULL, SAMPLE = 0, 1, 2


@njit(**_INLINE)
def _upward_block(E, G, nl, k0, nb, up, root, acc, tmp, tot, prod, logs, twos, status):
    """The upward pass of one block: messages into ``up`` (lane-last), the root's marginal
    into ``root`` ``(card_L * nl)``, the log normalisers into ``prod``, ``logs``, ``twos``."""
    ev, bits, fmt, pow2, prior, nev, nev_offsets = E
    L, s, cards, widths, offsets, rules, roff, ms, weights, uniform = G
    for b in range(nl):
        prod[b] = 1.0
        logs[b] = 0.0
        twos[b] = 0
        status[b] = OK
    _read_leaves(
        ev,
        bits,
        fmt[0],
        fmt[1],
        fmt[2],
        pow2,
        k0,
        nb,
        nl,
        widths[0],
        cards[0],
        up,
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


@njit(**_INLINE)
def _prior(prior, a, b, k0, nb):
    """The root prior of lane ``b`` (one shared row, or one per sample)."""
    return prior[0, a] if prior.shape[0] == 1 or b >= nb else prior[k0 + b, a]


@njit(**_INLINE)
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
def run_blocks(first_block, last_block, mode, E, G, lanes, O):
    """Process the samples of blocks ``first_block .. last_block - 1`` (``lanes`` samples each).

    ``E`` = (evidence ``(n, d, v)``, its bits, float format, powers of two, root prior
    ``(1 or n, card_L)``, node-evidence rows, their level offsets); ``G`` = the flat grammar
    (``L, s, cards, widths, offsets, rules, rule offsets, ms, weights, uniform``); ``O`` = the
    outputs: level offsets of up / down / marginal rows (``-1``: not kept), the rows (level 0
    apart), the root marginals ``(n, card_L)``, ``log_evidence`` and ``status`` ``(n,)``, and
    for sampling the uniforms ``(n, 1 + internal nodes)``, the levels' offsets in a row of
    values and the sampled values ``(n, nodes)``.

    ``mode``: :data:`UPWARD` (up rows, root marginal, log-evidence), :data:`FULL` (and the
    downward messages and marginals), :data:`SAMPLE` (draws instead of rows).
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
    L, s, cards, widths, offsets, rules, roff, ms, weights, uniform = G
    prior, nev, nev_offsets = E[4], E[5], E[6]
    n = E[0].shape[0]
    nl = uint64(lanes)
    s = uint64(s)
    total = offsets[L + 1]
    max_card = cards.max()
    max_child = cards[:L].max()
    dtype = weights.dtype
    # scratch of this call (distinct allocations: the compiled helpers assume no aliasing)
    up = np.empty(total * nl, dtype=dtype)
    root = np.empty(max_card * nl, dtype=dtype)
    acc = np.empty(nl, dtype=dtype)
    tmp = np.empty((s + _U1) * nl, dtype=dtype)
    tot = np.empty(nl, dtype=dtype)
    prod = np.ones(nl)
    logs = np.zeros(nl)
    twos = np.zeros(nl, dtype=np.int64)
    status = np.zeros(nl, dtype=np.int8)
    size = nl if mode == FULL else _U0  # the downward pass's scratch
    down = np.empty(total * size, dtype=dtype)
    po = np.empty(max_card * size, dtype=dtype)
    d0 = np.empty(max_child * size, dtype=dtype)
    d1 = np.empty(max_child * size, dtype=dtype)
    dch = np.empty(s * max_child * size, dtype=dtype)
    cdf = np.empty(max(ms.max(), max_card) if mode == SAMPLE else _U0)
    for block in range(first_block, last_block):
        k0 = uint64(block) * nl
        nb = min(nl, uint64(n) - k0)
        _upward_block(E, G, nl, k0, nb, up, root, acc, tmp, tot, prod, logs, twos, status)
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


@njit(**_INLINE)
def _draw(cdf, count, threshold):
    """The first index whose cumulative weight exceeds ``threshold`` (the last one if round-off
    leaves none)."""
    for j in range(count):
        if cdf[j] > threshold:
            return j
    return count - 1
