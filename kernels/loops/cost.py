"""The cost and its gradient: cross-entropy over the examples, its log
never seeing 0 (a is clipped to [eps, 1 - eps]).

Shapes: AL, Y, dAL (1, m).
"""

import math

import numpy as np
from numba import prange
from numba.extending import register_jitable

from ..approx import exp_approx, log_approx
from ..options import BLOCK, HELPER_OPTIONS, PARALLEL_ELEMENTS


def cross_entropy(AL, Y, eps, exact=False):
    """J = -(1/m) sum_j [y log a + (1 - y) log(1 - a)], a clipped to [eps, 1 - eps]
    (one sigmoid unit); for C >= 2 rows (a softmax output and one-hot Y) the
    categorical J = -(1/m) sum_j sum_i y_ij log a_ij.

    log is ``kernels.approx.log_approx`` (within 1 ulp, vectorizable), or the C
    math library's with ``exact=True``.

    AL, Y (1, m) or (C, m). Returns a float64: the sum is accumulated in
    float64 on purpose (deliberate promotion, also for float32 inputs: the
    cost is a single number that training curves compare across backends).
    ``eps`` is the dtype's machine epsilon, so log never sees 0.
    """
    if AL.shape[0] > 1:
        return _categorical(AL, Y, eps, exact)
    a_row = AL[0]
    y_row = Y[0]
    m = a_row.shape[0]
    lo = a_row.dtype.type(eps)
    one = a_row.dtype.type(1.0)
    hi = one - lo
    if m < PARALLEL_ELEMENTS:  # too small for threads to pay
        return -_cost_block(a_row, y_row, 0, m, lo, hi, exact) / m
    # each block's sum its own prange iteration's, added in order: the same
    # bits however the threads share the blocks (kernels.loops.dot's way)
    nblocks = (m + BLOCK - 1) // BLOCK
    partial = np.empty(nblocks)
    for t in prange(nblocks):
        partial[t] = _cost_block(a_row, y_row, t * BLOCK, min(t * BLOCK + BLOCK, m), lo, hi, exact)
    total = 0.0
    for t in range(nblocks):
        total += partial[t]
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


@register_jitable(**HELPER_OPTIONS)
def _categorical(AL, Y, eps, exact):
    """-(1/m) sum_ij y_ij log a_ij, a clipped to [eps, 1]; AL, Y (C, m)."""
    lo = AL.dtype.type(eps)
    total = 0.0
    for i in range(AL.shape[0]):
        a_i = AL[i]
        y_i = Y[i]
        for j in range(a_i.shape[0]):
            a = a_i[j]
            a = lo if a < lo else a
            total += float(y_i[j] * (math.log(a) if exact else log_approx(a)))
    return -total / AL.shape[1]


@register_jitable(**HELPER_OPTIONS)
def _softmax_block(A, j0, j1, exact):
    """Columns j0:j1 of A (C, m) replaced by their softmax, computed stably:
    each column's max is subtracted before exp, so exp never overflows and
    the largest term is exp(0) = 1. A row at a time: every loop runs along
    a row's contiguous cells (SIMD), the exact path's as its libm calls allow."""
    w = j1 - j0
    top = A[0, j0:j1].copy()
    for i in range(1, A.shape[0]):
        a = A[i, j0:j1]
        for j in range(w):
            top[j] = a[j] if a[j] > top[j] else top[j]
    total = np.zeros(w, dtype=A.dtype)
    for i in range(A.shape[0]):
        a = A[i, j0:j1]
        if exact:
            for j in range(w):
                a[j] = math.exp(a[j] - top[j])
        else:
            for j in range(w):  # exp_approx: vectorizable
                a[j] = exp_approx(a[j] - top[j])
        for j in range(w):
            total[j] += a[j]
    for i in range(A.shape[0]):
        a = A[i, j0:j1]
        for j in range(w):
            a[j] = a[j] / total[j]


def softmax(A, exact=False):
    """A = softmax(A) column by column, in place: each example's C outputs
    become probabilities (exp is ``kernels.approx.exp_approx``, within 1
    ulp and vectorizable, or the C math library's with ``exact=True``; a
    column of NaN stays NaN). A (C, m); each block of columns is its own
    prange iteration's."""
    m = A.shape[1]
    if A.size < PARALLEL_ELEMENTS:
        _softmax_block(A, 0, m, exact)
        return
    for t in prange((m + BLOCK - 1) // BLOCK):
        _softmax_block(A, t * BLOCK, min(t * BLOCK + BLOCK, m), exact)


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
