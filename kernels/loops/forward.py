"""Forward propagation: Z = W A_prev + b, and A = g(Z) fused into the same pass.

The output Z is cut into tiles (plans.forward_plan); every tile owns its cells
of Z and A, so the tiles run under prange without races, and each tile is
activated while it is still in cache. Shapes: Z, A (n, m); A_prev (k, m);
W (n, k); b (n, 1).
"""

import numpy as np
from numba import prange
from numba.extending import register_jitable

from ..options import (BLOCK, DOT_FORM_K, HELPER_OPTIONS, KC, MICRO_BYTES, MICRO_KC, PARALLEL_WORK, POOL_THREADS,
                       SPARSE_DENSITY_TRANSPOSED)
from . import course
from .activations import activate_row
from .views import borrowed, flat
from .plans import ALL_PLANS, BLOCKED_DOT, COURSE, PACKED, SIMPLE, forward_plan
from .products.blocked import dots_tile, pack_transposed, product_tile
from .products.packed import packed_tile, packed_width
from .products.sparse import (may_be_sparse, pack_panel, row_masks, sparse_enough, sparse_tile_transposed,
                              sparse_widths)

# The plan set this module's kernels are compiled for: all plans here;
# kernels.cpu compiles smaller sets too (plans.plan_globals).
PLANS, FORWARD_ROWS, FORWARD_DOT, FORWARD_PACKED = ALL_PLANS, True, True, True
# Whether prange runs on threads here: kernels.cpu sets it per variant (False
# in the "numba" one, whose tiles then are as wide as the plan allows).
THREADED = True
# One unit's forward on threads: parts of the reduction a thread of the pool
# (more parts than threads: a part that waits on memory longer is made up by
# the others; 2, 8 and 16 parts a forward measured on 2 threads: docs/performance-log.md,
# "Logistic regression and one unit")
ONE_UNIT_PARTS = 4


@register_jitable(**HELPER_OPTIONS)
def _simple_tile(Z, A, A_prev, W, b, act, t, n, m):
    """SIMPLE tile t: unit i, examples j0:j1, the example loop innermost:
    Z[i, j0:j1] = b[i] + sum_p W[i, p] * A_prev[p, j0:j1]."""
    jb = t // n
    i = t - jb * n
    j0 = jb * BLOCK
    j1 = min(j0 + BLOCK, m)
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
    if act >= 0:
        activate_row(A[i, j0:j1], z, act)


@register_jitable(**HELPER_OPTIONS)
def _one_unit_rows(z, w, A_prev, p0, p1):
    """SIMPLE for one unit and a long reduction, rows p0:p1 of it:
    z = sum_p w[p] A_prev[p] (z (m,) zeroed first), the course's
    z = w^T x for every example at once. Four rows of A_prev a pass over z,
    so that z is loaded and stored once for four multiply-adds a cell (it
    leaves L1 when m is large)."""
    zero = z.dtype.type(0.0)
    for j in range(z.shape[0]):
        z[j] = zero
    p = p0
    while p + 4 <= p1:
        w0, w1, w2, w3 = w[p], w[p + 1], w[p + 2], w[p + 3]
        a0, a1, a2, a3 = A_prev[p], A_prev[p + 1], A_prev[p + 2], A_prev[p + 3]
        for j in range(z.shape[0]):  # contiguous in z and the rows: SIMD
            z[j] += (w0 * a0[j] + w1 * a1[j]) + (w2 * a2[j] + w3 * a3[j])
        p += 4
    for p in range(p, p1):
        wp = w[p]
        a = A_prev[p]
        for j in range(z.shape[0]):
            z[j] += wp * a[j]


@register_jitable(**HELPER_OPTIONS)
def _one_unit_end(Z, A, P, b, act):
    """Z[0] (part 0's sum) += the other parts' sums P and b; A = g(Z)."""
    z = Z[0]
    for q in range(P.shape[0]):
        part = P[q]
        for j in range(z.shape[0]):
            z[j] += part[j]
    b0 = b[0, 0]
    for j in range(z.shape[0]):
        z[j] += b0
    _activate_tile(Z, A, act, 0, 1, 0, z.shape[0])


@register_jitable(**HELPER_OPTIONS)
def _bias_tile(Z, b, i0, i1, j0, j1):
    """Z[i0:i1, j0:j1] = b[i0:i1] (each row its unit's bias)."""
    for i in range(i0, i1):
        z = Z[i, j0:j1]
        bi = b[i, 0]
        for j in range(z.shape[0]):
            z[j] = bi


@register_jitable(**HELPER_OPTIONS)
def _activate_tile(Z, A, act, i0, i1, j0, j1):
    """A = g(Z) on the tile (act < 0: no activation). A tile of whole rows
    is one contiguous stretch: one loop, not one short loop per row."""
    if act >= 0 and j0 == 0 and j1 == Z.shape[1]:
        m = Z.shape[1]
        activate_row(flat(A)[i0 * m:i1 * m], flat(Z)[i0 * m:i1 * m], act)
    elif act >= 0:
        for i in range(i0, i1):
            activate_row(A[i, j0:j1], Z[i, j0:j1], act)


@register_jitable(**HELPER_OPTIONS)
def _rows_tile(Z, A, A_prev, W, b, act, t, width, groups, rows):
    """BLOCKED_ROWS tile t: Z[i0:i1, j0:j1] = b + W A_prev, 4 x 4 blocks of
    multipliers in registers, then A = g(Z) on the tile (act < 0: no
    activation). Tiles of ``width`` columns by ``rows`` rows, ``groups``
    row groups."""
    n = W.shape[0]
    m = A_prev.shape[1]
    jb = t // groups
    g = t - jb * groups
    i0, i1 = g * rows, min(g * rows + rows, n)
    j0, j1 = jb * width, min(jb * width + width, m)
    _bias_tile(Z, b, i0, i1, j0, j1)
    product_tile(Z, W, A_prev, i0, i1, j0, j1)
    _activate_tile(Z, A, act, i0, i1, j0, j1)


@register_jitable(**HELPER_OPTIONS)
def _dot_tile(Z, A, A_prev, W, b, act, t, width):
    """BLOCKED_DOT tile t: Z[:, j0:j1] = b + W A_prev[:, j0:j1], then A = g(Z)
    on the tile. The tile's columns of A_prev are packed transposed into a
    scratch panel T (j1-j0, k) so that both factors of every dot product are
    contiguous, then 4 x 4 blocks of Z are dot4x4 products of rows of W and
    rows of T, the reduction KC at a time."""
    n, k = W.shape
    m = A_prev.shape[1]
    j0, j1 = t * width, min(t * width + width, m)
    _bias_tile(Z, b, 0, n, j0, j1)
    T = np.empty((j1 - j0, min(KC, k)), dtype=Z.dtype)  # scratch panel
    for p0 in range(0, k, KC):
        p1 = min(p0 + KC, k)
        pack_transposed(borrowed(T), A_prev, p0, p1, j0, j1)  # borrowed: its views count no references
        # Z[i, j0 + q] += W[i, p0:p1] . T[q, 0:p1-p0]
        dots_tile(Z, 0, j0, W, 0, n, p0, borrowed(T), 0, j1 - j0, 0, p1 - p0, True)
    _activate_tile(Z, A, act, 0, n, j0, j1)


@register_jitable(**HELPER_OPTIONS)
def _packed_tile(Z, A, A_prev, W, b, act, t, width):
    """PACKED tile t: Z[:, j0:j1] = b + W A_prev[:, j0:j1], then A = g(Z) on
    the tile while it is in cache (act < 0: no activation)."""
    n = W.shape[0]
    m = A_prev.shape[1]
    j0, j1 = t * width, min(t * width + width, m)
    _bias_tile(Z, b, 0, n, j0, j1)
    packed_tile(Z, W, A_prev, False, j0, j1, False, Z.dtype.type(1.0))
    _activate_tile(Z, A, act, 0, n, j0, j1)


@register_jitable(**HELPER_OPTIONS)
def _sparse_tile(Z, A, A_prevT, masks, W, b, act, i0, i1):
    """PACKED tile over an A_prev with few nonzero cells (behind a relu):
    rows i0:i1 of Z = b + (A_prev^T W[i0:i1]^T)^T, A_prev's zeros left out
    (the packed tile's bits: products/sparse.py), then A = g(Z) on them."""
    sparse_tile_transposed(Z, A_prevT, masks, W, i0, i1, True)
    for i in range(i0, i1):
        z = Z[i]
        bi = b[i, 0]
        for j in range(z.shape[0]):
            z[j] += bi
    _activate_tile(Z, A, act, i0, i1, 0, Z.shape[1])


def linear_activation_forward(Z, A, A_prev, W, b, act):
    """Z = W A_prev + b and A = g(Z) in one pass, split in tiles
    (plans.forward_plan); each tile owns its cells of Z and A and is
    activated while it is still in cache (act < 0: Z only, A unused). Serial
    below PARALLEL_WORK multiply-adds (threads would cost more than they
    save), else parallel over tiles. Only the plans of this module's plan set
    are compiled (``FORWARD_*``, see plans.py).

    Z, A (n, m) out; A_prev (k, m); W (n, k); b (n, 1); act an activation code.
    """
    n, k = W.shape
    m = A_prev.shape[1]
    serial = n * k * m < PARALLEL_WORK or not THREADED
    plan, tiles, width, groups, rows = forward_plan(n, k, m, MICRO_BYTES // W.itemsize, PLANS, serial)
    if plan == COURSE:
        course.linear_activation_forward(Z, A, A_prev, W, b, act)
    elif plan == SIMPLE and n == 1 and k >= DOT_FORM_K:  # one unit, a long reduction (plans.forward_plan)
        # on threads: parts of the reduction, part 0 summing into Z, the
        # others into their own rows of P (each part owns what it writes)
        parts = 1 if serial else ONE_UNIT_PARTS * POOL_THREADS
        P = np.empty((parts - 1, m), dtype=Z.dtype)
        if parts == 1:
            _one_unit_rows(Z[0], W[0], A_prev, 0, k)
        else:
            for q in prange(parts):
                _one_unit_rows(Z[0] if q == 0 else P[q - 1], W[0], A_prev, k * q // parts, k * (q + 1) // parts)
        _one_unit_end(Z, A, P, b, act)
    elif plan == SIMPLE:  # below BLOCKED_WORK: serial
        for t in range(tiles):
            _simple_tile(Z, A, A_prev, W, b, act, t, n, m)
    elif FORWARD_PACKED and plan == PACKED:
        if max(k, m) <= MICRO_KC and n >= sparse_widths(Z)[1] and may_be_sparse(A_prev, SPARSE_DENSITY_TRANSPOSED):
            # few of A_prev's cells nonzero (behind a relu): its zeros left out,
            # in tiles of rows of Z (products/sparse.py); a mini-batch only (its
            # transposes are small), and not for fewer rows than half a
            # sparse panel, which would be half padding
            A_prevT = np.empty((m, k), dtype=A_prev.dtype)
            pack_panel(A_prevT, A_prev, 0, k, k, True)
            masks = np.empty((m, (k + 63) // 64), dtype=np.uint64)
            if sparse_enough(row_masks(masks, A_prevT), m, k, SPARSE_DENSITY_TRANSPOSED):
                rows = packed_width(n, sparse_widths(Z)[0], serial)
                if serial:
                    for t in range((n + rows - 1) // rows):
                        _sparse_tile(Z, A, A_prevT, masks, W, b, act, t * rows, min(t * rows + rows, n))
                else:
                    for t in prange((n + rows - 1) // rows):
                        _sparse_tile(Z, A, A_prevT, masks, W, b, act, t * rows, min(t * rows + rows, n))
                return
        if serial:
            for t in range(tiles):
                _packed_tile(Z, A, A_prev, W, b, act, t, width)
        else:
            for t in prange(tiles):
                _packed_tile(Z, A, A_prev, W, b, act, t, width)
    elif FORWARD_DOT and plan == BLOCKED_DOT:
        if serial:
            for t in range(tiles):
                _dot_tile(Z, A, A_prev, W, b, act, t, width)
        else:
            for t in prange(tiles):
                _dot_tile(Z, A, A_prev, W, b, act, t, width)
    elif FORWARD_ROWS:  # BLOCKED_ROWS
        if serial:
            for t in range(tiles):
                _rows_tile(Z, A, A_prev, W, b, act, t, width, groups, rows)
        else:
            for t in prange(tiles):
                _rows_tile(Z, A, A_prev, W, b, act, t, width, groups, rows)


def linear_forward(Z, A_prev, W, b):
    """Z = W A_prev + b: linear_activation_forward without the activation.

    Z (n, m) out; A_prev (k, m); W (n, k); b (n, 1).
    """
    # np.int64: a literal -1 would make Numba compile a second, literal-typed copy
    linear_activation_forward(Z, Z, A_prev, W, b, np.int64(-1))
