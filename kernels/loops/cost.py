"""The cost and its gradient: cross-entropy over the examples, its log
never seeing 0 (a is clipped to [eps, 1 - eps]).

Shapes: AL, Y, dAL (1, m).
"""

import math

from numba import prange
from numba.extending import register_jitable

from ..approx import log_approx
from ..options import BLOCK, HELPER_OPTIONS, PARALLEL_ELEMENTS


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
