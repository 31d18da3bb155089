"""An 8 x 8 block transposed in vector registers: the products' transposing
packs (packed.pack_panels of B^T for dW = dZ A_prev^T, blocked.pack_transposed
for input_gradient's W^T and the dot form's panels).

Why: copying B^T into panels cell by cell is one scalar store a cell (the
panels' rows run along B's columns), about a cycle each, a fifth of a
mini-batch dW with a short reduction. Here eight rows of B are loaded as
eight vectors of eight cells, transposed by three rounds of shuffles
(pairs of cells, then pairs of pairs, then halves: 24 shuffles) and stored
as eight vectors into eight panel rows: 16 vector loads and stores and 24
shuffles for 64 cells. Numba has no vector types, so the block is LLVM IR
(``shufflevector``) written by an intrinsic; LLVM picks the target's
shuffles (zmm/ymm on x86) for <8 x double> and <8 x float>. Where a vector
holds four cells of the dtype (float64 on AVX2) the block goes as four
4 x 4 quarters of <4 x double>, a register a row, two rounds of shuffles
each: as whole 8-cell rows (two registers each) it was slower than cell
by cell.

``in_registers(a)``: whether the target transposes a's dtype so
(options.TRANSPOSE_ITEMSIZE: where its vectors have 256 bits or more).
``transpose8(dst, d0, d1, d2, src, s0, s1)``: dst[d0, d1 + i, d2 + r] =
src[s0 + r, s1 + i] for r, i = 0 .. 7, dst (panels, kc, NR);
``transpose8_rows(dst, d1, d2, src, s0, s1)``: dst[d1 + i, d2 + r] = the
same, dst 2-D (blocked.pack_transposed). Arrays C-contiguous, one dtype
(float32 or float64), indices in range (the caller's promise: no bounds
test). Interpreted (the "python" backend), loops.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from ... import target
from ...options import HELPER_OPTIONS, TRANSPOSE_ITEMSIZE

LANES = 8


def in_registers(a):
    """Whether 8 x 8 blocks of a's dtype go through vector registers on this
    target (options.TRANSPOSE_ITEMSIZE); compiled, a constant of the code,
    so the other way is not compiled in."""
    return a.itemsize <= TRANSPOSE_ITEMSIZE


@overload(in_registers, jit_options=HELPER_OPTIONS)
def _in_registers_compiled(a):
    value = a.dtype.bitwidth // 8 <= TRANSPOSE_ITEMSIZE
    return lambda a: value


def transpose8(dst, d0, d1, d2, src, s0, s1):
    """dst[d0, d1 + i, d2 + r] = src[s0 + r, s1 + i], r, i = 0 .. 7 (the module docstring)."""
    for r in range(LANES):
        for i in range(LANES):
            dst[d0, d1 + i, d2 + r] = src[s0 + r, s1 + i]


def transpose8_rows(dst, d1, d2, src, s0, s1):
    """dst[d1 + i, d2 + r] = src[s0 + r, s1 + i], r, i = 0 .. 7, dst 2-D."""
    for r in range(LANES):
        for i in range(LANES):
            dst[d1 + i, d2 + r] = src[s0 + r, s1 + i]


def _shuffle_rounds():
    """Each round's two masks (shufflevector of two 8-cell vectors a, b:
    index i < 8 is a's cell i, i >= 8 is b's cell i - 8). Round 1
    interleaves the cells of rows 2p and 2p + 1, round 2 pairs of cells,
    round 3 halves."""
    lo1, hi1 = [0, 8, 2, 10, 4, 12, 6, 14], [1, 9, 3, 11, 5, 13, 7, 15]
    lo2, hi2 = [0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15]
    lo3, hi3 = [0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15]
    return (lo1, hi1), (lo2, hi2), (lo3, hi3)


def _transpose4_ir(builder, rows):
    """The four 4-cell vectors ``rows`` transposed (a quarter of an 8 x 8
    block where a vector holds four cells: float64 on AVX2): interleave rows
    2p and 2p + 1, then take halves."""
    def shuffle(a, b, mask):
        return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(ir.IntType(32), 4), mask))

    t = []
    for p in range(2):
        a, b = rows[2 * p], rows[2 * p + 1]
        t += [shuffle(a, b, [0, 4, 2, 6]), shuffle(a, b, [1, 5, 3, 7])]  # cells (r, c), (r + 1, c) of c even, odd
    return [shuffle(t[0], t[2], [0, 1, 4, 5]), shuffle(t[1], t[3], [0, 1, 4, 5]),
            shuffle(t[0], t[2], [2, 3, 6, 7]), shuffle(t[1], t[3], [2, 3, 6, 7])]


def _transpose_ir(builder, rows):
    """The eight vectors ``rows`` (row r: cells r, 0..7) transposed: column i's cells."""
    (lo1, hi1), (lo2, hi2), (lo3, hi3) = _shuffle_rounds()

    def shuffle(a, b, mask):
        return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(ir.IntType(32), LANES), mask))

    # round 1: t[2p] = (r2p0 r2p+1,0 r2p2 r2p+1,2 ...), t[2p+1] the odd cells
    t = []
    for p in range(4):
        a, b = rows[2 * p], rows[2 * p + 1]
        t += [shuffle(a, b, lo1), shuffle(a, b, hi1)]
    # round 2: rows 4g .. 4g + 3 of cells c, c + 4 (u[4g + c], c = 0..3)
    u = [None] * 8
    for g in range(2):
        e0, o0, e1, o1 = t[4 * g], t[4 * g + 1], t[4 * g + 2], t[4 * g + 3]
        u[4 * g + 0], u[4 * g + 2] = shuffle(e0, e1, lo2), shuffle(e0, e1, hi2)
        u[4 * g + 1], u[4 * g + 3] = shuffle(o0, o1, lo2), shuffle(o0, o1, hi2)
    # round 3: column c from the two groups' halves
    cols = [None] * 8
    for c in range(4):
        cols[c], cols[c + 4] = shuffle(u[c], u[4 + c], lo3), shuffle(u[c], u[4 + c], hi3)
    return cols


@intrinsic
def _transpose8(typingctx, dst, d0, d1, d2, src, s0, s1):
    """transpose8 for dst 3-D, transpose8_rows for dst 2-D (d0 unused)."""
    if not (isinstance(dst, types.Array) and isinstance(src, types.Array) and dst.ndim in (2, 3) and src.ndim == 2
            and dst.dtype == src.dtype and dst.dtype in (types.float32, types.float64)):
        return None
    for idx in (d0, d1, d2, s0, s1):
        if not isinstance(idx, types.Integer):
            return None

    def codegen(context, builder, signature, args):
        dty, _, _, _, sty, _, _ = signature.args
        dst_v, d0_v, d1_v, d2_v, src_v, s0_v, s1_v = args
        dary = context.make_array(dty)(context, builder, dst_v)
        sary = context.make_array(sty)(context, builder, src_v)

        def intp(value, ty):
            return context.cast(builder, value, ty, types.intp)

        d0_i, d1_i, d2_i = (intp(v, t) for v, t in zip((d0_v, d1_v, d2_v), signature.args[1:4]))
        s0_i, s1_i = (intp(v, t) for v, t in zip((s0_v, s1_v), signature.args[5:7]))
        elem = context.get_value_type(dty.dtype)
        align = dty.dtype.bitwidth // 8
        # eight cells a vector where the target's vectors hold them, else four
        # (float64 on AVX2: an 8-cell row is two registers, and the 8 x 8 block
        # so was slower than cell by cell; its four 4 x 4 quarters are faster)
        lanes = LANES if LANES * dty.dtype.bitwidth <= target.vector_bits() else LANES // 2
        vec_ptr = ir.VectorType(elem, lanes).as_pointer()

        def at(base, offset):
            return builder.add(base, ir.Constant(base.type, offset))

        for r0 in range(0, LANES, lanes):
            for i0 in range(0, LANES, lanes):
                rows = []
                for r in range(r0, r0 + lanes):
                    ptr = cgutils.get_item_pointer(context, builder, sty, sary, [at(s0_i, r), at(s1_i, i0)],
                                                   wraparound=False)
                    rows.append(builder.load(builder.bitcast(ptr, vec_ptr), align=align))
                cols = _transpose_ir(builder, rows) if lanes == LANES else _transpose4_ir(builder, rows)
                for i, col in enumerate(cols):
                    index = [at(d1_i, i0 + i), at(d2_i, r0)]
                    if dty.ndim == 3:
                        index = [d0_i] + index
                    ptr = cgutils.get_item_pointer(context, builder, dty, dary, index, wraparound=False)
                    builder.store(col, builder.bitcast(ptr, vec_ptr), align=align)
        return context.get_dummy_value()

    return types.none(dst, d0, d1, d2, src, s0, s1), codegen


@overload(transpose8, jit_options=HELPER_OPTIONS)
def _transpose8_compiled(dst, d0, d1, d2, src, s0, s1):
    def impl(dst, d0, d1, d2, src, s0, s1):
        _transpose8(dst, d0, d1, d2, src, s0, s1)
    return impl


@overload(transpose8_rows, jit_options=HELPER_OPTIONS)
def _transpose8_rows_compiled(dst, d1, d2, src, s0, s1):
    def impl(dst, d1, d2, src, s0, s1):
        _transpose8(dst, 0, d1, d2, src, s0, s1)
    return impl
