"""Backward propagation: dW, db and dA_prev from dZ, as two separate loops
that are each race-free under prange (llm.c's rule): dW over blocks of its
columns (iteration t owns dW[:, p0:p1]; columns, because output layers have
a single unit), dA_prev over tiles of its cells.

Shapes: dA_prev, A_prev (k, m); dW, W (n, k); db (n, 1); dZ, dA, Z (n, m).
"""

import numpy as np
from numba import prange
from numba.extending import register_jitable

from ..options import (BLOCK, HELPER_OPTIONS, JB, JR_BYTES, MICRO_BYTES, MICRO_KC, PARALLEL_WORK, SPARSE_DENSITY,
                       SPARSE_DENSITY_INPUT)
from . import course
from .activations import activation_backward
from .plans import ALL_PLANS, BLOCKED_DOT, BLOCKED_ROWS, COURSE, PACKED, SIMPLE, input_gradient_plan, weight_gradients_plan
from .products.blocked import dots_tile, product_tile, product_tiles, transposed
from .products.packed import packed_tile, packed_width
from .products.sparse import (may_be_sparse, pack_panel, row_masks, sparse_enough, sparse_tile,
                              sparse_tile_transposed, sparse_widths)

# The plan set this module's kernels are compiled for (see forward.py).
PLANS, GRADIENT_DOT, GRADIENT_PACKED, INPUT_ROWS, INPUT_PACKED = ALL_PLANS, True, True, True, True
THREADED = True  # prange on threads (see forward.py)


@register_jitable(**HELPER_OPTIONS)
def _weight_gradients_simple_row(dW, db, dZ, A_prev, i, inv_m):
    """SIMPLE: row i of dW and db[i], one dot product at a time."""
    m = dZ.shape[1]
    zero = dW.dtype.type(0.0)
    dz = dZ[i]
    s = zero
    for j in range(m):  # reduction: vectorizes because fastmath allows reassociation
        s += dz[j]
    db[i, 0] = s * inv_m
    for p in range(A_prev.shape[0]):
        a = A_prev[p]
        acc = zero
        for j in range(m):
            acc += dz[j] * a[j]
        dW[i, p] = acc * inv_m


@register_jitable(**HELPER_OPTIONS)
def _weight_gradients_block(dW, dZ, A_prev, p0, p1, inv_m):
    """BLOCKED_DOT: columns p0:p1 of dW, 4 x 4 dot products at a time, the
    examples JR_BYTES of a row at a time (so 4 rows of dZ stay in L1 while
    the rows of A_prev pass by), then scaled by 1/m."""
    n, m = dZ.shape
    jr = JR_BYTES // dW.itemsize
    for j0 in range(0, m, jr):
        # dW[i, p] (+)= dZ[i, j0:j1] . A_prev[p, j0:j1]
        dots_tile(dW, 0, p0, dZ, 0, n, j0, A_prev, p0, p1, j0, min(jr, m - j0), j0 > 0)
    for i in range(dW.shape[0]):
        row = dW[i, p0:p1]
        for p in range(row.shape[0]):
            row[p] *= inv_m


@register_jitable(**HELPER_OPTIONS)
def _one_unit_block(dW, dZ, A_prev, p0, p1, inv_m):
    """BLOCKED_DOT for one unit: dW[0, p0:p1] = (1/m) dz . A_prev[p], four
    rows of A_prev at a time (four dot products sharing each load of dz, in
    place of dot4x4 blocks with 3 of their 4 rows of dZ empty)."""
    dz = dZ[0]
    w = dW[0]
    zero = dW.dtype.type(0.0)
    p = p0
    while p + 4 <= p1:
        a0, a1, a2, a3 = A_prev[p], A_prev[p + 1], A_prev[p + 2], A_prev[p + 3]
        s0 = s1 = s2 = s3 = zero
        for j in range(dz.shape[0]):  # four reductions: fastmath lets them vectorize along j
            e = dz[j]
            s0 += e * a0[j]
            s1 += e * a1[j]
            s2 += e * a2[j]
            s3 += e * a3[j]
        w[p], w[p + 1], w[p + 2], w[p + 3] = s0 * inv_m, s1 * inv_m, s2 * inv_m, s3 * inv_m
        p += 4
    for p in range(p, p1):
        a = A_prev[p]
        s = zero
        for j in range(dz.shape[0]):
            s += dz[j] * a[j]
        w[p] = s * inv_m


@register_jitable(**HELPER_OPTIONS)
def _weight_gradients_packed_tile(dW, dZ, A_prev, p0, p1, inv_m):
    """PACKED tile: dW[:, p0:p1] = (1/m) dZ A_prev[p0:p1]^T (A_prev's rows
    p0:p1 are packed transposed; 1/m is the product's alpha)."""
    packed_tile(dW, dZ, A_prev, True, p0, p1, True, inv_m)


@register_jitable(**HELPER_OPTIONS)
def _weight_gradients_sparse_tile(dW, dZ, masks, A_prev, p0, p1, inv_m):
    """PACKED tile for a mostly-zero dZ: dW[:, p0:p1] = (1/m) dZ A_prev[p0:p1]^T,
    dZ's zeros left out (products/sparse.py: the packed tile's bits)."""
    sparse_tile(dW, dZ, masks, A_prev, p0, p1, inv_m)


@register_jitable(**HELPER_OPTIONS)
def _bias_gradient(db, dZ, inv_m):
    """db = (1/m) sum_j dZ[:, j]."""
    zero = db.dtype.type(0.0)
    for i in range(dZ.shape[0]):
        dz = dZ[i]
        s = zero
        for j in range(dz.shape[0]):  # reduction: vectorizes because fastmath allows reassociation
            s += dz[j]
        db[i, 0] = s * inv_m


def weight_gradients(dW, db, dZ, A_prev):
    """dW = (1/m) dZ A_prev^T and db = (1/m) sum_j dZ (plans.weight_gradients_plan).
    PACKED on a mini-batch (m <= MICRO_KC) whose dZ has few nonzero cells
    (at most options.SPARSE_DENSITY of them, the target's) leaves the zeros
    out (sparse tiles), where dW has at least half a sparse panel's columns.

    SIMPLE is parallel over output units (iteration i owns row dW[i] and
    db[i]); PACKED and BLOCKED_DOT over blocks of columns of dW (iteration t
    owns dW[:, p0:p1]), then db over units.

    dW (n, k) out; db (n, 1) out; dZ (n, m); A_prev (k, m).
    """
    n, m = dZ.shape
    k = A_prev.shape[0]
    inv_m = dW.dtype.type(1.0) / dW.dtype.type(m)
    work = n * k * m
    plan = weight_gradients_plan(n, k, m, PLANS)
    if plan == COURSE:
        course.weight_gradients(dW, db, dZ, A_prev)
        return
    if plan == SIMPLE:
        for i in range(n):
            _weight_gradients_simple_row(dW, db, dZ, A_prev, i, inv_m)
        return
    if GRADIENT_PACKED and plan == PACKED and m <= MICRO_KC and k >= sparse_widths(dW)[1] and \
            may_be_sparse(dZ, SPARSE_DENSITY):
        # a mini-batch: where few of dZ's cells are nonzero (behind a relu),
        # its zeros are left out, the same bits (products/sparse.py)
        masks = np.empty((n, (m + 63) // 64), dtype=np.uint64)
        if sparse_enough(row_masks(masks, dZ), n, m, SPARSE_DENSITY):
            width = packed_width(k, sparse_widths(dW)[0], work < PARALLEL_WORK or not THREADED)
            if work < PARALLEL_WORK:
                for t in range((k + width - 1) // width):
                    _weight_gradients_sparse_tile(dW, dZ, masks, A_prev, t * width, min(t * width + width, k), inv_m)
            else:
                for t in prange((k + width - 1) // width):
                    _weight_gradients_sparse_tile(dW, dZ, masks, A_prev, t * width, min(t * width + width, k), inv_m)
            _bias_gradient(db, dZ, inv_m)
            return
    if GRADIENT_PACKED and plan == PACKED:  # tiles of columns of dW
        width = packed_width(k, MICRO_BYTES // dW.itemsize, work < PARALLEL_WORK or not THREADED)
        if work < PARALLEL_WORK:
            for t in range((k + width - 1) // width):
                _weight_gradients_packed_tile(dW, dZ, A_prev, t * width, min(t * width + width, k), inv_m)
        else:
            for t in prange((k + width - 1) // width):
                _weight_gradients_packed_tile(dW, dZ, A_prev, t * width, min(t * width + width, k), inv_m)
        _bias_gradient(db, dZ, inv_m)
        return
    if not (GRADIENT_DOT and plan == BLOCKED_DOT):
        return
    # BLOCKED_DOT, column blocks: whole groups of 4 columns, at most 16 groups
    # a block, the number of blocks a multiple of 8 (when k allows) and the
    # groups spread evenly over them, so that 2, 4 or 8 threads get equal work
    groups = (k + 3) // 4
    nb = (groups + 15) // 16
    nb = min((nb + 7) // 8 * 8, groups)
    if n == 1:  # one unit: four rows of A_prev at a time (_one_unit_block), the same column blocks
        if work < PARALLEL_WORK:
            for t in range(nb):
                _one_unit_block(dW, dZ, A_prev, min(4 * (t * groups // nb), k), min(4 * ((t + 1) * groups // nb), k),
                                inv_m)
        else:
            for t in prange(nb):
                _one_unit_block(dW, dZ, A_prev, min(4 * (t * groups // nb), k), min(4 * ((t + 1) * groups // nb), k),
                                inv_m)
    elif work < PARALLEL_WORK:
        for t in range(nb):
            _weight_gradients_block(dW, dZ, A_prev, min(4 * (t * groups // nb), k),
                                    min(4 * ((t + 1) * groups // nb), k), inv_m)
    else:
        for t in prange(nb):
            _weight_gradients_block(dW, dZ, A_prev, min(4 * (t * groups // nb), k),
                                    min(4 * ((t + 1) * groups // nb), k), inv_m)
    _bias_gradient(db, dZ, inv_m)


@register_jitable(**HELPER_OPTIONS)
def _input_gradient_simple_tile(dA_prev, dZ, W, t):
    """SIMPLE tile t: dA_prev[p, j0:j1] = sum_i W[i, p] dZ[i, j0:j1]."""
    n, k = W.shape
    m = dZ.shape[1]
    jb = t // k
    p = t - jb * k
    j0 = jb * BLOCK
    j1 = min(j0 + BLOCK, m)
    zero = dA_prev.dtype.type(0.0)
    da = dA_prev[p, j0:j1]
    for j in range(da.shape[0]):
        da[j] = zero
    for i in range(n):
        w = W[i, p]
        dz = dZ[i, j0:j1]
        for j in range(da.shape[0]):
            da[j] += w * dz[j]


@register_jitable(**HELPER_OPTIONS)
def _input_gradient_outer(dA_prev, dZ, W):
    """One output unit (n = 1): dA_prev[p] = W[0, p] dZ[0], an outer
    product, one pass over dA_prev."""
    dz = dZ[0]
    for p in range(dA_prev.shape[0]):
        w = W[0, p]
        da = dA_prev[p]
        for j in range(da.shape[0]):
            da[j] = w * dz[j]


@register_jitable(**HELPER_OPTIONS)
def _input_gradient_block(dA_prev, dZ, WT, t, ngroups, rows):
    """BLOCKED_ROWS tile t: dA_prev[p0:p1, j0:j1] = W^T[p0:p1, :] dZ[:, j0:j1]."""
    k, m = dA_prev.shape
    jb = t // ngroups
    g = t - jb * ngroups
    p0 = g * rows
    p1 = min(p0 + rows, k)
    j0 = jb * JB
    j1 = min(j0 + JB, m)
    zero = dA_prev.dtype.type(0.0)
    for p in range(p0, p1):
        da = dA_prev[p, j0:j1]
        for j in range(da.shape[0]):
            da[j] = zero
    product_tile(dA_prev, WT, dZ, p0, p1, j0, j1)


@register_jitable(**HELPER_OPTIONS)
def _input_gradient_sparse_tile(dA_prev, dZT, masks, W, p0, p1):
    """PACKED tile for a mostly-zero dZ: dA_prev[p0:p1] = (dZ^T W[:, p0:p1])^T,
    dZ's zeros left out (products/sparse.py: the packed tile's bits)."""
    sparse_tile_transposed(dA_prev, dZT, masks, W, p0, p1, False)


@register_jitable(**HELPER_OPTIONS)
def _input_gradient_packed_tile(dA_prev, dZ, WT, j0, j1):
    """PACKED tile: dA_prev[:, j0:j1] = W^T dZ[:, j0:j1]."""
    packed_tile(dA_prev, WT, dZ, False, j0, j1, True, dA_prev.dtype.type(1.0))


def input_gradient(dA_prev, dZ, W):
    """dA_prev = W^T dZ (plans.input_gradient_plan), tiled over (examples,
    input units); every tile owns its cells of dA_prev. PACKED over a dZ
    with few nonzero cells (options.SPARSE_DENSITY_INPUT, the dtype's; a
    mini-batch, n, m <= MICRO_KC, and k at least half a sparse panel)
    leaves them out, in tiles of rows of dA_prev (products/sparse.py). Serial below
    PARALLEL_WORK multiply-adds; there, for one unit (n = 1), an outer
    product.

    dA_prev (k, m) out; dZ (n, m); W (n, k).
    """
    n, k = W.shape
    m = dZ.shape[1]
    work = n * k * m
    plan = input_gradient_plan(n, k, m, PLANS)
    if plan == COURSE:
        course.input_gradient(dA_prev, dZ, W)
        return
    if plan == SIMPLE and n == 1:
        _input_gradient_outer(dA_prev, dZ, W)
        return
    if plan == SIMPLE:
        nblocks = (m + BLOCK - 1) // BLOCK
        for t in range(nblocks * k):
            _input_gradient_simple_tile(dA_prev, dZ, W, t)
        return
    density = SPARSE_DENSITY_INPUT[0] if dZ.itemsize == 8 else SPARSE_DENSITY_INPUT[1]
    if INPUT_PACKED and plan == PACKED and max(n, m) <= MICRO_KC and k >= sparse_widths(dA_prev)[1] and \
            may_be_sparse(dZ, density):
        # few of dZ's cells nonzero: the sum over units leaves them out, a
        # tile of rows of dA_prev at a time (products/sparse.py)
        dZT = np.empty((m, n), dtype=dZ.dtype)
        pack_panel(dZT, dZ, 0, n, n, True)
        masks = np.empty((m, (n + 63) // 64), dtype=np.uint64)
        if sparse_enough(row_masks(masks, dZT), m, n, density):
            width = packed_width(k, sparse_widths(dA_prev)[0], work < PARALLEL_WORK or not THREADED)
            if work < PARALLEL_WORK:
                for t in range((k + width - 1) // width):
                    _input_gradient_sparse_tile(dA_prev, dZT, masks, W, t * width, min(t * width + width, k))
            else:
                for t in prange((k + width - 1) // width):
                    _input_gradient_sparse_tile(dA_prev, dZT, masks, W, t * width, min(t * width + width, k))
            return
    if INPUT_PACKED and plan == PACKED:  # tiles of examples
        WT = transposed(W)  # k x n: rows of the micro-kernels' A
        width = packed_width(m, MICRO_BYTES // dA_prev.itemsize, work < PARALLEL_WORK or not THREADED)
        if work < PARALLEL_WORK:
            for t in range((m + width - 1) // width):
                _input_gradient_packed_tile(dA_prev, dZ, WT, t * width, min(t * width + width, m))
        else:
            for t in prange((m + width - 1) // width):
                _input_gradient_packed_tile(dA_prev, dZ, WT, t * width, min(t * width + width, m))
        return
    if not (INPUT_ROWS and plan == BLOCKED_ROWS):
        return
    WT = W.T
    njb, ngroups, rows = product_tiles(k, m)
    if work < PARALLEL_WORK:
        for t in range(njb * ngroups):
            _input_gradient_block(dA_prev, dZ, WT, t, ngroups, rows)
        return
    for t in prange(njb * ngroups):
        _input_gradient_block(dA_prev, dZ, WT, t, ngroups, rows)


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
