"""The update, the dot product and the finiteness test: loops over flat views."""

import math

from numba import prange

from ..options import BLOCK, PARALLEL_ELEMENTS
from .views import flat


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


def all_finite(x, zeros):
    """True if no element of ``x`` is NaN or +-inf: a serial loop that stops
    at the first one (compiled, this costs far less than a parallel launch;
    kernels.cpu compiles it serially in both variants). ``zeros`` (>= x.size,)
    is unused here; another backend may test with one reduction against it
    (kernels.cuda: dot(x, zeros) is NaN as soon as one x is not finite).

    The training loop tests every new parameter with it (divergence)."""
    cells = flat(x)
    for j in range(cells.shape[0]):
        if not math.isfinite(cells[j]):
            return False
    return True
