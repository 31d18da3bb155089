"""The explicit-loop formulation: every op written ONCE, as loops over units and examples.

Run as-is by the interpreter this module is backend "python". ``kernels.cpu``
compiles the very same functions with Numba, serially ("numba") and in
parallel ("parallel"): ``numba.prange`` is plain ``range`` when the function is
not compiled, so one source gives three speeds.

Shape key (the course's notation):
    m      number of examples (examples are columns)
    n      units of this layer, n[l]
    k      units of the previous layer, n[l-1]
    Z, A, dZ, dA       (n, m)
    A_prev, dA_prev    (k, m)
    W, dW              (n, k)
    b, db              (n, 1)
    AL, Y, dAL         (1, m)

Conventions of every kernel here (llm.c's): outputs first, then inputs, then
sizes/options. Kernels do NOT check their arguments: the public ops in
``kernels.backend`` validate shapes, dtypes and layouts first, so compiled code
never sees an inconsistent shape. Every array is C-contiguous.

Habits that make these loops fast once compiled:
- the innermost loop walks a contiguous row (``z[j]``, ``a[j]``), so LLVM can
  use SIMD; rows are taken as 1-D slices so the loop index starts at 0 (a
  ``range(j0, j1)`` index into ``A[i, j]`` keeps Numba's negative-index
  wraparound check, which blocks vectorization);
- every ``prange`` iteration owns the cells it writes (no races): forward is
  parallel over tiles of Z (examples x units), dW over blocks of its columns
  (version 1: over output units), dA_prev over tiles of its cells;
- constants are made in the arrays' own dtype (``X.dtype.type(...)``) so a
  float32 loop is never promoted to float64 by a float64 literal;
- the three matrix products have three versions, chosen by shape: version 1,
  the simple loops (the reference, and the path for tiny products); version
  2, register-blocked helpers (rows_update, dot4x4) for products with fewer
  than 8 output rows or a short reduction; and version 4, packed panels and
  8 x NR micro-kernels that keep their block of the output in vector
  registers (the BLAS way; see "Packed products" below). ("Version 3" is
  forward_plan's code for version 2's rows_update form.)
- below PARALLEL_WORK multiply-adds (PARALLEL_ELEMENTS elements for the
  elementwise ops, the cost and dot) the parallel variant runs its serial
  loop: starting threads would cost more than they save;
- tanh, sigmoid and the cost's log use the vectorizable approximations of
  ``kernels.approx`` (the C math library with the EXACT bit: see below).
"""

import math

import numpy as np
from numba import prange, types
from numba.core.errors import TypingError
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, overload, register_jitable
from numba.np.arrayobj import make_array, populate_array

from .approx import log_approx, sigmoid_approx, tanh_approx
from .wide import SLPCompiler, prefer_wide_vectors

# Activation codes: compiled loops branch on a small int, not on a string.
SIGMOID = 0
TANH = 1
RELU = 2
LEAKY_RELU = 3
LINEAR = 4
ACTIVATION_CODES = {
    "sigmoid": SIGMOID,
    "tanh": TANH,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "linear": LINEAR,
}
LEAKY_SLOPE = 0.01

# Transcendentals. The row loops below (activate_row, backprop_row) and the
# cost use the vectorizable approximations of ``kernels.approx`` by default:
# tanh and sigmoid within 2.5 ulp, log within 1 ulp over the whole float range
# (measured, tested in tests/test_fastmath_approx.py), 5-20x faster than the C
# math library's scalar calls once LLVM vectorizes them. Adding EXACT to an
# activation code (``TANH | EXACT``), or passing ``exact=True`` to the cost,
# selects the C math library (math.tanh/exp/log) instead;
# ``kernels.get_backend(name, exact_math=True)`` does that for every op. The
# scalar helpers (sigmoid_scalar, activation_scalar, derivative_scalar) always
# use the C math library (and ignore the EXACT bit): they are the reference,
# and what the CUDA kernels call.
EXACT = 8

# Examples per tile of the forward and dA_prev loops: a tile of one row is
# BLOCK * 8 bytes (2 KiB in float64), and the A_prev tile it reads is reused
# across consecutive units while it stays in L2.
BLOCK = 256

# Matrix products (linear_forward, input_gradient, weight_gradients) switch from
# the simple loops (version 1, the reference) to register-blocked micro-kernels
# (version 2) above this many multiply-adds, and from a serial to a parallel
# loop over tiles above PARALLEL_WORK (below it, thread start-up costs more
# than it saves: about 3-5 us a parallel loop on 2 cores).
BLOCKED_WORK = 2048
PARALLEL_WORK = 65536
# Elementwise kernels, the cost and dot run serially below this many elements.
PARALLEL_ELEMENTS = 16384
# Tiles of the blocked products: JB examples (columns) by all rows, the
# reduction taken QB at a time so the QB x JB panel of the right-hand factor
# stays in L2 while every 4-row block of the output walks over it.
JB = 256
QB = 128
# Reduction block of weight_gradients: JR_BYTES of each row (512 examples in
# float64, 1024 in float32) at a time, so that the 4 rows of dZ a dot4x4 holds
# and the 4 rows of A_prev passing by fit in L1 together (MNIST layer 1, m =
# 1024, single-threaded against BLAS: float64 1.45-1.84x -> 1.38-1.59x its
# time, float32 unchanged; 2048 bytes was slower in float32).
JR_BYTES = 4096
# linear_forward takes the dot-product form (packed panel, dot4x4) when the
# reduction is at least DOT_FORM_K long: each 4 x 4 block of Z ends in 16
# horizontal sums of vector registers, which only a long reduction amortizes
# (single-threaded against BLAS on one thread, interleaved runs: k = 32, m =
# 2048 dot form 2.2x / 2.7x BLAS's time (float64 / float32), rows_update form
# 1.1x / 1.0x; k = 128 (MNIST layer 2) 1.4-1.8x / 2.0x against 1.1-1.2x /
# 1.4-1.7x; k = 784 (MNIST layer 1) dot form 1.7x / 1.3-1.7x against 2.0x /
# 1.5-1.9x). It takes KC of the reduction at a time: KC = 1024 takes
# the MNIST-like layer 1 (k = 784) in one pass, so every 4 x 4 block of Z is
# reduced (horizontal sums, load and store) once instead of 4 times (float32
# forward at (128, 784, 1024) 4.2 -> 3.2 ms single-threaded, float64 ~5%).
DOT_FORM_K = 256
KC = 1024

# Options of the scalar/row helpers below when a compiled kernel calls them
# (they are compiled on their own, not with the caller's flags): numpy's error
# model so a division carries no zero check (which would block SIMD), and the
# same fastmath flags as ``kernels.cpu.FASTMATH``. Interpreted, they are plain
# Python functions.
HELPER_OPTIONS = dict(error_model="numpy", fastmath={"reassoc", "contract"})


# --------------------------------------------------------------------------
# Flat views.


def flat(x):
    """``x`` (C-contiguous, any shape) as a 1-D view of its ``x.size`` cells,
    for the elementwise loops. Interpreted: ``x.reshape(x.size)``."""
    return x.reshape(x.size)


@intrinsic
def _flat_view(typingctx, x):
    """The 1-D view of a C-contiguous array, built directly: same data,
    meminfo and parent, shape (size,), stride itemsize. Numba's own reshape
    calls a C helper to work out strides for any layout (about 45 ns a call
    here; a planar fit iteration made some 20 of them, ~1 us of its ~11)."""
    if not (isinstance(x, types.Array) and x.layout == "C"):
        return None
    retty = x.copy(ndim=1, layout="C")

    def codegen(context, builder, signature, args):
        ary = make_array(signature.args[0])(context, builder, args[0])
        out = make_array(retty)(context, builder)
        populate_array(out, data=ary.data, shape=[ary.nitems], strides=[ary.itemsize],
                       itemsize=ary.itemsize, meminfo=ary.meminfo, parent=ary.parent)
        return impl_ret_borrowed(context, builder, retty, out._getvalue())

    return retty(x), codegen


@overload(flat, jit_options=HELPER_OPTIONS)
def _flat_compiled(x):
    if isinstance(x, types.Array) and x.layout == "C":
        return lambda x: _flat_view(x)
    raise TypingError(f"flat() takes a C-contiguous array, got {x}: pass the kernels "
                      f"np.ascontiguousarray(...) (kernels.backend's ops do)")


# --------------------------------------------------------------------------
# Scalar activations and their derivatives.
# The derivative convention is the course slides': g'(z) = 1 for z >= 0 for
# relu and leaky relu (the derivative at exactly 0 is undefined; we pick 1).
# NaN propagates through every function, so divergence is never hidden.


@register_jitable(**HELPER_OPTIONS)
def sigmoid_scalar(z):
    """sigma(z) = 1 / (1 + e^-z), never overflowing: exp only sees -|z|."""
    one = type(z)(1.0)
    if z >= 0:
        return one / (one + math.exp(-z))
    e = math.exp(z)  # z < 0 (or NaN): e in [0, 1), no overflow
    return e / (one + e)


@register_jitable(**HELPER_OPTIONS)
def activation_scalar(z, act):
    """g(z) for the activation code ``act`` (the EXACT bit is ignored: always libm)."""
    zero = type(z)(0.0)
    act = act & ~EXACT
    if act == SIGMOID:
        return sigmoid_scalar(z)
    if act == TANH:
        return math.tanh(z)
    if act == RELU:
        return zero if z < zero else z  # NaN is not < 0: NaN passes through
    if act == LEAKY_RELU:
        return type(z)(LEAKY_SLOPE) * z if z < zero else z
    return z


@register_jitable(**HELPER_OPTIONS)
def derivative_scalar(z, act):
    """g'(z) for the activation code ``act`` (1 at z = 0 for relu/leaky relu;
    the EXACT bit is ignored: always libm)."""
    one = type(z)(1.0)
    act = act & ~EXACT
    if act == SIGMOID:
        s = sigmoid_scalar(z)
        return s * (one - s)
    if act == TANH:
        t = math.tanh(z)
        return one - t * t
    if act == RELU:
        return type(z)(0.0) if z < 0 else one
    if act == LEAKY_RELU:
        return type(z)(LEAKY_SLOPE) if z < 0 else one
    return one


@register_jitable(**HELPER_OPTIONS)
def activate_row(a, z, act):
    """a[j] = g(z[j]) over a 1-D row. The branch on ``act`` sits outside the
    loop so each loop body is one activation (vectorizable where g is: all of
    them, but the EXACT ones that call the C math library)."""
    zero = a.dtype.type(0.0)
    if act == TANH:
        for j in range(z.shape[0]):
            a[j] = tanh_approx(z[j])
    elif act == SIGMOID:
        for j in range(z.shape[0]):
            a[j] = sigmoid_approx(z[j])
    elif act == RELU or act == RELU | EXACT:
        for j in range(z.shape[0]):
            a[j] = zero if z[j] < zero else z[j]
    elif act == LEAKY_RELU or act == LEAKY_RELU | EXACT:
        slope = a.dtype.type(LEAKY_SLOPE)
        for j in range(z.shape[0]):
            a[j] = slope * z[j] if z[j] < zero else z[j]
    elif act == TANH | EXACT:
        for j in range(z.shape[0]):
            a[j] = math.tanh(z[j])
    elif act == SIGMOID | EXACT:
        for j in range(z.shape[0]):
            a[j] = sigmoid_scalar(z[j])
    else:
        for j in range(z.shape[0]):
            a[j] = z[j]


@register_jitable(**HELPER_OPTIONS)
def backprop_row(dz, da, z, act):
    """dz[j] = da[j] * g'(z[j]) over a 1-D row."""
    one = dz.dtype.type(1.0)
    zero = dz.dtype.type(0.0)
    if act == TANH:
        for j in range(z.shape[0]):
            t = tanh_approx(z[j])
            dz[j] = da[j] * (one - t * t)
    elif act == SIGMOID:
        for j in range(z.shape[0]):
            s = sigmoid_approx(z[j])
            dz[j] = da[j] * (s * (one - s))
    elif act == RELU or act == RELU | EXACT:
        for j in range(z.shape[0]):
            dz[j] = zero if z[j] < zero else da[j]
    elif act == LEAKY_RELU or act == LEAKY_RELU | EXACT:
        slope = dz.dtype.type(LEAKY_SLOPE)
        for j in range(z.shape[0]):
            dz[j] = da[j] * (slope if z[j] < zero else one)
    elif act == LINEAR or act == LINEAR | EXACT:
        for j in range(z.shape[0]):
            dz[j] = da[j]
    else:  # TANH | EXACT, SIGMOID | EXACT
        for j in range(z.shape[0]):
            dz[j] = da[j] * derivative_scalar(z[j], act)


# --------------------------------------------------------------------------
# Matrix products, register-blocked (version 2 of the three products; the
# simple loops of version 1 stay beside them as the reference and for tiny
# shapes). Two micro-kernels, both plain loops:
#
# rows_update   C[r, j] += sum_q X[r, q] B[q, j] for 4 rows r of C and 4 q at
#               a time: the 16 X values sit in registers while the inner loop
#               walks j (contiguous in C and B): 16 multiply-adds per 4 loads
#               of B and 4 loads + 4 stores of C (version 1: 1 multiply-add per
#               2 loads + 1 store). linear_forward is C = Z, X = W, B = A_prev;
#               input_gradient is C = dA_prev, X = W^T, B = dZ.
# dot4x4        the 16 dot products of 4 rows of P with 4 rows of Q along their
#               contiguous length, 16 accumulators in registers (SIMD lanes
#               over j; fastmath lets LLVM reassociate the sums):
#               weight_gradients, dW = dZ A_prev^T.


@register_jitable(**HELPER_OPTIONS)
def rows_update(C, X, B, r0, r1, q0, q1, j0, j1):
    """C[r0:r1, j0:j1] += X[r0:r1, q0:q1] B[q0:q1, j0:j1].

    C (R, M), X (R, Q) (may be a transposed view), B (Q, M).
    """
    prefer_wide_vectors()  # zmm on AVX-512 (kernels.wide)
    r = r0
    while r + 4 <= r1:
        c0 = C[r, j0:j1]
        c1 = C[r + 1, j0:j1]
        c2 = C[r + 2, j0:j1]
        c3 = C[r + 3, j0:j1]
        q = q0
        while q + 4 <= q1:
            b0 = B[q, j0:j1]
            b1 = B[q + 1, j0:j1]
            b2 = B[q + 2, j0:j1]
            b3 = B[q + 3, j0:j1]
            x00 = X[r, q]; x01 = X[r, q + 1]; x02 = X[r, q + 2]; x03 = X[r, q + 3]
            x10 = X[r + 1, q]; x11 = X[r + 1, q + 1]; x12 = X[r + 1, q + 2]; x13 = X[r + 1, q + 3]
            x20 = X[r + 2, q]; x21 = X[r + 2, q + 1]; x22 = X[r + 2, q + 2]; x23 = X[r + 2, q + 3]
            x30 = X[r + 3, q]; x31 = X[r + 3, q + 1]; x32 = X[r + 3, q + 2]; x33 = X[r + 3, q + 3]
            for j in range(c0.shape[0]):  # contiguous: SIMD
                v0 = b0[j]
                v1 = b1[j]
                v2 = b2[j]
                v3 = b3[j]
                c0[j] += x00 * v0 + x01 * v1 + x02 * v2 + x03 * v3
                c1[j] += x10 * v0 + x11 * v1 + x12 * v2 + x13 * v3
                c2[j] += x20 * v0 + x21 * v1 + x22 * v2 + x23 * v3
                c3[j] += x30 * v0 + x31 * v1 + x32 * v2 + x33 * v3
            q += 4
        while q < q1:  # the last q1 - q0 mod 4 rows of B
            b0 = B[q, j0:j1]
            x00 = X[r, q]; x10 = X[r + 1, q]; x20 = X[r + 2, q]; x30 = X[r + 3, q]
            for j in range(c0.shape[0]):
                v0 = b0[j]
                c0[j] += x00 * v0
                c1[j] += x10 * v0
                c2[j] += x20 * v0
                c3[j] += x30 * v0
            q += 1
        r += 4
    while r < r1:  # the last r1 - r0 mod 4 rows of C, one at a time
        c0 = C[r, j0:j1]
        q = q0
        while q + 4 <= q1:
            b0 = B[q, j0:j1]
            b1 = B[q + 1, j0:j1]
            b2 = B[q + 2, j0:j1]
            b3 = B[q + 3, j0:j1]
            x00 = X[r, q]; x01 = X[r, q + 1]; x02 = X[r, q + 2]; x03 = X[r, q + 3]
            for j in range(c0.shape[0]):
                c0[j] += x00 * b0[j] + x01 * b1[j] + x02 * b2[j] + x03 * b3[j]
            q += 4
        while q < q1:
            b0 = B[q, j0:j1]
            x00 = X[r, q]
            for j in range(c0.shape[0]):
                c0[j] += x00 * b0[j]
            q += 1
        r += 1


@register_jitable(**HELPER_OPTIONS)
def product_tile(C, X, B, r0, r1, j0, j1):
    """C[r0:r1, j0:j1] += X[r0:r1, :] B[:, j0:j1], the reduction QB at a time."""
    Q = B.shape[0]
    for q0 in range(0, Q, QB):
        rows_update(C, X, B, r0, r1, q0, min(q0 + QB, Q), j0, j1)


@register_jitable(**HELPER_OPTIONS)
def product_tiles(R, M):
    """Tiling of an (R, M) product output: (column tiles, row groups, rows per
    group). Columns JB at a time; rows split in groups (multiples of 4) only
    when there are too few column tiles to keep every core busy."""
    njb = (M + JB - 1) // JB
    ngroups = 1
    if njb < 8:
        ngroups = min((8 + njb - 1) // njb, (R + 3) // 4)
    rows = (R + ngroups - 1) // ngroups
    rows = (rows + 3) // 4 * 4
    ngroups = (R + rows - 1) // rows
    return njb, ngroups, rows


@register_jitable(**HELPER_OPTIONS)
def dot4x4(S, sr, sc, P, pr, po, Q, qr, qo, L, accumulate):
    """S[sr + a, sc + c] (+)= sum_l P[pr + a, po + l] Q[qr + c, qo + l] for
    a, c < 4 and l < L: 16 dot products along contiguous rows of P and Q."""
    prefer_wide_vectors()  # zmm on AVX-512 (kernels.wide)
    zero = S.dtype.type(0.0)
    a0 = P[pr, po:po + L]
    a1 = P[pr + 1, po:po + L]
    a2 = P[pr + 2, po:po + L]
    a3 = P[pr + 3, po:po + L]
    b0 = Q[qr, qo:qo + L]
    b1 = Q[qr + 1, qo:qo + L]
    b2 = Q[qr + 2, qo:qo + L]
    b3 = Q[qr + 3, qo:qo + L]
    s00 = zero; s01 = zero; s02 = zero; s03 = zero
    s10 = zero; s11 = zero; s12 = zero; s13 = zero
    s20 = zero; s21 = zero; s22 = zero; s23 = zero
    s30 = zero; s31 = zero; s32 = zero; s33 = zero
    for j in range(a0.shape[0]):  # 16 reductions: SIMD lanes over j (fastmath reassoc)
        v0 = b0[j]
        v1 = b1[j]
        v2 = b2[j]
        v3 = b3[j]
        u = a0[j]
        s00 += u * v0; s01 += u * v1; s02 += u * v2; s03 += u * v3
        u = a1[j]
        s10 += u * v0; s11 += u * v1; s12 += u * v2; s13 += u * v3
        u = a2[j]
        s20 += u * v0; s21 += u * v1; s22 += u * v2; s23 += u * v3
        u = a3[j]
        s30 += u * v0; s31 += u * v1; s32 += u * v2; s33 += u * v3
    if accumulate:
        s00 += S[sr, sc]; s01 += S[sr, sc + 1]; s02 += S[sr, sc + 2]; s03 += S[sr, sc + 3]
        s10 += S[sr + 1, sc]; s11 += S[sr + 1, sc + 1]; s12 += S[sr + 1, sc + 2]; s13 += S[sr + 1, sc + 3]
        s20 += S[sr + 2, sc]; s21 += S[sr + 2, sc + 1]; s22 += S[sr + 2, sc + 2]; s23 += S[sr + 2, sc + 3]
        s30 += S[sr + 3, sc]; s31 += S[sr + 3, sc + 1]; s32 += S[sr + 3, sc + 2]; s33 += S[sr + 3, sc + 3]
    S[sr, sc] = s00; S[sr, sc + 1] = s01; S[sr, sc + 2] = s02; S[sr, sc + 3] = s03
    S[sr + 1, sc] = s10; S[sr + 1, sc + 1] = s11; S[sr + 1, sc + 2] = s12; S[sr + 1, sc + 3] = s13
    S[sr + 2, sc] = s20; S[sr + 2, sc + 1] = s21; S[sr + 2, sc + 2] = s22; S[sr + 2, sc + 3] = s23
    S[sr + 3, sc] = s30; S[sr + 3, sc + 1] = s31; S[sr + 3, sc + 2] = s32; S[sr + 3, sc + 3] = s33


@register_jitable(**HELPER_OPTIONS)
def dot1x4(S, sr, sc, P, pr, po, Q, qr, qo, L, accumulate):
    """dot4x4 for one leftover row of P: S[sr, sc:sc+4]."""
    prefer_wide_vectors()  # zmm on AVX-512 (kernels.wide)
    zero = S.dtype.type(0.0)
    a0 = P[pr, po:po + L]
    b0 = Q[qr, qo:qo + L]
    b1 = Q[qr + 1, qo:qo + L]
    b2 = Q[qr + 2, qo:qo + L]
    b3 = Q[qr + 3, qo:qo + L]
    s0 = zero; s1 = zero; s2 = zero; s3 = zero
    for j in range(a0.shape[0]):
        u = a0[j]
        s0 += u * b0[j]; s1 += u * b1[j]; s2 += u * b2[j]; s3 += u * b3[j]
    if accumulate:
        s0 += S[sr, sc]; s1 += S[sr, sc + 1]; s2 += S[sr, sc + 2]; s3 += S[sr, sc + 3]
    S[sr, sc] = s0; S[sr, sc + 1] = s1; S[sr, sc + 2] = s2; S[sr, sc + 3] = s3


@register_jitable(**HELPER_OPTIONS)
def dot1x1(S, sr, sc, P, pr, po, Q, qr, qo, L, accumulate):
    """One dot product: S[sr, sc] (+)= P[pr, po:po+L] . Q[qr, qo:qo+L]."""
    prefer_wide_vectors()  # zmm on AVX-512 (kernels.wide)
    a = P[pr, po:po + L]
    b = Q[qr, qo:qo + L]
    s = S.dtype.type(0.0)
    for j in range(a.shape[0]):
        s += a[j] * b[j]
    if accumulate:
        s += S[sr, sc]
    S[sr, sc] = s


@register_jitable(**HELPER_OPTIONS)
def dots_tile(S, sr, sc, P, pr0, pr1, po, Q, qr0, qr1, qo, L, accumulate):
    """S[sr + (r - pr0), sc + (q - qr0)] (+)= P[r, po:po+L] . Q[q, qo:qo+L] for
    r in pr0:pr1 and q in qr0:qr1, 4 x 4 at a time (leftovers 1 x 4, 1 x 1).
    The 4 rows of P stay in L1 while the rows of Q pass by (this order, with
    wide vectors, measured 5-20% faster on the MNIST layer shapes than the
    other: see kernels.wide). P, Q C-contiguous (their row slices are then
    contiguous: SIMD)."""
    r = pr0
    while r + 4 <= pr1:
        q = qr0
        while q + 4 <= qr1:
            dot4x4(S, sr + r - pr0, sc + q - qr0, P, r, po, Q, q, qo, L, accumulate)
            q += 4
        r += 4
    while r < pr1:  # the last pr1 - pr0 mod 4 rows of P
        q = qr0
        while q + 4 <= qr1:
            dot1x4(S, sr + r - pr0, sc + q - qr0, P, r, po, Q, q, qo, L, accumulate)
            q += 4
        r += 1
    q = qr0 + (qr1 - qr0) // 4 * 4
    while q < qr1:  # the last qr1 - qr0 mod 4 rows of Q, against every row of P
        for r in range(pr0, pr1):
            dot1x1(S, sr + r - pr0, sc + q - qr0, P, r, po, Q, q, qo, L, accumulate)
        q += 1


# --------------------------------------------------------------------------
# Packed products (version 4): the BLAS way, as explicit loops.
#
# C[i, j] += sum_q A[i, q] B[q, j] is cut into blocks of MICRO_KC along the
# reduction and panels of NR = MICRO_BYTES / itemsize columns (16 float64, 32
# float32: two 512-bit vectors). Each block of B is first copied ("packed")
# into contiguous panels P[panel, q, c], so the micro-kernel reads one panel
# row after another and the whole panel (MICRO_KC x 128 bytes = 32 KiB) stays
# in L1 while every 8 rows of A pass over it. The micro-kernel keeps its
# 8 x NR block of C in 16 vector registers across the whole reduction: per q
# it loads one panel row (2 vectors), broadcasts 8 values of A and does 16
# FMAs; C is loaded and stored once per block, not once per q as in
# rows_update. Single-threaded against OpenBLAS on one thread (2-core
# AVX-512 development machine): the MNIST-like layer shapes at 1.0-1.2x
# BLAS's time in both dtypes, against 1.1-2.4x for version 2.

MICRO_ROWS = 8
MICRO_BYTES = 128
MICRO_KC = 256
# Used when C has at least MICRO_MIN_ROWS rows and the reduction is at least
# MICRO_MIN_K long. Packing a panel costs about as much as 2-3 row blocks'
# multiply-adds, so with fewer rows to reuse it the older forms are faster:
# the deep net's first layer (n = 20, k = 12288, m = 209) took the parallel
# step from 0.9-1.2x to 1.3x NumPy's time packed. MNIST's layers (64 and 128
# units) are packed.
MICRO_MIN_ROWS = 32
MICRO_MIN_K = 16
# (rows, columns) of the micro-kernels: 16 columns for float64, 32 for
# float32. The last n mod 8 rows of C go through the same kernel, from a
# zero-padded copy of their rows of A (one kernel per dtype keeps Numba's
# compile time down: each takes 3-8 s to compile).
MICRO_SHAPES = ((8, 16), (8, 32))
# Sums in order along q (no reassoc: nothing for the loop vectorizer to take
# over), a*b+c fused; compiled by SLPCompiler (kernels.wide).
MICRO_OPTIONS = dict(pipeline_class=SLPCompiler, error_model="numpy", fastmath={"contract"})


def micro_kernel_source(rows, cols):
    """Python source of micro_{rows}x{cols}(C, i0, c0, A, q0, P, kc, accumulate):
    C[i0:i0+rows, c0:c0+cols] (+)= A[i0:i0+rows, q0:q0+kc] P[0:kc, 0:cols].

    The rows x cols cells of C are named scalars (c{r}_{c}): written out, not
    an array, so that LLVM keeps them in registers across the q loop, and in
    straight lines that its SLP vectorizer packs into vectors (the cols
    scalars of one row of C become cols / lanes vector registers, the loads
    of one panel row become vector loads, A's value a broadcast). Generated,
    because 128 to 256 near-identical lines say less than this loop; the
    generated text is ``MICRO_SOURCES[name]``."""
    ind = "    "
    out = [f"def micro_{rows}x{cols}(C, i0, c0, A, q0, P, kc, accumulate):",
           ind + "prefer_wide_vectors()  # zmm on AVX-512 (kernels.wide)",
           ind + "zero = C.dtype.type(0.0)"]
    out += [ind + f"a{r} = A[i0 + {r}, q0:q0 + kc]" for r in range(rows)]
    out += [ind + "; ".join(f"c{r}_{c} = zero" for c in range(cols)) for r in range(rows)]
    out.append(ind + "for q in range(kc):  # range from 0: no wraparound checks")
    out.append(2 * ind + "p = P[q]")
    out.append(2 * ind + "; ".join(f"p{c} = p[{c}]" for c in range(cols)))
    for r in range(rows):
        out.append(2 * ind + f"u = a{r}[q]")
        out.append(2 * ind + "; ".join(f"c{r}_{c} += u * p{c}" for c in range(cols)))
    for op, flag in (("+=", "if accumulate:"), ("=", "else:")):
        out.append(ind + flag)
        for r in range(rows):
            out.append(2 * ind + f"o = C[i0 + {r}, c0:c0 + {cols}]")
            out.append(2 * ind + "; ".join(f"o[{c}] {op} c{r}_{c}" for c in range(cols)))
    return "\n".join(out) + "\n"


MICRO_SOURCES = {f"micro_{r}x{c}": micro_kernel_source(r, c) for r, c in MICRO_SHAPES}


def _define_micro_kernels():
    for name, source in MICRO_SOURCES.items():
        namespace = {"prefer_wide_vectors": prefer_wide_vectors}
        exec(compile(source, f"<kernels.loops {name}>", "exec"), namespace)
        globals()[name] = register_jitable(**MICRO_OPTIONS)(namespace[name])


_define_micro_kernels()


def micro_block(C, i0, c0, A, q0, P, kc, accumulate):
    """C[i0:i0+8, c0:c0+NR] (+)= A[i0:i0+8, q0:q0+kc] P[0:kc]: the dtype's
    micro-kernel (NR = P.shape[1]: 16 float64, 32 float32). Compiled, the
    choice is made at typing time, so only that kernel is compiled."""
    if P.shape[1] == 16:
        micro_8x16(C, i0, c0, A, q0, P, kc, accumulate)  # noqa: F821 (defined above)
    else:
        micro_8x32(C, i0, c0, A, q0, P, kc, accumulate)  # noqa: F821


@overload(micro_block, jit_options=HELPER_OPTIONS)
def _micro_block_compiled(C, i0, c0, A, q0, P, kc, accumulate):
    kernel = micro_8x16 if C.dtype.bitwidth == 64 else micro_8x32  # noqa: F821

    def impl(C, i0, c0, A, q0, P, kc, accumulate):
        kernel(C, i0, c0, A, q0, P, kc, accumulate)
    return impl


@register_jitable(**HELPER_OPTIONS)
def panel_rows(C, A, q0, P, kc, c0, accumulate, R, S):
    """C[:, c0:c0+NR] (+)= A[:, q0:q0+kc] P[0:kc] for one packed panel P
    (kc, NR), 8 rows of C at a time. The last n mod 8 rows: from R, their
    rows of A already copied there (zero-padded to 8 rows), into the scratch
    block S (8, NR), then into C."""
    n = C.shape[0]
    i = 0
    while i + MICRO_ROWS <= n:
        micro_block(C, i, c0, A, q0, P, kc, accumulate)
        i += MICRO_ROWS
    if i < n:
        micro_block(S, 0, 0, R, 0, P, kc, False)
        for r in range(n - i):
            c = C[i + r, c0:c0 + S.shape[1]]
            s = S[r]
            if accumulate:
                for j in range(s.shape[0]):
                    c[j] += s[j]
            else:
                for j in range(s.shape[0]):
                    c[j] = s[j]


@register_jitable(**HELPER_OPTIONS)
def pack_panels(P, B, q0, kc, j0, j1, transposed):
    """P[jr, q, c] = op(B)[q0 + q, j0 + jr NR + c], zero past column j1, where
    op(B) is B (its rows are read along c) or, transposed, B^T (its rows are
    read along q). Both read B a contiguous row at a time."""
    zero = P.dtype.type(0.0)
    nr = P.shape[2]
    if not transposed:
        for q in range(kc):
            row = B[q0 + q, j0:j1]
            for jr in range((j1 - j0 + nr - 1) // nr):
                dst = P[jr, q]
                if (jr + 1) * nr <= row.shape[0]:
                    src = row[jr * nr:(jr + 1) * nr]
                    for c in range(nr):
                        dst[c] = src[c]
                else:  # the last, partial panel
                    for c in range(nr):
                        dst[c] = row[jr * nr + c] if jr * nr + c < row.shape[0] else zero
    else:
        for j in range(j1 - j0):
            row = B[j0 + j, q0:q0 + kc]
            jr = j // nr
            c = j - jr * nr
            dst = P[jr]
            for q in range(kc):
                dst[q, c] = row[q]
        for j in range(j1 - j0, (j1 - j0 + nr - 1) // nr * nr):
            jr = j // nr
            c = j - jr * nr
            dst = P[jr]
            for q in range(kc):
                dst[q, c] = zero


@register_jitable(**HELPER_OPTIONS)
def packed_tile(C, A, B, transposed, j0, j1, zero_first):
    """C[:, j0:j1] += A op(B)[:, j0:j1] (C[:, j0:j1] zeroed first when
    ``zero_first``): op(B) = B (k, m), or B^T for B (m, k) when
    ``transposed``; A (n, k). C, A and B C-contiguous. The tile's packed
    panels and scratch blocks are its own (no races under prange)."""
    n, k = A.shape
    if zero_first:
        zero = C.dtype.type(0.0)
        for i in range(n):
            c = C[i, j0:j1]
            for j in range(c.shape[0]):
                c[j] = zero
    nr = MICRO_BYTES // C.itemsize
    npan = (j1 - j0 + nr - 1) // nr
    kb = min(MICRO_KC, k)
    P = np.empty((npan, kb, nr), dtype=C.dtype)
    S = np.empty((n, nr), dtype=C.dtype)  # the last, partial panel's columns
    R = np.zeros((MICRO_ROWS, kb), dtype=C.dtype)  # the last n mod 8 rows of A
    S8 = np.empty((MICRO_ROWS, nr), dtype=C.dtype)
    i_left = n - n % MICRO_ROWS
    for q0 in range(0, k, MICRO_KC):
        kc = min(MICRO_KC, k - q0)
        pack_panels(P, B, q0, kc, j0, j1, transposed)
        for r in range(n - i_left):
            src = A[i_left + r, q0:q0 + kc]
            dst = R[r]
            for q in range(kc):
                dst[q] = src[q]
        for jr in range(npan):
            c0 = j0 + jr * nr
            if c0 + nr <= j1:
                panel_rows(C, A, q0, P[jr], kc, c0, True, R, S8)
            else:  # partial panel: into S, then its valid columns into C
                panel_rows(S, A, q0, P[jr], kc, 0, False, R, S8)
                for i in range(n):
                    c = C[i, c0:j1]
                    s = S[i]
                    for j in range(c.shape[0]):
                        c[j] += s[j]


@register_jitable(**HELPER_OPTIONS)
def packed_width(m, nr):
    """Columns per tile of a packed product with m output columns: a multiple
    of nr, at most 256 unless that leaves fewer than 8 tiles, so the
    cores share the work."""
    nt = max((m + 255) // 256, min(8, (m + nr - 1) // nr))
    return ((m + nt - 1) // nt + nr - 1) // nr * nr


# --------------------------------------------------------------------------
# Forward propagation


@register_jitable(**HELPER_OPTIONS)
def _forward_tile(Z, A_prev, W, b, i, j0, j1):
    """Z[i, j0:j1] = b[i] + sum_p W[i, p] * A_prev[p, j0:j1]."""
    z = Z[i, j0:j1]
    w = W[i]
    bi = b[i, 0]
    for j in range(z.shape[0]):
        z[j] = bi
    for p in range(w.shape[0]):
        wp = w[p]
        a = A_prev[p, j0:j1]
        for j in range(z.shape[0]):  # contiguous in Z and A_prev: SIMD
            z[j] += wp * a[j]
    return z


@register_jitable(**HELPER_OPTIONS)
def _forward_block(Z, A, A_prev, W, b, act, i0, i1, j0, j1):
    """Version 2 tile: Z[i0:i1, j0:j1] = b + W A_prev (register-blocked), then
    A = g(Z) on the tile while it is in cache (act < 0: no activation).

    Long reductions (k >= DOT_FORM_K) take the dot-product form: the tile's
    columns of A_prev are packed transposed into a scratch panel T (j1-j0, k)
    so that both factors of every dot product are contiguous, then 4 x 4
    blocks of Z are dot4x4 products of rows of W and rows of T, the reduction
    KC at a time. Short ones take the rows_update form (no packing)."""
    k = W.shape[1]
    for i in range(i0, i1):
        z = Z[i, j0:j1]
        bi = b[i, 0]
        for j in range(z.shape[0]):
            z[j] = bi
    if k >= DOT_FORM_K:  # the plan's version 2
        T = np.empty((j1 - j0, min(KC, k)), dtype=Z.dtype)  # scratch panel
        for p0 in range(0, k, KC):
            p1 = min(p0 + KC, k)
            pack_transposed(T, A_prev, p0, p1, j0, j1)
            # Z[i, j0 + q] += W[i, p0:p1] . T[q, 0:p1-p0]
            dots_tile(Z, i0, j0, W, i0, i1, p0, T, 0, j1 - j0, 0, p1 - p0, True)
    else:
        product_tile(Z, W, A_prev, i0, i1, j0, j1)
    if act >= 0:
        for i in range(i0, i1):
            activate_row(A[i, j0:j1], Z[i, j0:j1], act)


@register_jitable(**HELPER_OPTIONS)
def pack_transposed(T, X, p0, p1, j0, j1):
    """T[j, p - p0] = X[p, j0 + j]: the block X[p0:p1, j0:j1] transposed into
    the scratch panel T, so that its columns become contiguous rows (the
    dot-product form needs both factors contiguous along the reduction)."""
    prefer_wide_vectors()  # zmm on AVX-512 (kernels.wide)
    nj = j1 - j0
    q = p0
    while q + 8 <= p1:  # 8 rows of X at a time: 8 sequential reads, 8 adjacent writes
        x0 = X[q, j0:j1]
        x1 = X[q + 1, j0:j1]
        x2 = X[q + 2, j0:j1]
        x3 = X[q + 3, j0:j1]
        x4 = X[q + 4, j0:j1]
        x5 = X[q + 5, j0:j1]
        x6 = X[q + 6, j0:j1]
        x7 = X[q + 7, j0:j1]
        c = q - p0
        for j in range(nj):
            t = T[j, c:c + 8]
            t[0] = x0[j]; t[1] = x1[j]; t[2] = x2[j]; t[3] = x3[j]
            t[4] = x4[j]; t[5] = x5[j]; t[6] = x6[j]; t[7] = x7[j]
        q += 8
    while q < p1:
        x0 = X[q, j0:j1]
        c = q - p0
        for j in range(nj):
            T[j, c] = x0[j]
        q += 1


@register_jitable(**HELPER_OPTIONS)
def _forward_v1_tile(Z, A, A_prev, W, b, act, t, n, m):
    """Version 1 tile t: unit i, examples j0:j1 (the simple loops)."""
    jb = t // n
    i = t - jb * n
    j0 = jb * BLOCK
    j1 = min(j0 + BLOCK, m)
    z = _forward_tile(Z, A_prev, W, b, i, j0, j1)
    if act >= 0:
        activate_row(A[i, j0:j1], z, act)


@register_jitable(**HELPER_OPTIONS)
def forward_plan(n, k, m, nr):
    """How linear_forward splits Z (n, m) = W (n, k) A_prev (k, m) + b:
    (version, tiles, width, groups, rows). Version 1 (the simple loops) for
    tiny products; version 4 (packed, tiles of all n rows by ``width``
    columns, ``nr`` the panel width) when n >= MICRO_MIN_ROWS and k >=
    MICRO_MIN_K; else version 2 in the dot-product form when the reduction is at
    least DOT_FORM_K long (tiles of all n rows by ``width`` columns, a multiple
    of 4, at least 8 tiles when m allows, so the cores share the work and each
    column of A_prev is packed once); else version 2 in the rows_update form
    (tiles of JB columns by ``rows`` rows, ``groups`` row groups)."""
    if n * k * m < BLOCKED_WORK:
        return 1, ((m + BLOCK - 1) // BLOCK) * n, BLOCK, n, 1
    if n >= MICRO_MIN_ROWS and k >= MICRO_MIN_K:
        width = packed_width(m, nr)
        return 4, (m + width - 1) // width, width, 1, n
    if k >= DOT_FORM_K:
        nt = max((m + JB - 1) // JB, min(8, (m + 15) // 16))
        width = ((m + nt - 1) // nt + 3) // 4 * 4
        return 2, (m + width - 1) // width, width, 1, n
    njb, ngroups, rows = product_tiles(n, m)
    return 3, njb * ngroups, JB, ngroups, rows


@register_jitable(**HELPER_OPTIONS)
def _forward_packed_tile(Z, A, A_prev, W, b, act, j0, j1):
    """Version 4 tile: Z[:, j0:j1] = b + W A_prev[:, j0:j1] (packed), then
    A = g(Z) on the tile while it is in cache (act < 0: no activation)."""
    for i in range(W.shape[0]):
        z = Z[i, j0:j1]
        bi = b[i, 0]
        for j in range(z.shape[0]):
            z[j] = bi
    packed_tile(Z, W, A_prev, False, j0, j1, False)
    if act >= 0:
        for i in range(W.shape[0]):
            activate_row(A[i, j0:j1], Z[i, j0:j1], act)


@register_jitable(**HELPER_OPTIONS)
def forward_tile(Z, A, A_prev, W, b, act, t, version, width, groups, rows):
    """Tile t of the plan: its cells of Z = W A_prev + b, then A = g(Z) on
    them while they are in cache (act < 0: Z only). Tile t owns its cells."""
    n = W.shape[0]
    m = A_prev.shape[1]
    if version == 1:
        _forward_v1_tile(Z, A, A_prev, W, b, act, t, n, m)
        return
    if version == 4:
        _forward_packed_tile(Z, A, A_prev, W, b, act, t * width, min(t * width + width, m))
        return
    jb = t // groups
    g = t - jb * groups
    _forward_block(Z, A, A_prev, W, b, act, g * rows, min(g * rows + rows, n),
                   jb * width, min(jb * width + width, m))


def linear_forward(Z, A_prev, W, b):
    """Z = W A_prev + b, split in tiles (forward_plan); each tile owns its
    cells of Z. Serial below PARALLEL_WORK multiply-adds (threads would cost
    more than they save), else parallel over tiles.

    Z (n, m) out; A_prev (k, m); W (n, k); b (n, 1).
    """
    n, k = W.shape
    m = A_prev.shape[1]
    version, tiles, width, groups, rows = forward_plan(n, k, m, MICRO_BYTES // W.itemsize)
    if n * k * m < PARALLEL_WORK:
        for t in range(tiles):
            forward_tile(Z, Z, A_prev, W, b, -1, t, version, width, groups, rows)
    else:
        for t in prange(tiles):
            forward_tile(Z, Z, A_prev, W, b, -1, t, version, width, groups, rows)


def linear_activation_forward(Z, A, A_prev, W, b, act):
    """Z = W A_prev + b and A = g(Z) in one pass: each tile of Z is activated
    while it is still in cache. Tiles as in linear_forward.

    Z, A (n, m) out; A_prev (k, m); W (n, k); b (n, 1); act an activation code.
    """
    n, k = W.shape
    m = A_prev.shape[1]
    version, tiles, width, groups, rows = forward_plan(n, k, m, MICRO_BYTES // W.itemsize)
    if n * k * m < PARALLEL_WORK:
        for t in range(tiles):
            forward_tile(Z, A, A_prev, W, b, act, t, version, width, groups, rows)
    else:
        for t in prange(tiles):
            forward_tile(Z, A, A_prev, W, b, act, t, version, width, groups, rows)


def activation_forward(A, Z, act):
    """A = g(Z) elementwise. A, Z (n, m), A out."""
    a = flat(A)  # C-contiguous: a flat view, blocks of BLOCK cells
    z = flat(Z)
    if z.shape[0] < PARALLEL_ELEMENTS:  # too small for threads to pay
        activate_row(a, z, act)
        return
    nblocks = (z.shape[0] + BLOCK - 1) // BLOCK
    for t in prange(nblocks):
        j0 = t * BLOCK
        j1 = min(j0 + BLOCK, z.shape[0])
        activate_row(a[j0:j1], z[j0:j1], act)


# --------------------------------------------------------------------------
# Backward propagation


def activation_backward(dZ, dA, Z, act):
    """dZ = dA * g'(Z) elementwise. dZ, dA, Z (n, m), dZ out."""
    dz = flat(dZ)
    da = flat(dA)
    z = flat(Z)
    if z.shape[0] < PARALLEL_ELEMENTS:
        backprop_row(dz, da, z, act)
        return
    nblocks = (z.shape[0] + BLOCK - 1) // BLOCK
    for t in prange(nblocks):
        j0 = t * BLOCK
        j1 = min(j0 + BLOCK, z.shape[0])
        backprop_row(dz[j0:j1], da[j0:j1], z[j0:j1], act)


@register_jitable(**HELPER_OPTIONS)
def _weight_gradients_v1_row(dW, db, dZ, A_prev, i, inv_m):
    """Version 1: row i of dW and db[i], one dot product at a time."""
    m = dZ.shape[1]
    zero = dW.dtype.type(0.0)
    dz = dZ[i]
    s = zero
    for j in range(m):  # reduction: vectorizes because fastmath allows reassociation
        s += dz[j]
    db[i, 0] = s * inv_m
    for p in range(A_prev.shape[0]):
        a = A_prev[p]
        acc = zero
        for j in range(m):
            acc += dz[j] * a[j]
        dW[i, p] = acc * inv_m


@register_jitable(**HELPER_OPTIONS)
def _weight_gradients_block(dW, dZ, A_prev, p0, p1, inv_m):
    """Version 2: columns p0:p1 of dW, 4 x 4 dot products at a time, the
    examples JR_BYTES of a row at a time (so 4 rows of dZ stay in L1 while
    the rows of A_prev pass by), then scaled by 1/m."""
    n, m = dZ.shape
    jr = JR_BYTES // dW.itemsize
    for j0 in range(0, m, jr):
        # dW[i, p] (+)= dZ[i, j0:j1] . A_prev[p, j0:j1]
        dots_tile(dW, 0, p0, dZ, 0, n, j0, A_prev, p0, p1, j0, min(jr, m - j0), j0 > 0)
    for i in range(dW.shape[0]):
        row = dW[i, p0:p1]
        for p in range(row.shape[0]):
            row[p] *= inv_m


def weight_gradients(dW, db, dZ, A_prev):
    """dW = (1/m) dZ A_prev^T and db = (1/m) sum_j dZ.

    Tiny shapes: version 1, parallel over output units (iteration i owns row
    dW[i] and db[i]). Otherwise version 2: parallel over blocks of columns of
    dW (iteration t owns dW[:, p0:p1]; columns, because the output layers have
    a single unit), then db parallel over units.

    dW (n, k) out; db (n, 1) out; dZ (n, m); A_prev (k, m).
    """
    n, m = dZ.shape
    k = A_prev.shape[0]
    inv_m = dW.dtype.type(1.0) / dW.dtype.type(m)
    work = n * k * m
    if work < BLOCKED_WORK:
        for i in range(n):
            _weight_gradients_v1_row(dW, db, dZ, A_prev, i, inv_m)
        return
    if n >= MICRO_MIN_ROWS and m >= MICRO_MIN_K:  # version 4: packed, tiles of columns of dW
        width = packed_width(k, MICRO_BYTES // dW.itemsize)
        if work < PARALLEL_WORK:
            for t in range((k + width - 1) // width):
                _weight_gradients_packed_tile(dW, dZ, A_prev, t * width, min(t * width + width, k), inv_m)
        else:
            for t in prange((k + width - 1) // width):
                _weight_gradients_packed_tile(dW, dZ, A_prev, t * width, min(t * width + width, k), inv_m)
        _bias_gradient(db, dZ, inv_m)
        return
    # column blocks: whole groups of 4 columns, at most 16 groups a block, the
    # number of blocks a multiple of 8 (when k allows) and the groups spread
    # evenly over them, so that 2, 4 or 8 threads get equal work
    groups = (k + 3) // 4
    nb = (groups + 15) // 16
    nb = min((nb + 7) // 8 * 8, groups)
    if work < PARALLEL_WORK:
        for t in range(nb):
            _weight_gradients_block(dW, dZ, A_prev, min(4 * (t * groups // nb), k),
                                    min(4 * ((t + 1) * groups // nb), k), inv_m)
    else:
        for t in prange(nb):
            _weight_gradients_block(dW, dZ, A_prev, min(4 * (t * groups // nb), k),
                                    min(4 * ((t + 1) * groups // nb), k), inv_m)
    _bias_gradient(db, dZ, inv_m)


@register_jitable(**HELPER_OPTIONS)
def _bias_gradient(db, dZ, inv_m):
    """db = (1/m) sum_j dZ[:, j]."""
    zero = db.dtype.type(0.0)
    for i in range(dZ.shape[0]):
        dz = dZ[i]
        s = zero
        for j in range(dz.shape[0]):  # reduction: vectorizes because fastmath allows reassociation
            s += dz[j]
        db[i, 0] = s * inv_m


@register_jitable(**HELPER_OPTIONS)
def _weight_gradients_packed_tile(dW, dZ, A_prev, p0, p1, inv_m):
    """Version 4 tile: dW[:, p0:p1] = (1/m) dZ A_prev[p0:p1]^T (packed: A_prev's
    rows p0:p1 are packed transposed)."""
    packed_tile(dW, dZ, A_prev, True, p0, p1, True)
    for i in range(dW.shape[0]):
        row = dW[i, p0:p1]
        for p in range(row.shape[0]):
            row[p] *= inv_m


def input_gradient(dA_prev, dZ, W):
    """dA_prev = W^T dZ, tiled over (examples, input units); every tile owns
    its cells of dA_prev. Version 1 (simple loops) for tiny products, else
    version 2 (register-blocked rows_update with X = W^T); serial below
    PARALLEL_WORK multiply-adds.

    dA_prev (k, m) out; dZ (n, m); W (n, k).
    """
    n, k = W.shape
    m = dZ.shape[1]
    work = n * k * m
    if work < BLOCKED_WORK:
        nblocks = (m + BLOCK - 1) // BLOCK
        for t in range(nblocks * k):
            _input_gradient_v1_tile(dA_prev, dZ, W, t)
        return
    if k >= MICRO_MIN_ROWS and n >= MICRO_MIN_K:  # version 4: packed, tiles of examples
        WT = np.ascontiguousarray(W.T)  # k x n: rows of the micro-kernels' A
        width = packed_width(m, MICRO_BYTES // dA_prev.itemsize)
        if work < PARALLEL_WORK:
            for t in range((m + width - 1) // width):
                _input_gradient_packed_tile(dA_prev, dZ, WT, t * width, min(t * width + width, m))
        else:
            for t in prange((m + width - 1) // width):
                _input_gradient_packed_tile(dA_prev, dZ, WT, t * width, min(t * width + width, m))
        return
    WT = W.T
    njb, ngroups, rows = product_tiles(k, m)
    if work < PARALLEL_WORK:
        for t in range(njb * ngroups):
            _input_gradient_block(dA_prev, dZ, WT, t, ngroups, rows)
        return
    for t in prange(njb * ngroups):
        _input_gradient_block(dA_prev, dZ, WT, t, ngroups, rows)


@register_jitable(**HELPER_OPTIONS)
def _input_gradient_packed_tile(dA_prev, dZ, WT, j0, j1):
    """Version 4 tile: dA_prev[:, j0:j1] = W^T dZ[:, j0:j1] (packed)."""
    packed_tile(dA_prev, WT, dZ, False, j0, j1, True)


@register_jitable(**HELPER_OPTIONS)
def _input_gradient_block(dA_prev, dZ, WT, t, ngroups, rows):
    """Version 2 tile t: dA_prev[p0:p1, j0:j1] = W^T[p0:p1, :] dZ[:, j0:j1]."""
    k, m = dA_prev.shape
    jb = t // ngroups
    g = t - jb * ngroups
    p0 = g * rows
    p1 = min(p0 + rows, k)
    j0 = jb * JB
    j1 = min(j0 + JB, m)
    zero = dA_prev.dtype.type(0.0)
    for p in range(p0, p1):
        da = dA_prev[p, j0:j1]
        for j in range(da.shape[0]):
            da[j] = zero
    product_tile(dA_prev, WT, dZ, p0, p1, j0, j1)


@register_jitable(**HELPER_OPTIONS)
def _input_gradient_v1_tile(dA_prev, dZ, W, t):
    """Version 1 tile t: dA_prev[p, j0:j1] = sum_i W[i, p] dZ[i, j0:j1]."""
    n, k = W.shape
    m = dZ.shape[1]
    jb = t // k
    p = t - jb * k
    j0 = jb * BLOCK
    j1 = min(j0 + BLOCK, m)
    zero = dA_prev.dtype.type(0.0)
    da = dA_prev[p, j0:j1]
    for j in range(da.shape[0]):
        da[j] = zero
    for i in range(n):
        w = W[i, p]
        dz = dZ[i, j0:j1]
        for j in range(da.shape[0]):
            da[j] += w * dz[j]


def linear_backward(dA_prev, dW, db, dZ, A_prev, W):
    """dW, db and dA_prev from dZ: two separate parallel loops, each race-free.

    dA_prev (k, m), dW (n, k), db (n, 1) out; dZ (n, m); A_prev (k, m); W (n, k).
    """
    weight_gradients(dW, db, dZ, A_prev)
    input_gradient(dA_prev, dZ, W)


def linear_activation_backward(dA_prev, dW, db, dZ, dA, Z, A_prev, W, act):
    """dZ = dA * g'(Z), then linear_backward. dZ (n, m) is written too (it is
    the layer's dZ, and the working memory the fused op needs).
    """
    activation_backward(dZ, dA, Z, act)
    weight_gradients(dW, db, dZ, A_prev)
    input_gradient(dA_prev, dZ, W)


# --------------------------------------------------------------------------
# Cost, its gradient, the update, and the dot product


def cross_entropy(AL, Y, eps, exact=False):
    """J = -(1/m) sum_j [y log a + (1 - y) log(1 - a)], a clipped to [eps, 1 - eps].

    log is ``kernels.approx.log_approx`` (within 1 ulp, vectorizable), or the C
    math library's with ``exact=True``.

    AL, Y (1, m). Returns a float64: the sum is accumulated in float64 on
    purpose (deliberate promotion, also for float32 inputs: the cost is a
    single number that training curves compare across backends). ``eps`` is
    the dtype's machine epsilon, so log never sees 0.
    """
    a_row = AL[0]
    y_row = Y[0]
    m = a_row.shape[0]
    lo = a_row.dtype.type(eps)
    one = a_row.dtype.type(1.0)
    hi = one - lo
    if m < PARALLEL_ELEMENTS:  # too small for threads to pay
        return -_cost_block(a_row, y_row, 0, m, lo, hi, exact) / m
    total = 0.0
    nblocks = (m + BLOCK - 1) // BLOCK
    for t in prange(nblocks):  # scalar reduction: numba gives each thread its own partial sum
        total += _cost_block(a_row, y_row, t * BLOCK, min(t * BLOCK + BLOCK, m), lo, hi, exact)
    return -total / m


@register_jitable(**HELPER_OPTIONS)
def _cost_block(a_row, y_row, j0, j1, lo, hi, exact):
    """sum_j [y log a + (1 - y) log(1 - a)] over examples j0:j1, in float64."""
    a_b = a_row[j0:j1]
    y_b = y_row[j0:j1]
    one = a_b.dtype.type(1.0)
    total = 0.0
    if exact:
        for j in range(a_b.shape[0]):
            a = a_b[j]
            a = lo if a < lo else (hi if a > hi else a)
            y = y_b[j]
            total += float(y * math.log(a) + (one - y) * math.log(one - a))
    else:
        for j in range(a_b.shape[0]):  # log_approx: vectorizable
            a = a_b[j]
            a = lo if a < lo else (hi if a > hi else a)
            y = y_b[j]
            total += float(y * log_approx(a) + (one - y) * log_approx(one - a))
    return total


def cross_entropy_backward(dAL, AL, Y, eps):
    """dAL = -(y / a - (1 - y) / (1 - a)), a clipped to [eps, 1 - eps] so no
    division by zero. dAL, AL, Y (1, m); dAL out.
    """
    d = dAL[0]
    a_row = AL[0]
    y_row = Y[0]
    lo = a_row.dtype.type(eps)
    one = a_row.dtype.type(1.0)
    hi = one - lo
    if a_row.shape[0] < PARALLEL_ELEMENTS:
        for j in range(a_row.shape[0]):
            a = a_row[j]
            a = lo if a < lo else (hi if a > hi else a)
            y = y_row[j]
            d[j] = (one - y) / (one - a) - y / a
        return
    for j in prange(a_row.shape[0]):
        a = a_row[j]
        a = lo if a < lo else (hi if a > hi else a)
        y = y_row[j]
        d[j] = (one - y) / (one - a) - y / a


def gradient_step(out, param, grad, learning_rate):
    """out = param - learning_rate * grad, elementwise (out may be param).
    out, param, grad of one shape."""
    o = flat(out)
    p = flat(param)
    g = flat(grad)
    lr = o.dtype.type(learning_rate)  # keep a float32 update in float32
    if o.shape[0] < PARALLEL_ELEMENTS:
        for j in range(o.shape[0]):
            o[j] = p[j] - lr * g[j]
        return
    nblocks = (o.shape[0] + BLOCK - 1) // BLOCK
    for t in prange(nblocks):
        j0 = t * BLOCK
        j1 = min(j0 + BLOCK, o.shape[0])
        ob = o[j0:j1]
        pb = p[j0:j1]
        gb = g[j0:j1]
        for j in range(ob.shape[0]):
            ob[j] = pb[j] - lr * gb[j]


def dot(a, b):
    """s = sum_i a[i] b[i] for 1-D a, b of one length; returns the dtype's scalar.

    The accumulator has the inputs' dtype (as BLAS's sdot/ddot). Under prange
    each thread sums its own share.
    """
    s = a.dtype.type(0.0)
    if a.shape[0] < PARALLEL_ELEMENTS:
        for i in range(a.shape[0]):
            s += a[i] * b[i]
        return s
    for i in prange(a.shape[0]):
        s += a[i] * b[i]
    return s
