"""Counter-based draws: the same pseudo-random numbers on every backend:
the mini-batch permutation and the dropout masks.

A draw is a hash of its coordinates (seed, stream, counter), not the next
state of a generator, so any backend, interpreted or compiled, serial or in
parallel, gets the same numbers for the same coordinates in any order: the
mini-batch permutations (and dropout masks) of a fit are the same on
"python", "numpy", "numba" and "parallel".

The hash is a 32-bit finalizer (MurmurHash3's fmix32) applied three times,
written with int64 arithmetic masked to 32 bits, so Python's exact integers
and Numba's wrapping int64 give the very same bits.
"""

import numpy as np
from numba import prange
from numba.extending import register_jitable

from ..options import HELPER_OPTIONS, PARALLEL_ELEMENTS

MASK32 = 0xFFFFFFFF
RADIX_BITS = 8  # order_of's radix sort: 4 passes over 32-bit keys
RADIX = 1 << RADIX_BITS


@register_jitable(**HELPER_OPTIONS)
def fmix32(h):
    """MurmurHash3's finalizer of a 32-bit value (held in an int64)."""
    h = h & MASK32
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & MASK32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & MASK32
    h ^= h >> 16
    return h


@register_jitable(**HELPER_OPTIONS)
def hash3(seed, stream, counter):
    """A 32-bit hash of three non-negative integers (each taken mod 2^32);
    elementwise where ``counter`` is an int64 NumPy array (kernels.vectorized)."""
    h = fmix32(seed ^ 0x9E3779B9)
    h = fmix32(h ^ (stream & MASK32))
    return fmix32(h ^ (counter & MASK32))


def permutation(out, seed, epoch):
    """out = a permutation of 0..m-1 (m = out.size) drawn from (seed, epoch):
    the order of the hashes hash3(seed, epoch, i) (their top 31 bits), ties
    broken by i. out int64 (m,)."""
    m = out.shape[0]
    keys = np.empty(m, dtype=np.int64)
    for i in range(m):
        keys[i] = hash3(seed, epoch, i) >> 1
    order_of(out, keys)


@register_jitable(**HELPER_OPTIONS)
def order_of(out, keys):
    """out = the indices 0..m-1 in the order of ``keys`` (int64 (m,), each
    in 0 .. 2^32 - 1; overwritten), ties in the order of the index: a stable
    argsort. out int64 (m,).

    A least-significant-digit radix sort, four passes of 8 bits: each pass
    counts the digits, then moves every (key, index) pair to its digit's
    next place, in order, so equal digits keep the order of the pass before.
    O(m) where a comparison sort is O(m log m): an epoch of a mini-batch fit
    starts with one, and one thread runs it while the others wait."""
    m = out.shape[0]
    for i in range(m):
        out[i] = i
    keys_to = np.empty(m, dtype=np.int64)
    out_to = np.empty(m, dtype=np.int64)
    counts = np.empty(RADIX, dtype=np.int64)
    for shift in range(0, 32, RADIX_BITS):  # an even number of passes: the result ends in keys, out
        for d in range(RADIX):
            counts[d] = 0
        for i in range(m):
            counts[(keys[i] >> shift) & (RADIX - 1)] += 1
        first = 0  # counts[d] becomes the place of digit d's first pair
        for d in range(RADIX):
            c = counts[d]
            counts[d] = first
            first += c
        for i in range(m):
            d = (keys[i] >> shift) & (RADIX - 1)
            place = counts[d]
            counts[d] = place + 1
            keys_to[place] = keys[i]
            out_to[place] = out[i]
        keys, keys_to = keys_to, keys
        out, out_to = out_to, out


@register_jitable(**HELPER_OPTIONS)
def _dropout_row(a, seed, stream, first, threshold, scale):
    zero = a.dtype.type(0.0)
    for j in range(a.shape[0]):
        keep = (hash3(seed, stream, first + j) >> 8) < threshold  # a uniform 24-bit draw
        a[j] = a[j] * scale if keep else zero


def dropout(A, seed, stream, keep_prob):
    """Inverted dropout in place: each cell A[i, j] is kept with probability
    keep_prob and scaled by 1 / keep_prob, or set to 0. The draw of cell
    (i, j) is hash3(seed, stream, i * m + j), so the same (seed, stream)
    gives the same mask again: the backward pass applies it to dA.
    A (n, m); each row is its own prange iteration's."""
    n, m = A.shape
    threshold = int(keep_prob * 16777216.0)  # keep_prob of the 2^24 draws
    scale = A.dtype.type(1.0 / keep_prob)
    if A.size < PARALLEL_ELEMENTS:
        for i in range(n):
            _dropout_row(A[i], seed, stream, i * m, threshold, scale)
        return
    for i in prange(n):
        _dropout_row(A[i], seed, stream, i * m, threshold, scale)
