"""The first layer's step and the next forward pass, in one pass over X.

Full-batch gradient descent reads X twice an iteration in the first layer:
dW = (1/m) dZ X^T in backward, Z = W X + b in the next forward pass. Where X
is long and the layer thin (the deep network: 20 units over 12288 inputs),
both products are bound by reading X. Row k of X is all that column k of
dW, column k of the stepped W and its share W_next[:, k] X[k] of the next Z
need, so one pass does all three while the row is in cache:

    for k in range(n_x):                        # rows of X
        dW[:, k] = (1/m) dZ X[k]^T              # n dot products over m
        W_next[:, k] = W[:, k] - lr dW[:, k]    # the step
        Z += W_next[:, k] X[k]                  # the next forward, accumulated

Four rows of X by four units at a time (16 dot products, then 16
multipliers of the accumulation, in registers); the units that leaves
(every unit of a one-unit layer, logistic regression's) four rows of X at a
time. The rows are cut into one part a thread of the pool
(``POOL_THREADS``); part p owns its columns of W_next and its partial sum
of Z (``_first_layer_part``), added with the stepped bias at the end
(``_first_layer_end``): both are tiles (kernels.loops.TILE_KERNELS),
compiled once, serially, and called through their addresses by both
variants, so the kernel itself compiles little. model.training's fit_chunk
uses it where ``plans.first_layer_fused`` says so (a hidden first layer, or
a one-layer network's only layer), and calls it through its address too
(model.program).

Shapes (the course's notation, the first layer): Z, A, dZ (n, m); X (n_x, m);
W, W_next (n, n_x); b, b_next (n, 1).
"""

import numpy as np
from numba import prange
from numba.extending import register_jitable

from ..options import HELPER_OPTIONS, PARALLEL_WORK, POOL_THREADS
from .backward import _bias_gradient
from .forward import _activate_tile

THREADED = True  # prange on threads (see forward.py)


@register_jitable(**HELPER_OPTIONS)
def _block(P, W_next, W, dZ, X, k, i, inv_m, lr):
    """Rows k..k+3 of X, units i..i+3: W_next[i:i+4, k:k+4] and P[i:i+4] += W_next[i:i+4, k:k+4] X[k:k+4]."""
    m = dZ.shape[1]
    x0, x1, x2, x3 = X[k], X[k + 1], X[k + 2], X[k + 3]
    d0, d1, d2, d3 = dZ[i], dZ[i + 1], dZ[i + 2], dZ[i + 3]
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = dZ.dtype.type(0.0)
    s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = dZ.dtype.type(0.0)
    for j in range(m):  # 16 reductions; fastmath lets them vectorize along j
        a0, a1, a2, a3 = x0[j], x1[j], x2[j], x3[j]
        e = d0[j]
        s00 += e * a0
        s01 += e * a1
        s02 += e * a2
        s03 += e * a3
        e = d1[j]
        s10 += e * a0
        s11 += e * a1
        s12 += e * a2
        s13 += e * a3
        e = d2[j]
        s20 += e * a0
        s21 += e * a1
        s22 += e * a2
        s23 += e * a3
        e = d3[j]
        s30 += e * a0
        s31 += e * a1
        s32 += e * a2
        s33 += e * a3
    w00, w01, w02, w03 = _step4(W_next[i], W[i], k, s00, s01, s02, s03, inv_m, lr)
    w10, w11, w12, w13 = _step4(W_next[i + 1], W[i + 1], k, s10, s11, s12, s13, inv_m, lr)
    w20, w21, w22, w23 = _step4(W_next[i + 2], W[i + 2], k, s20, s21, s22, s23, inv_m, lr)
    w30, w31, w32, w33 = _step4(W_next[i + 3], W[i + 3], k, s30, s31, s32, s33, inv_m, lr)
    p0, p1, p2, p3 = P[i], P[i + 1], P[i + 2], P[i + 3]
    for j in range(m):
        a0, a1, a2, a3 = x0[j], x1[j], x2[j], x3[j]
        p0[j] += (w00 * a0 + w01 * a1) + (w02 * a2 + w03 * a3)
        p1[j] += (w10 * a0 + w11 * a1) + (w12 * a2 + w13 * a3)
        p2[j] += (w20 * a0 + w21 * a1) + (w22 * a2 + w23 * a3)
        p3[j] += (w30 * a0 + w31 * a1) + (w32 * a2 + w33 * a3)


@register_jitable(**HELPER_OPTIONS)
def _step4(w_next, w, k, s0, s1, s2, s3, inv_m, lr):
    """w_next[k:k+4] = w[k:k+4] - lr (1/m) s: gradient_step's formula; returns the four."""
    v0 = w[k] - lr * (s0 * inv_m)
    v1 = w[k + 1] - lr * (s1 * inv_m)
    v2 = w[k + 2] - lr * (s2 * inv_m)
    v3 = w[k + 3] - lr * (s3 * inv_m)
    w_next[k], w_next[k + 1], w_next[k + 2], w_next[k + 3] = v0, v1, v2, v3
    return v0, v1, v2, v3


@register_jitable(**HELPER_OPTIONS)
def _four_rows(P, W_next, W, dZ, X, k, i, inv_m, lr):
    """Rows k..k+3 of X, unit i (the units a block of four leaves: every unit
    of a one-unit layer): four dot products sharing each load of dZ[i], the
    step, then one pass of P[i] for the four rows' multiply-adds."""
    m = dZ.shape[1]
    x0, x1, x2, x3 = X[k], X[k + 1], X[k + 2], X[k + 3]
    d = dZ[i]
    s0 = s1 = s2 = s3 = dZ.dtype.type(0.0)
    for j in range(m):
        e = d[j]
        s0 += e * x0[j]
        s1 += e * x1[j]
        s2 += e * x2[j]
        s3 += e * x3[j]
    w0, w1, w2, w3 = _step4(W_next[i], W[i], k, s0, s1, s2, s3, inv_m, lr)
    p = P[i]
    for j in range(m):
        p[j] += (w0 * x0[j] + w1 * x1[j]) + (w2 * x2[j] + w3 * x3[j])


@register_jitable(**HELPER_OPTIONS)
def _single(P, W_next, W, dZ, X, k, i, inv_m, lr):
    """Row k of X, unit i (the rows and units a block of four leaves)."""
    x = X[k]
    d = dZ[i]
    s = dZ.dtype.type(0.0)
    for j in range(x.shape[0]):
        s += d[j] * x[j]
    w = W[i, k] - lr * (s * inv_m)
    W_next[i, k] = w
    p = P[i]
    for j in range(x.shape[0]):
        p[j] += w * x[j]


@register_jitable(**HELPER_OPTIONS)
def _first_layer_part(P, W_next, W, dZ, X, k0, k1, inv_m, lr):
    """Rows k0:k1 of X into the partial sum P (n, m), zeroed first, and
    columns k0:k1 of W_next. A tile (kernels.loops.TILE_KERNELS): compiled
    once, serially, and called through its address by both variants."""
    n = dZ.shape[0]
    zero = P.dtype.type(0.0)
    for i in range(n):
        p = P[i]
        for j in range(p.shape[0]):
            p[j] = zero
    n4 = n // 4 * 4
    k = k0
    while k + 4 <= k1:
        for i in range(0, n4, 4):
            _block(P, W_next, W, dZ, X, k, i, inv_m, lr)
        for i in range(n4, n):
            _four_rows(P, W_next, W, dZ, X, k, i, inv_m, lr)
        k += 4
    for kk in range(k, k1):
        for i in range(n):
            _single(P, W_next, W, dZ, X, kk, i, inv_m, lr)


@register_jitable(**HELPER_OPTIONS)
def _first_layer_end(Z, A, P, b_next, b, dZ, inv_m, lr, act):
    """b_next = b - lr (1/m) sum_j dZ; Z (part 0's sum) += the other parts' P
    and b_next; A = g(Z). A tile, like _first_layer_part."""
    n, m = Z.shape
    _bias_gradient(b_next, dZ, inv_m)  # db, stepped in place below
    for i in range(n):
        z = Z[i]
        bi = b[i, 0] - lr * b_next[i, 0]
        b_next[i, 0] = bi
        for q in range(P.shape[0]):
            part = P[q, i]
            for j in range(m):
                z[j] += part[j]
        for j in range(m):
            z[j] += bi
    _activate_tile(Z, A, act, 0, n, 0, m)


def first_layer_step(Z, A, W_next, b_next, W, b, dZ, X, learning_rate, act):
    """The first layer between two iterations of full-batch gradient descent,
    reading X once (see the module's docstring): W_next = W - lr dW and
    b_next = b - lr db, where dW = (1/m) dZ X^T and db = (1/m) sum_j dZ, then
    the next forward pass's first layer, Z = W_next X + b_next and A = g(Z)
    (act an activation code). dW itself is never stored.

    Z, A (n, m) out; W_next (n, n_x) out; b_next (n, 1) out; W (n, n_x);
    b (n, 1); dZ (n, m) (the iteration's dZ of the first layer); X (n_x, m).
    """
    n, m = dZ.shape
    n_x = X.shape[0]
    inv_m = Z.dtype.type(1.0) / Z.dtype.type(m)
    lr = Z.dtype.type(learning_rate)  # keep a float32 update in float32
    parts = POOL_THREADS if THREADED and n * n_x * m >= PARALLEL_WORK else 1
    parts = max(1, min(parts, n_x // 4))
    # part 0 accumulates into Z, the others into their own partial sums
    P = np.empty((parts - 1, n, m), dtype=Z.dtype)
    for p in prange(parts):
        k0 = n_x * p // parts // 4 * 4  # parts of whole blocks of 4 rows but the last
        k1 = n_x if p == parts - 1 else n_x * (p + 1) // parts // 4 * 4
        _first_layer_part(Z if p == 0 else P[p - 1], W_next, W, dZ, X, k0, k1, inv_m, lr)
    _first_layer_end(Z, A, P, b_next, b, dZ, inv_m, lr, act)
