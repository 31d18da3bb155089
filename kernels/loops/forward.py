"""Forward propagation: Z = W A_prev + b, and A = g(Z) fused into the same pass.

The output Z is cut into tiles (plans.forward_plan); every tile owns its cells
of Z and A, so the tiles run under prange without races, and each tile is
activated while it is still in cache. Shapes: Z, A (n, m); A_prev (k, m);
W (n, k); b (n, 1).
"""

import numpy as np
from numba import prange
from numba.extending import register_jitable

from ..options import BLOCK, HELPER_OPTIONS, KC, MICRO_BYTES, PARALLEL_WORK
from . import course
from .activations import activate_row
from .plans import BLOCKED_DOT, COURSE, PACKED, SIMPLE, forward_plan
from .products.blocked import dots_tile, pack_transposed, product_tile
from .products.packed import packed_tile


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
def _blocked_tile(Z, A, A_prev, W, b, act, i0, i1, j0, j1, plan):
    """BLOCKED_DOT / BLOCKED_ROWS tile: Z[i0:i1, j0:j1] = b + W A_prev, then
    A = g(Z) on the tile (act < 0: no activation).

    BLOCKED_DOT packs the tile's columns of A_prev transposed into a scratch
    panel T (j1-j0, k) so that both factors of every dot product are
    contiguous, then 4 x 4 blocks of Z are dot4x4 products of rows of W and
    rows of T, the reduction KC at a time. BLOCKED_ROWS needs no packing."""
    k = W.shape[1]
    for i in range(i0, i1):
        z = Z[i, j0:j1]
        bi = b[i, 0]
        for j in range(z.shape[0]):
            z[j] = bi
    if plan == BLOCKED_DOT:
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
def _packed_tile(Z, A, A_prev, W, b, act, j0, j1):
    """PACKED tile: Z[:, j0:j1] = b + W A_prev[:, j0:j1], then A = g(Z) on
    the tile while it is in cache (act < 0: no activation)."""
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
def forward_tile(Z, A, A_prev, W, b, act, t, plan, width, groups, rows):
    """Tile t of the plan: its cells of Z = W A_prev + b, then A = g(Z) on
    them while they are in cache (act < 0: Z only). Tile t owns its cells."""
    n = W.shape[0]
    m = A_prev.shape[1]
    if plan == COURSE:
        course.linear_activation_forward(Z, A, A_prev, W, b, act)
    elif plan == SIMPLE:
        _simple_tile(Z, A, A_prev, W, b, act, t, n, m)
    elif plan == PACKED:
        _packed_tile(Z, A, A_prev, W, b, act, t * width, min(t * width + width, m))
    else:
        jb = t // groups
        g = t - jb * groups
        _blocked_tile(Z, A, A_prev, W, b, act, g * rows, min(g * rows + rows, n),
                      jb * width, min(jb * width + width, m), plan)


def linear_forward(Z, A_prev, W, b):
    """Z = W A_prev + b, split in tiles (plans.forward_plan); each tile owns its
    cells of Z. Serial below PARALLEL_WORK multiply-adds (threads would cost
    more than they save), else parallel over tiles.

    Z (n, m) out; A_prev (k, m); W (n, k); b (n, 1).
    """
    n, k = W.shape
    m = A_prev.shape[1]
    plan, tiles, width, groups, rows = forward_plan(n, k, m, MICRO_BYTES // W.itemsize)
    if n * k * m < PARALLEL_WORK:
        for t in range(tiles):
            forward_tile(Z, Z, A_prev, W, b, -1, t, plan, width, groups, rows)
    else:
        for t in prange(tiles):
            forward_tile(Z, Z, A_prev, W, b, -1, t, plan, width, groups, rows)


def linear_activation_forward(Z, A, A_prev, W, b, act):
    """Z = W A_prev + b and A = g(Z) in one pass: each tile of Z is activated
    while it is still in cache. Tiles as in linear_forward.

    Z, A (n, m) out; A_prev (k, m); W (n, k); b (n, 1); act an activation code.
    """
    n, k = W.shape
    m = A_prev.shape[1]
    plan, tiles, width, groups, rows = forward_plan(n, k, m, MICRO_BYTES // W.itemsize)
    if n * k * m < PARALLEL_WORK:
        for t in range(tiles):
            forward_tile(Z, A, A_prev, W, b, act, t, plan, width, groups, rows)
    else:
        for t in prange(tiles):
            forward_tile(Z, A, A_prev, W, b, act, t, plan, width, groups, rows)
