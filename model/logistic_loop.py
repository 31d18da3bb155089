"""Logistic regression's training loop: the course's per-example loop.

``logistic_pass`` is the course's loop over the examples (z, a, the cost,
dz, dw, db example by example), cut into blocks that run under ``prange``;
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

from kernels.loops import sigmoid_scalar  # uncompiled default: backend "python"

from .training import DIVERGED, FINISHED


def logistic_pass(dw_parts, parts, w, b, XT, Y, eps):
    """One pass over the examples computing z, a, the cost, dz, dw and db
    example by example, as the course writes it:

        for i in range(m):
            z = w . x_i + b;  a = sigma(z);  J += -(y log a + (1 - y) log(1 - a))
            dz = a - y;  dw += x_i dz;  db += dz

    The examples are cut into ``nblocks = dw_parts.shape[0]`` blocks; block t
    accumulates into its own row dw_parts[t] and parts[t] = (J, db), so blocks
    can run in parallel without races (one block: the course's loop exactly).
    Sums are left unscaled (the caller divides by m).

    dw_parts (nblocks, n_x) out; parts (nblocks, 2) out; w (n_x,); b (1,);
    XT (m, n_x): X transposed once per fit, so example i's features x^(i) are
    the contiguous row XT[i] (the dot product w . x^(i) and the update
    dw += x^(i) dz then walk contiguous memory: SIMD); Y (1, m).
    """
    m, n_x = XT.shape
    nblocks = dw_parts.shape[0]
    one = w.dtype.type(1.0)
    zero = w.dtype.type(0.0)
    lo = w.dtype.type(eps)
    hi = one - lo
    y_row = Y[0]
    for t in prange(nblocks):
        j0 = t * m // nblocks
        j1 = (t + 1) * m // nblocks
        dw = dw_parts[t]
        for k in range(n_x):
            dw[k] = zero
        J = 0.0  # the cost is accumulated in float64, as in kernels.loops.cross_entropy
        db = zero
        for i in range(j0, j1):
            x = XT[i]
            z = b[0]
            for k in range(n_x):
                z += w[k] * x[k]
            a = sigmoid_scalar(z)
            y = y_row[i]
            ac = lo if a < lo else (hi if a > hi else a)
            J -= float(y * math.log(ac) + (one - y) * math.log(one - ac))
            dz = a - y
            for k in range(n_x):
                dw[k] += x[k] * dz
            db += dz
        parts[t, 0] = J
        parts[t, 1] = db


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
