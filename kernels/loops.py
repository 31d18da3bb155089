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
  parallel over (example block, unit) tiles, dW/db over output units, dA_prev
  over (example block, input unit) tiles;
- constants are made in the arrays' own dtype (``X.dtype.type(...)``) so a
  float32 loop is never promoted to float64 by a float64 literal.
"""

import math

from numba import prange
from numba.extending import register_jitable

from .approx import log_approx, sigmoid_approx, tanh_approx

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

# Options of the scalar/row helpers below when a compiled kernel calls them
# (they are compiled on their own, not with the caller's flags): numpy's error
# model so a division carries no zero check (which would block SIMD), and the
# same fastmath flags as ``kernels.cpu.FASTMATH``. Interpreted, they are plain
# Python functions.
HELPER_OPTIONS = dict(error_model="numpy", fastmath={"reassoc", "contract"})


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


def linear_forward(Z, A_prev, W, b):
    """Z = W A_prev + b, one tile (unit i, examples j0:j1) per iteration.

    Z (n, m) out; A_prev (k, m); W (n, k); b (n, 1).
    """
    n = W.shape[0]
    m = A_prev.shape[1]
    nblocks = (m + BLOCK - 1) // BLOCK
    # Tile t owns Z[i, j0:j1]: no two iterations write the same cell. Units
    # vary fastest, so one thread's consecutive tiles reuse the same A_prev block.
    for t in prange(nblocks * n):
        jb = t // n
        i = t - jb * n
        j0 = jb * BLOCK
        j1 = min(j0 + BLOCK, m)
        _forward_tile(Z, A_prev, W, b, i, j0, j1)


def linear_activation_forward(Z, A, A_prev, W, b, act):
    """Z = W A_prev + b and A = g(Z) in one pass: each tile of Z is activated
    while it is still in cache.

    Z, A (n, m) out; A_prev (k, m); W (n, k); b (n, 1); act an activation code.
    """
    n = W.shape[0]
    m = A_prev.shape[1]
    nblocks = (m + BLOCK - 1) // BLOCK
    for t in prange(nblocks * n):
        jb = t // n
        i = t - jb * n
        j0 = jb * BLOCK
        j1 = min(j0 + BLOCK, m)
        z = _forward_tile(Z, A_prev, W, b, i, j0, j1)
        activate_row(A[i, j0:j1], z, act)


def activation_forward(A, Z, act):
    """A = g(Z) elementwise. A, Z (n, m), A out."""
    a = A.reshape(A.size)  # C-contiguous: a flat view, blocks of BLOCK cells
    z = Z.reshape(Z.size)
    nblocks = (z.shape[0] + BLOCK - 1) // BLOCK
    for t in prange(nblocks):
        j0 = t * BLOCK
        j1 = min(j0 + BLOCK, z.shape[0])
        activate_row(a[j0:j1], z[j0:j1], act)


# --------------------------------------------------------------------------
# Backward propagation


def activation_backward(dZ, dA, Z, act):
    """dZ = dA * g'(Z) elementwise. dZ, dA, Z (n, m), dZ out."""
    dz = dZ.reshape(dZ.size)
    da = dA.reshape(dA.size)
    z = Z.reshape(Z.size)
    nblocks = (z.shape[0] + BLOCK - 1) // BLOCK
    for t in prange(nblocks):
        j0 = t * BLOCK
        j1 = min(j0 + BLOCK, z.shape[0])
        backprop_row(dz[j0:j1], da[j0:j1], z[j0:j1], act)


def weight_gradients(dW, db, dZ, A_prev):
    """dW = (1/m) dZ A_prev^T and db = (1/m) sum_j dZ, parallel over output
    units: iteration i owns row dW[i] and db[i].

    dW (n, k) out; db (n, 1) out; dZ (n, m); A_prev (k, m).
    """
    n, m = dZ.shape
    k = A_prev.shape[0]
    inv_m = dW.dtype.type(1.0) / dW.dtype.type(m)
    zero = dW.dtype.type(0.0)
    for i in prange(n):
        dz = dZ[i]
        s = zero
        for j in range(m):  # reduction: vectorizes because fastmath allows reassociation
            s += dz[j]
        db[i, 0] = s * inv_m
        for p in range(k):
            a = A_prev[p]
            acc = zero
            for j in range(m):
                acc += dz[j] * a[j]
            dW[i, p] = acc * inv_m


def input_gradient(dA_prev, dZ, W):
    """dA_prev = W^T dZ, parallel over (example block, input unit) tiles:
    iteration t owns dA_prev[p, j0:j1].

    dA_prev (k, m) out; dZ (n, m); W (n, k).
    """
    n, k = W.shape
    m = dZ.shape[1]
    nblocks = (m + BLOCK - 1) // BLOCK
    zero = dA_prev.dtype.type(0.0)
    for t in prange(nblocks * k):
        jb = t // k
        p = t - jb * k
        j0 = jb * BLOCK
        j1 = min(j0 + BLOCK, m)
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
    total = 0.0
    if exact:
        for j in prange(m):  # scalar reduction: numba gives each thread its own partial sum
            a = a_row[j]
            a = lo if a < lo else (hi if a > hi else a)
            y = y_row[j]
            total += float(y * math.log(a) + (one - y) * math.log(one - a))
    else:
        for j in prange(m):
            a = a_row[j]
            a = lo if a < lo else (hi if a > hi else a)
            y = y_row[j]
            total += float(y * log_approx(a) + (one - y) * log_approx(one - a))
    return -total / m


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
    for j in prange(a_row.shape[0]):
        a = a_row[j]
        a = lo if a < lo else (hi if a > hi else a)
        y = y_row[j]
        d[j] = (one - y) / (one - a) - y / a


def gradient_step(out, param, grad, learning_rate):
    """out = param - learning_rate * grad, elementwise (out may be param).
    out, param, grad of one shape."""
    o = out.reshape(out.size)
    p = param.reshape(param.size)
    g = grad.reshape(grad.size)
    lr = o.dtype.type(learning_rate)  # keep a float32 update in float32
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
    for i in prange(a.shape[0]):
        s += a[i] * b[i]
    return s
