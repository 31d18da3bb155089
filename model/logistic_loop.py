"""Logistic regression's training loop: the course's per-example loop.

``logistic_pass`` is the course's loop over the examples (z, a, the cost,
dz, dw, db example by example; four examples at a time), cut into blocks
that run under ``prange``; ``examples_as_rows`` transposes X for it;
``logistic_gradients`` adds the blocks' sums, and ``logistic_fit_chunk``
runs iterations of gradient descent with the guards of
``model.training.fit_chunk`` (its status codes). ``model.program`` compiles
them with the training loop (``PARALLEL_LOOPS``, ``DRIVERS``) or runs them
interpreted; ``model.logistic.LogisticRegression`` calls them.

Shapes: w (n_x,), b (1,); XT (m, n_x): X transposed, example i's features
the contiguous row XT[i]; Y (1, m).
"""

import math

from numba import prange
from numba.extending import register_jitable

from kernels.loops import sigmoid_scalar  # uncompiled default: backend "python"
from kernels.loops.products.blocked import pack_transposed
from kernels.options import HELPER_OPTIONS

from .training import DIVERGED, FINISHED

THREADED = True  # prange on threads (the "parallel" variant; kernels.cpu sets it per variant)
# examples_as_rows' part on threads, in columns of X: a part writes as many
# rows of XT at once as it has columns, and fewer streams of writes go faster
# (docs/performance-log.md, "Logistic regression and one unit")
STRIPE = 32


def examples_as_rows(XT, X):
    """XT = X^T: example i's features x^(i) as the contiguous row XT[i], what
    logistic_pass walks, by the products' 8 x 8 transposing pack
    (kernels.loops.products.blocked.pack_transposed; 2-3x faster than
    np.ascontiguousarray(X.T); once per fit). On threads ("parallel"), parts
    of STRIPE columns of X, each part writing its own rows of XT.

    XT (m, n_x) out, C order; X (n_x, m)."""
    n_x, m = X.shape
    parts = max(1, m // STRIPE) if THREADED else 1
    for p in prange(parts):
        j0 = m * p // parts // 8 * 8  # whole blocks of 8 examples but the last part's
        j1 = m if p == parts - 1 else m * (p + 1) // parts // 8 * 8
        pack_transposed(XT[j0:j1], X, 0, n_x, j0, j1)


def logistic_pass(dw_parts, parts, w, b, XT, Y, eps):
    """One pass over the examples computing z, a, the cost, dz, dw and db
    example by example, as the course writes it:

        for i in range(m):
            z = w . x_i + b;  a = sigma(z);  J += -(y log a + (1 - y) log(1 - a))
            dz = a - y;  dw += x_i dz;  db += dz

    The examples are cut into ``nblocks = dw_parts.shape[0]`` blocks; block t
    accumulates into its own row dw_parts[t] and parts[t] = (J, db), so blocks
    can run in parallel without races (one block: the course's loop).
    Within a block the loop takes four examples at a time (``_four_examples``:
    their four dot products share each load of w[k], their four updates one
    load and store of dw[k]; the same sums in another order), then the rest
    one by one (``_one_example``). Sums are left unscaled (the caller divides
    by m).

    dw_parts (nblocks, n_x) out; parts (nblocks, 2) out; w (n_x,); b (1,);
    XT (m, n_x): X transposed once per fit (examples_as_rows), so example i's
    features x^(i) are the contiguous row XT[i] (the dot product w . x^(i) and
    the update dw += x^(i) dz then walk contiguous memory: SIMD); Y (1, m).
    """
    m, n_x = XT.shape
    nblocks = dw_parts.shape[0]
    zero = w.dtype.type(0.0)
    for t in prange(nblocks):
        j0 = t * m // nblocks
        j1 = (t + 1) * m // nblocks
        dw = dw_parts[t]
        for k in range(n_x):
            dw[k] = zero
        J = 0.0  # the cost is accumulated in float64, as in kernels.loops.cross_entropy
        db = zero
        i = j0
        while i + 4 <= j1:
            J, db = _four_examples(dw, J, db, w, b, XT, Y, i, eps)
            i += 4
        for i in range(i, j1):
            J, db = _one_example(dw, J, db, w, b, XT, Y, i, eps)
        parts[t, 0] = J
        parts[t, 1] = db


@register_jitable(**HELPER_OPTIONS)
def _loss(a, y, one, lo):
    """The example's cross-entropy loss, in float64, a clipped to [lo, 1 - lo]
    (lo = eps in a's dtype) as in kernels.loops.cross_entropy."""
    hi = one - lo
    ac = lo if a < lo else (hi if a > hi else a)
    return -float(y * math.log(ac) + (one - y) * math.log(one - ac))


@register_jitable(**HELPER_OPTIONS)
def _one_example(dw, J, db, w, b, XT, Y, i, eps):
    """Example i: z, a, its loss added to J, dw += x^(i) dz; returns (J, db + dz)."""
    x = XT[i]
    z = b[0]
    for k in range(x.shape[0]):
        z += w[k] * x[k]
    a = sigmoid_scalar(z)
    y = Y[0, i]
    dz = a - y
    for k in range(x.shape[0]):
        dw[k] += x[k] * dz
    return J + _loss(a, y, w.dtype.type(1.0), w.dtype.type(eps)), db + dz


@register_jitable(**HELPER_OPTIONS)
def _four_examples(dw, J, db, w, b, XT, Y, i, eps):
    """Examples i .. i+3, as _one_example does each."""
    x0, x1, x2, x3 = XT[i], XT[i + 1], XT[i + 2], XT[i + 3]
    z0 = z1 = z2 = z3 = b[0]
    for k in range(x0.shape[0]):
        wk = w[k]
        z0 += wk * x0[k]
        z1 += wk * x1[k]
        z2 += wk * x2[k]
        z3 += wk * x3[k]
    a0, a1, a2, a3 = sigmoid_scalar(z0), sigmoid_scalar(z1), sigmoid_scalar(z2), sigmoid_scalar(z3)
    y0, y1, y2, y3 = Y[0, i], Y[0, i + 1], Y[0, i + 2], Y[0, i + 3]
    d0, d1, d2, d3 = a0 - y0, a1 - y1, a2 - y2, a3 - y3
    for k in range(x0.shape[0]):
        dw[k] += (x0[k] * d0 + x1[k] * d1) + (x2[k] * d2 + x3[k] * d3)
    one, lo = w.dtype.type(1.0), w.dtype.type(eps)
    J += (_loss(a0, y0, one, lo) + _loss(a1, y1, one, lo)) + (_loss(a2, y2, one, lo) + _loss(a3, y3, one, lo))
    return J, db + ((d0 + d1) + (d2 + d3))


def logistic_gradients(dw, db, dw_parts, parts, w, b, XT, Y, eps):
    """The cost J (returned) and dw (n_x,), db (1,) of logistic regression:
    logistic_pass, then the blocks' partial sums added and divided by m."""
    logistic_pass(dw_parts, parts, w, b, XT, Y, eps)
    m = XT.shape[0]
    inv_m = dw.dtype.type(1.0) / dw.dtype.type(m)
    J = 0.0
    s = 0.0
    for k in range(dw.shape[0]):
        dw[k] = dw.dtype.type(0.0)
    for t in range(dw_parts.shape[0]):
        J += parts[t, 0]
        s += parts[t, 1]
        for k in range(dw.shape[0]):
            dw[k] += dw_parts[t, k]
    for k in range(dw.shape[0]):
        dw[k] *= inv_m
    db[0] = dw.dtype.type(s) * inv_m
    return J / m


def logistic_fit_chunk(costs, w, b, w_next, b_next, dw, db, dw_parts, parts, XT, Y,
                       start, count, cost_every, learning_rate, eps):
    """Iterations start .. start + count - 1 of logistic regression's gradient
    descent, guarded like fit_chunk (same costs and return convention).
    w, w_next, dw (n_x,); b, b_next, db (1,)."""
    lr = w.dtype.type(learning_rate)
    for t in range(count):
        i = start + t
        J = logistic_gradients(dw, db, dw_parts, parts, w, b, XT, Y, eps)
        if i % cost_every == 0:
            costs[i // cost_every] = J
            if not math.isfinite(J):
                return t, DIVERGED
        ok = True
        for k in range(w.shape[0]):
            w_next[k] = w[k] - lr * dw[k]
            if not math.isfinite(w_next[k]):
                ok = False
        b_next[0] = b[0] - lr * db[0]
        if not (ok and math.isfinite(b_next[0])):
            return t, DIVERGED
        for k in range(w.shape[0]):
            w[k] = w_next[k]
        b[0] = b_next[0]
    return count, FINISHED
