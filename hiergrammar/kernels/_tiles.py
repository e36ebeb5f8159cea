"""8x8 tile transposes as numba intrinsics (LLVM vector IR; imported by the numba loops only).

The kernels keep a block's messages lane-last (values in rows, samples in columns) while the
public arrays are sample-first; moving between the two is a transpose. numba switches off LLVM's
SLP vectoriser, so a transpose written as loops runs one scalar load and store per number.
These intrinsics load eight 8-wide rows, transpose them with ``shufflevector`` (the classic
unpack / shuffle / permute sequence, which x86 lowers to AVX shuffles and other targets to
their own) and store eight rows: four to eight times fewer instructions.

Offsets are flat element offsets into C-contiguous arrays (the callers own all the arrays).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["dot_rows", "tile_leaves", "tile_product", "tile_store"]

_I32 = ir.IntType(32)


def _mask(values: list[int]) -> ir.Constant:
    return ir.Constant(ir.VectorType(_I32, len(values)), values)


_LO = _mask([0, 8, 1, 9, 4, 12, 5, 13])  # unpacklo
_HI = _mask([2, 10, 3, 11, 6, 14, 7, 15])  # unpackhi
_EVEN = _mask([0, 1, 8, 9, 4, 5, 12, 13])  # shuffle 0x44
_ODD = _mask([2, 3, 10, 11, 6, 7, 14, 15])  # shuffle 0xEE
_LOW = _mask([0, 1, 2, 3, 8, 9, 10, 11])  # low 128-bit halves
_HIGH = _mask([4, 5, 6, 7, 12, 13, 14, 15])  # high 128-bit halves


def _transpose(builder: ir.IRBuilder, rows: list) -> list:
    """Rows ``r_t`` (eight ``<8 x T>``) -> columns ``c_u[t] = r_t[u]``."""
    t = []
    for k in range(4):
        a, b = rows[2 * k], rows[2 * k + 1]
        t += [builder.shuffle_vector(a, b, _LO), builder.shuffle_vector(a, b, _HI)]
    u = []
    for x, y in ((t[0], t[2]), (t[1], t[3]), (t[4], t[6]), (t[5], t[7])):
        u += [builder.shuffle_vector(x, y, _EVEN), builder.shuffle_vector(x, y, _ODD)]
    low = [builder.shuffle_vector(u[i], u[i + 4], _LOW) for i in range(4)]
    high = [builder.shuffle_vector(u[i], u[i + 4], _HIGH) for i in range(4)]
    return low + high


def _element(context, array_type) -> ir.Type:
    return context.get_data_type(array_type.dtype)


def _pointer(context, builder, array_type, array, offset, offset_type):
    """Pointer to ``array.flat[offset]`` as a pointer to ``<8 x T>``."""
    data = context.make_array(array_type)(context, builder, array).data
    index = context.cast(builder, offset, offset_type, types.intp)
    vector = ir.VectorType(_element(context, array_type), 8)
    return builder.bitcast(builder.gep(data, [index]), vector.as_pointer())


def _rows(context, builder, array_type, array, start, stride, offset_type):
    """Eight unaligned 8-wide loads at ``start + t * stride``."""
    width = array_type.dtype.bitwidth // 8
    out = []
    for t in range(8):
        offset = builder.add(start, builder.mul(stride, ir.Constant(start.type, t)))
        out.append(
            builder.load(
                _pointer(context, builder, array_type, array, offset, offset_type), align=width
            )
        )
    return out


def _store_rows(context, builder, array_type, array, start, stride, offset_type, values):
    width = array_type.dtype.bitwidth // 8
    for u, value in enumerate(values):
        offset = builder.add(start, builder.mul(stride, ir.Constant(start.type, u)))
        pointer = _pointer(context, builder, array_type, array, offset, offset_type)
        builder.store(value, pointer, align=width)


def _convert(builder, value, target: ir.Type):
    """Float vector conversion (extend, truncate or nothing)."""
    source = value.type.element
    if source == target:
        return value
    vector = ir.VectorType(target, 8)
    wider = isinstance(target, ir.DoubleType)
    return builder.fpext(value, vector) if wider else builder.fptrunc(value, vector)


def _check(*args) -> bool:
    arrays = [a for a in args if isinstance(a, types.Array)]
    return all(isinstance(a.dtype, types.Float) for a in arrays)


@intrinsic
def tile_store(typingctx, src, src_start, src_stride, dst, dst_start, dst_stride):
    """``dst.flat[dst_start + u * dst_stride + t] = src.flat[src_start + t * src_stride + u]``
    for ``t, u < 8`` (same dtype)."""
    if not (_check(src, dst) and src.dtype == dst.dtype):
        return None
    sig = types.void(src, types.uint64, types.uint64, dst, types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        src_v, s0, ss, dst_v, d0, ds = args
        rows = _rows(context, builder, signature.args[0], src_v, s0, ss, types.uint64)
        columns = _transpose(builder, rows)
        _store_rows(context, builder, signature.args[3], dst_v, d0, ds, types.uint64, columns)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def tile_product(
    typingctx, a, b, src_start, src_stride, scale, scale_start, dst, dst_start, dst_stride
):
    """Marginals of eight lanes over eight values: rows ``a * b`` (lane-last), transposed, each
    output row ``u`` (one lane) times ``scale[scale_start + u]``."""
    if not (_check(a, b, scale, dst) and a.dtype == b.dtype == dst.dtype == scale.dtype):
        return None
    sig = types.void(
        a, b, types.uint64, types.uint64, scale, types.uint64, dst, types.uint64, types.uint64
    )

    def codegen(context, builder, signature, args):
        a_v, b_v, s0, ss, scale_v, c0, dst_v, d0, ds = args
        at, bt, _, _, scale_t, _, dst_t = signature.args[:7]
        rows_a = _rows(context, builder, at, a_v, s0, ss, types.uint64)
        rows_b = _rows(context, builder, bt, b_v, s0, ss, types.uint64)
        rows = [builder.fmul(x, y) for x, y in zip(rows_a, rows_b, strict=True)]
        columns = _transpose(builder, rows)
        factors = builder.load(
            _pointer(context, builder, scale_t, scale_v, c0, types.uint64),
            align=scale_t.dtype.bitwidth // 8,
        )
        out = []
        for u, column in enumerate(columns):
            factor = builder.extract_element(factors, _I32(u))
            splat = builder.insert_element(ir.Constant(column.type, ir.Undefined), factor, _I32(0))
            splat = builder.shuffle_vector(
                splat, ir.Constant(column.type, ir.Undefined), _mask([0] * 8)
            )
            out.append(builder.fmul(column, splat))
        _store_rows(context, builder, dst_t, dst_v, d0, ds, types.uint64, out)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def tile_leaves(
    typingctx,
    src,
    src_start,
    src_stride,
    scale,
    scale_same,
    scale_start,
    dst,
    dst_start,
    dst_stride,
):
    """Leaf evidence of eight lanes over eight values: rows (one lane each), transposed, each
    output row (one value) times the lanes' inverse normalisers, cast to ``dst``'s dtype.

    When ``src`` and ``dst`` share a dtype the work is done in it, with the factors
    ``scale_same[scale_start : scale_start + 8]`` (that dtype); otherwise in float64, with
    ``scale`` (float64): float64 evidence far outside float32's range still normalises."""
    if not _check(src, scale, scale_same, dst) or scale.dtype != types.float64:
        return None
    if scale_same.dtype != dst.dtype:
        return None
    u64 = types.uint64
    sig = types.void(src, u64, u64, scale, scale_same, u64, dst, u64, u64)

    def codegen(context, builder, signature, args):
        src_v, s0, ss, scale_v, same_v, c0, dst_v, d0, ds = args
        src_t, _, _, scale_t, same_t, _, dst_t = signature.args[:7]
        same = src_t.dtype == dst_t.dtype
        factors_t, factors_v = (same_t, same_v) if same else (scale_t, scale_v)
        work = _element(context, factors_t)
        rows = _rows(context, builder, src_t, src_v, s0, ss, types.uint64)
        rows = [_convert(builder, r, work) for r in rows]
        factors = builder.load(
            _pointer(context, builder, factors_t, factors_v, c0, types.uint64),
            align=factors_t.dtype.bitwidth // 8,
        )
        target = _element(context, dst_t)
        columns = _transpose(builder, rows)
        out = [_convert(builder, builder.fmul(c, factors), target) for c in columns]
        _store_rows(context, builder, dst_t, dst_v, d0, ds, types.uint64, out)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def dot_rows(
    typingctx, x, x_base, x_rows, y, y_base, y_rows, first, count, weights, lanes, out, start
):
    """``out[start + b] = sum_t weights[t] * x[x_base + x_rows[t] * N + b] * y[y_base +
    y_rows[t] * N + b]`` for ``t`` in ``first .. first + count - 1`` and ``b < N = lanes``.

    ``lanes`` is one, two or four vectors (8, 16 or 32 float32; 4, 8 or 16 float64 lanes): the
    accumulators stay in registers across the sum (a loop over the lanes would store and
    reload them for every term). ``count = 0`` writes zeros."""
    if not (
        _check(x, y, weights, out)
        and x.dtype == y.dtype == out.dtype == weights.dtype
        and isinstance(x_rows, types.Array)
        and isinstance(x_rows.dtype, types.Integer)
        and x_rows == y_rows
    ):
        return None
    u64 = types.uint64
    sig = types.void(x, u64, x_rows, y, u64, y_rows, u64, u64, weights, u64, out, u64)

    def codegen(context, builder, signature, args):
        x_v, xb, xr_v, y_v, yb, yr_v, t0, n_terms, w_v, lanes_v, out_v, o0 = args
        x_t, _, rows_t, y_t, _, _, _, _, w_t, _, out_t, _ = signature.args
        element = _element(context, x_t)
        width = 8 if x_t.dtype.bitwidth == 32 else 4
        vector = ir.VectorType(element, width)
        i64 = ir.IntType(64)
        align = x_t.dtype.bitwidth // 8
        fmuladd = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(vector, [vector, vector, vector]),
            f"llvm.fmuladd.v{width}{'f32' if width == 8 else 'f64'}",
        )
        data = {
            name: context.make_array(typ)(context, builder, value).data
            for name, typ, value in (
                ("x", x_t, x_v),
                ("y", y_t, y_v),
                ("xr", rows_t, xr_v),
                ("yr", rows_t, yr_v),
                ("w", w_t, w_v),
                ("out", out_t, out_v),
            )
        }
        zero = ir.Constant(vector, [ir.Constant(element, 0.0)] * width)
        end = builder.add(t0, n_terms)
        after = builder.append_basic_block("dot.after")

        def row_pointer(base, rows, t, k, vectors):
            row = builder.zext(builder.load(builder.gep(data[rows], [t])), i64)
            offset = builder.add(base, builder.mul(row, i64(vectors * width)))
            offset = builder.add(offset, i64(k * width))
            return builder.bitcast(
                builder.gep(data["x" if rows == "xr" else "y"], [offset]), vector.as_pointer()
            )

        def emit(vectors: int) -> ir.Block:
            """A sum over the terms with ``vectors`` register accumulators, then the store."""
            head = builder.append_basic_block(f"dot.{vectors}")
            loop = builder.append_basic_block(f"dot.{vectors}.loop")
            done = builder.append_basic_block(f"dot.{vectors}.done")
            builder.position_at_end(head)
            builder.cbranch(builder.icmp_unsigned("<", t0, end), loop, done)
            builder.position_at_end(loop)
            t = builder.phi(i64)
            accs = [builder.phi(vector) for _ in range(vectors)]
            t.add_incoming(t0, head)
            for acc in accs:
                acc.add_incoming(zero, head)
            weight = builder.load(builder.gep(data["w"], [t]))
            splat = builder.insert_element(ir.Constant(vector, ir.Undefined), weight, _I32(0))
            splat = builder.shuffle_vector(
                splat, ir.Constant(vector, ir.Undefined), _mask([0] * width)
            )
            new = []
            for k, acc in enumerate(accs):
                xv = builder.load(row_pointer(xb, "xr", t, k, vectors), align=align)
                yv = builder.load(row_pointer(yb, "yr", t, k, vectors), align=align)
                new.append(builder.call(fmuladd, [builder.fmul(xv, splat), yv, acc]))
            t_next = builder.add(t, i64(1))
            t.add_incoming(t_next, loop)
            for acc, value in zip(accs, new, strict=True):
                acc.add_incoming(value, loop)
            builder.cbranch(builder.icmp_unsigned("<", t_next, end), loop, done)
            builder.position_at_end(done)
            results = [builder.phi(vector) for _ in range(vectors)]  # phis first
            for k, result in enumerate(results):
                result.add_incoming(zero, head)
                result.add_incoming(new[k], loop)
            for k, result in enumerate(results):
                offset = builder.add(o0, i64(k * width))
                pointer = builder.bitcast(builder.gep(data["out"], [offset]), vector.as_pointer())
                builder.store(result, pointer, align=align)
            builder.branch(after)
            return head

        entry = builder.block
        heads = {vectors: emit(vectors) for vectors in (4, 2, 1)}
        builder.position_at_end(entry)
        switch = builder.switch(lanes_v, heads[1])
        switch.add_case(ir.Constant(lanes_v.type, 4 * width), heads[4])
        switch.add_case(ir.Constant(lanes_v.type, 2 * width), heads[2])
        builder.position_at_end(after)
        return context.get_dummy_value()

    return sig, codegen
