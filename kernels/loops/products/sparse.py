"""Mini-batch products over a factor that is mostly zeros (behind a relu),
the zeros left out: the same bits as the packed products.

Why: behind a relu, dZ = dA * relu'(Z) is zero wherever the unit was off,
and so is the next layer's input A = relu(Z) (a quarter to 0.7 of the
cells nonzero on the bench's networks), and a product over them multiplies
those zeros like any other cell. The packed micro-kernel cannot skip them
(it broadcasts 8 rows at a time, and 8 random cells are seldom all zero),
so these kernels take one row of the output at a time:

    C[i, c0:c0+W] = alpha sum_{q: Z[i, q] != 0} Z[i, q] P[q, 0:W]

with the W cells of the row in vector registers (8 of the target's
vectors: 64 float64 or 128 float32 on AVX-512, 32 / 64 on AVX2; a half
kernel for narrow panels) while q runs over the row's nonzero cells, found
in a bit mask (``row_masks``: eight cells a vector compare) by their lowest
set bit. P is the other factor's panel, packed so that its rows run along
W (m x 512 bytes: 32 KiB, L1, for a batch of 64). Each nonzero costs one
load and one FMA a vector against the packed micro-kernel's 10 loads for 16
FMAs: about 0.8x its speed a multiply-add, so it pays where at most
SPARSE_DENSITY of the cells are nonzero (the target's: more on AVX2, whose
packed micro-kernel is slower; SPARSE_DENSITY_TRANSPOSED where the sparse
factor is transposed first, SPARSE_DENSITY_INPUT's for dA_prev, and not
where the output is narrower than half a panel). dW = dZ A_prev^T is this directly
(``sparse_tile``, Z = dZ); dA_prev = W^T dZ and Z = W A_prev + b take the
sparse factor's transpose as Z and put the results back transposed
(``sparse_tile_transposed``). The ops choose per call (backward.py,
forward.py): a sample of 64 cells, then the masks.

The same bits: for a reduction of one MICRO_KC block (a mini-batch), the
packed micro-kernel sums each cell in order of q, an FMA a term, then
scales by alpha; these kernels make the same FMAs in the same order, less
the ones whose Z cell is zero: fma(0, a, s) = s (an exact zero added; only
the sign of a zero sum could differ). Where the other factor holds an
infinity or a NaN, the packed product's 0 x inf = NaN is not formed here:
such a step has non-finite cells elsewhere, which the training loop's
finiteness test reports.

The tiles that use these are compiled at their first call
(kernels.loops.LAZY_TILES). Interpreted (the "python" backend), the same
loops on NumPy scalars.
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic, overload, register_jitable
from numpy import uint64

from ...options import HELPER_OPTIONS, MICRO_OPTIONS, SPARSE_BYTES
from ...wide import keep_out_of_line, prefer_wide_vectors
from ..views import borrowed
from .transpose import in_registers, transpose8_rows

LANES = 8
SAMPLE = 64  # cells may_be_sparse looks at
PANEL_BYTES = 32 * 1024  # a panel that stays in L1


def lowest_bit(mask):
    """The index of mask's lowest set bit (mask a nonzero uint64)."""
    mask = int(mask)
    return (mask & -mask).bit_length() - 1


@overload(lowest_bit, jit_options=HELPER_OPTIONS)
def _lowest_bit_compiled(mask):
    return lambda mask: uint64(trailing_zeros(mask))


@register_jitable(**HELPER_OPTIONS)
def _mask8_cells(row, j):
    """mask8 cell by cell: interpreted, and compiled for strided rows."""
    bits = uint64(0)
    for r in range(LANES):
        if row[j + r] != 0:
            bits |= uint64(1) << uint64(r)
    return bits


def mask8(row, j):
    """Bits r = 0..7 of a uint64: row[j + r] != 0 (row 1-D, j + 8 <= len(row))."""
    return _mask8_cells(row, j)


@intrinsic
def _mask8(typingctx, row, j):
    """mask8 as one vector compare: eight cells loaded, compared with zero
    (unordered: a NaN counts as nonzero), the eight bits of the result."""
    if not (isinstance(row, types.Array) and row.ndim == 1 and row.layout == "C"
            and row.dtype in (types.float32, types.float64) and isinstance(j, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        index = context.cast(builder, args[1], signature.args[1], types.intp)
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [index], wraparound=False)
        vec = ir.VectorType(context.get_value_type(aryty.dtype), LANES)
        cells = builder.load(builder.bitcast(ptr, vec.as_pointer()), align=aryty.dtype.bitwidth // 8)
        nonzero = builder.fcmp_unordered("!=", cells, ir.Constant(vec, [0.0] * LANES))
        return builder.zext(builder.bitcast(nonzero, ir.IntType(LANES)), ir.IntType(64))

    return types.uint64(row, j), codegen


@overload(mask8, jit_options=HELPER_OPTIONS)
def _mask8_compiled(row, j):
    if isinstance(row, types.Array) and row.layout == "C":
        return lambda row, j: _mask8(row, j)
    return lambda row, j: _mask8_cells(row, j)  # a strided row


@register_jitable(**HELPER_OPTIONS)
def popcount(x):
    """The set bits of a uint64: bits summed in pairs, nibbles, then bytes
    by shifts (no product that would wrap, no instruction the target may lack)."""
    x = x - ((x >> uint64(1)) & uint64(0x5555555555555555))
    x = (x & uint64(0x3333333333333333)) + ((x >> uint64(2)) & uint64(0x3333333333333333))
    x = (x + (x >> uint64(4))) & uint64(0x0F0F0F0F0F0F0F0F)
    x = x + (x >> uint64(8))
    x = x + (x >> uint64(16))
    x = x + (x >> uint64(32))
    return x & uint64(0x7F)


@register_jitable(**HELPER_OPTIONS)
def row_masks(masks, Z):
    """masks[i, w] bit b = (Z[i, 64 w + b] != 0); returns how many cells of Z
    are nonzero. masks (n, ceil(m / 64)) uint64, Z (n, m): C-contiguous rows
    compare eight cells at once (mask8), others cell by cell."""
    n, m = Z.shape
    nnz = uint64(0)
    for i in range(n):
        z = Z[i]
        for w in range(masks.shape[1]):
            j0 = w * 64
            j1 = min(j0 + 64, m)
            bits = uint64(0)
            j = j0
            while j + LANES <= j1:
                bits |= mask8(z, j) << uint64(j - j0)
                j += LANES
            for j in range(j, j1):
                if z[j] != 0:
                    bits |= uint64(1) << uint64(j - j0)
            masks[i, w] = bits
            nnz += popcount(bits)
    return nnz


@register_jitable(**HELPER_OPTIONS)
def sparse_enough(nnz, n, m, density):
    """Whether a product over a factor (n, m) with ``nnz`` nonzero cells
    leaves its zeros out: at most ``density`` of them nonzero
    (options.SPARSE_DENSITY for dW, SPARSE_DENSITY_TRANSPOSED for Z and
    SPARSE_DENSITY_INPUT's for dA_prev, which transpose their sparse factor
    first)."""
    return nnz <= density * n * m


def sparse_panel_source(cols):
    """Python source of sparse_panel_{cols}(C, c0, Z, masks, P, alpha): for
    every row i of C, C[i, c0 + c] = alpha sum over the set bits q of
    masks[i] of Z[i, q] P[q, c], c < cols, in order of q. Like the packed
    micro-kernels (micro.py) the cols cells of a row are named scalars,
    which LLVM's SLP vectorizer packs into cols / lanes vector registers,
    and every index is unsigned. The loop over the rows is the kernel's own:
    a call a row (its arrays passed on the stack) took a third of the time
    of a row's few dozen FMAs."""
    ind = "    "
    out = [f"def sparse_panel_{cols}(C, c0, Z, masks, P, alpha):",
           ind + "prefer_wide_vectors()  # zmm on AVX-512 (kernels.wide)",
           ind + "keep_out_of_line()  # a function of its own (kernels.wide)",
           ind + "zero = C.dtype.type(0.0)",
           ind + "c0 = uint64(c0)"]
    out += [ind + "; ".join(f"j{c} = uint64({c})" for c in range(cols))]
    out += [ind + "for i in range(uint64(C.shape[0])):"]
    ind2 = 2 * ind
    out += [ind2 + "; ".join(f"s{c} = zero" for c in range(cols))]
    out += [ind2 + "for w in range(uint64(masks.shape[1])):",
            ind2 + ind + "bits = masks[i, w]",
            ind2 + ind + "base = w * uint64(64)",
            ind2 + ind + "while bits != uint64(0):",
            ind2 + 2 * ind + "q = base + lowest_bit(bits)",
            ind2 + 2 * ind + "bits &= bits - uint64(1)",
            ind2 + 2 * ind + "u = Z[i, q]"]
    out += [ind2 + 2 * ind + "; ".join(f"s{c} += u * P[q, j{c}]" for c in range(cols))]
    out += [ind2 + "; ".join(f"C[i, c0 + j{c}] = s{c} * alpha" for c in range(cols))]
    return "\n".join(out) + "\n"


def _panel_kernel(cols):
    name = f"sparse_panel_{cols}"
    namespace = {"prefer_wide_vectors": prefer_wide_vectors, "keep_out_of_line": keep_out_of_line,
                 "uint64": np.uint64, "lowest_bit": lowest_bit}
    exec(compile(SPARSE_SOURCES[name], f"<kernels.loops.products.sparse {name}>", "exec"), namespace)
    return register_jitable(**MICRO_OPTIONS)(namespace[name])


# (full, half) panel widths, float64's then float32's: 8 and 4 of the target's vectors
SPARSE_WIDTHS = {64: (SPARSE_BYTES // 8, SPARSE_BYTES // 16), 32: (SPARSE_BYTES // 4, SPARSE_BYTES // 8)}
SPARSE_SOURCES = {f"sparse_panel_{c}": sparse_panel_source(c) for pair in SPARSE_WIDTHS.values() for c in pair}
SPARSE_KERNELS = {bits: tuple(_panel_kernel(c) for c in pair) for bits, pair in SPARSE_WIDTHS.items()}


def sparse_panel(C, c0, Z, masks, P, alpha, half):
    """The dtype's panel kernel: P (m, full) or, ``half``, P (m, half) (the
    widths of SPARSE_WIDTHS[bits]). Compiled, the choice of dtype is made at
    typing time."""
    SPARSE_KERNELS[C.dtype.itemsize * 8][1 if half else 0](C, c0, Z, masks, P, alpha)


@overload(sparse_panel, jit_options=HELPER_OPTIONS)
def _sparse_panel_compiled(C, c0, Z, masks, P, alpha, half):
    full, halved = SPARSE_KERNELS[C.dtype.bitwidth]

    def impl(C, c0, Z, masks, P, alpha, half):
        if half:
            halved(C, c0, Z, masks, P, alpha)
        else:
            full(C, c0, Z, masks, P, alpha)
    return impl


@register_jitable(**HELPER_OPTIONS)
def pack_panel(P, B, r0, w, width, transposed):
    """P[q, c] = op(B)[q, r0 + c] for q < P.shape[0] and c < w, zero for
    w <= c < width: op(B) = B^T (P[q, c] = B[r0 + c, q]) when ``transposed``,
    else B (a stretch of each row copied). The transposed reads go through
    8 x 8 blocks in vector registers where the target has them
    (transpose.py), the rest cell by cell."""
    m = P.shape[0]
    zero = P.dtype.type(0.0)
    c = 0
    if not transposed:
        for q in range(m):
            for cc in range(w):
                P[q, cc] = B[q, r0 + cc]
    elif in_registers(P):
        m8 = m - m % LANES
        while c + LANES <= w:
            for q in range(0, m8, LANES):
                transpose8_rows(P, q, c, B, r0 + c, q)
            for q in range(m8, m):
                for r in range(LANES):
                    P[q, c + r] = B[r0 + c + r, q]
            c += LANES
    for q in range(m):
        if transposed:
            for cc in range(c, w):
                P[q, cc] = B[r0 + cc, q]
        for cc in range(w, width):
            P[q, cc] = zero


@register_jitable(**HELPER_OPTIONS)
def put_transposed(C, c0, S, w):
    """C[c0 + c, j] = S[j, c] for c < w and j < S.shape[0]: a block of
    results, held as rows of examples, into rows of units."""
    m = S.shape[0]
    c = 0
    if in_registers(C):
        m8 = m - m % LANES
        while c + LANES <= w:
            for j in range(0, m8, LANES):
                transpose8_rows(C, c0 + c, j, S, j, c)
            for j in range(m8, m):
                for r in range(LANES):
                    C[c0 + c + r, j] = S[j, c + r]
            c += LANES
    for cc in range(c, w):
        for j in range(m):
            C[c0 + cc, j] = S[j, cc]


@register_jitable(**HELPER_OPTIONS)
def may_be_sparse(M, density):
    """A look before the masks, so that a product over dense operands (X,
    a tanh layer's dZ) costs 64 loads, not the masks' pass: whether at most
    ``density`` of 64 cells along M's diagonal (rows and columns spread
    evenly) are nonzero: a sample, the masks decide. No more slack than
    that: an operand a little too dense (digits' layers at 0.6 against the
    transposed products' 0.5) would build its transpose and masks in vain
    at most steps. Not a single row or column, which would be one unit's or
    one example's and can be far from the rest. M 2-D, any layout."""
    rows, cols = M.shape
    nnz = 0
    for t in range(SAMPLE):
        nnz += M[t * rows // SAMPLE, t * cols // SAMPLE] != 0
    return nnz <= density * SAMPLE


@register_jitable(**HELPER_OPTIONS)
def sparse_tile(C, Z, masks, B, j0, j1, alpha):
    """C[:, j0:j1] = alpha Z B[j0:j1]^T, the terms whose Z cell is zero left
    out (the module docstring): Z (n, m) with its row_masks ``masks``, B
    (k, m), C (n, k), m <= MICRO_KC for the packed product's bits. Panels
    of the full width while j1 - c0 allows, then of half the width; a last
    narrower one goes through a scratch block. The tile's panel and scratch
    are its own (no races under prange)."""
    n = C.shape[0]
    m = Z.shape[1]
    full, half = sparse_widths(C)
    # one buffer, as a full panel or a half one: rows of the panel's own
    # width, so that a half panel's rows lie together in L1
    buf = np.empty(m * full, dtype=C.dtype)
    Pf = buf.reshape((m, full))
    Ph = buf[:m * half].reshape((m, half))
    S = np.empty((n, half), dtype=C.dtype)
    c0 = j0
    while c0 < j1:
        w = j1 - c0
        if w >= full:
            pack_panel(borrowed(Pf), B, c0, full, full, True)
            sparse_panel(C, c0, Z, masks, borrowed(Pf), alpha, False)
            c0 += full
        elif w >= half:
            pack_panel(borrowed(Ph), B, c0, half, half, True)
            sparse_panel(C, c0, Z, masks, borrowed(Ph), alpha, True)
            c0 += half
        else:  # fewer than half the width left: into S, then each row's w cells
            pack_panel(borrowed(Ph), B, c0, w, half, True)
            sparse_panel(borrowed(S), 0, Z, masks, borrowed(Ph), alpha, True)
            for i in range(n):
                for c in range(w):
                    C[i, c0 + c] = S[i, c]
            c0 = j1


@register_jitable(**HELPER_OPTIONS)
def sparse_tile_transposed(C, ZT, masks, B, j0, j1, transposed):
    """C[j0:j1, :] = (ZT op(B)[:, j0:j1])^T, the terms whose ZT cell is zero
    left out: ZT (m, n) with its row_masks, op(B) (n, k) = B (n, k), or B^T
    for B (k, n) when ``transposed``; C (k, m); n <= MICRO_KC. So the other
    two products take their sparse factor's transpose as the kernels' rows:
    dA_prev = W^T dZ as (dZ^T W)^T (B = W), and Z = W A_prev as
    (A_prev^T W^T)^T (B = W, transposed). Each panel's results go through a
    scratch block (examples by units) into C's rows (put_transposed)."""
    m, n = ZT.shape
    full, half = sparse_widths(C)
    buf = np.empty(n * full, dtype=C.dtype)
    Pf = buf.reshape((n, full))
    Ph = buf[:n * half].reshape((n, half))
    S = np.empty((m, full), dtype=C.dtype)
    one = C.dtype.type(1.0)
    # full panels only where one fits L1 (PANEL_BYTES): the panel's rows are
    # the reduction's, up to 256 of them here, not a batch's 64
    wide = n * full * C.itemsize <= PANEL_BYTES
    c0 = j0
    while c0 < j1:
        w = j1 - c0
        if wide and w >= full:
            pack_panel(borrowed(Pf), B, c0, full, full, transposed)
            sparse_panel(borrowed(S), 0, ZT, masks, borrowed(Pf), one, False)
            put_transposed(C, c0, borrowed(S), full)
            c0 += full
        else:
            cols = min(w, half)
            pack_panel(borrowed(Ph), B, c0, cols, half, transposed)
            sparse_panel(borrowed(S), 0, ZT, masks, borrowed(Ph), one, True)
            put_transposed(C, c0, borrowed(S), cols)
            c0 += cols


def sparse_widths(C):
    """(full, half) panel widths for C's dtype (SPARSE_WIDTHS)."""
    return SPARSE_WIDTHS[C.dtype.itemsize * 8]


@overload(sparse_widths, jit_options=HELPER_OPTIONS)
def _sparse_widths_compiled(C):
    full, half = SPARSE_WIDTHS[C.dtype.bitwidth]
    return lambda C: (full, half)
