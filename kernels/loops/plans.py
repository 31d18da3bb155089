"""The engine's plans for the three matrix products, named once.

Every plan is plain loops; each product chooses one by its shape (below).

    COURSE        the course's loops (course.py): per example, per unit; for the tiniest products
    SIMPLE        the same loops reordered so the innermost walks a contiguous row (SIMD)
    BLOCKED_ROWS  rows_update: a 4 x 4 block of multipliers in registers, the inner loop along rows (products/blocked.py)
    BLOCKED_DOT   dot4x4: 4 x 4 dot products along contiguous rows, for long reductions (products/blocked.py)
    PACKED        packed panels, MR x NR micro-kernels holding their block in vector registers (products/packed.py)

The thresholds (COURSE_WORK, BLOCKED_WORK, MICRO_MIN_ROWS, ...) are in
kernels/options.py with what each trades.
"""

from numba.extending import register_jitable

from ..options import (BLOCK, BLOCKED_WORK, COURSE_WORK, DOT_FORM_K, HELPER_OPTIONS, JB, MICRO_MIN_K,
                       MICRO_MIN_ROWS)
from .products.blocked import product_tiles
from .products.packed import packed_width

COURSE = 0
SIMPLE = 1
BLOCKED_ROWS = 2
BLOCKED_DOT = 3
PACKED = 4
PLAN_NAMES = ("COURSE", "SIMPLE", "BLOCKED_ROWS", "BLOCKED_DOT", "PACKED")


@register_jitable(**HELPER_OPTIONS)
def product_plan(rows, reduction, work, blocked):
    """The plan of a product with ``rows`` output rows, a reduction of length
    ``reduction`` and ``work`` multiply-adds: COURSE, SIMPLE, PACKED (rows >=
    MICRO_MIN_ROWS and reduction >= MICRO_MIN_K: enough rows to repay the
    packing), else ``blocked`` (the product's register-blocked form)."""
    if work <= COURSE_WORK:
        return COURSE
    if work < BLOCKED_WORK:
        return SIMPLE
    if rows >= MICRO_MIN_ROWS and reduction >= MICRO_MIN_K:
        return PACKED
    return blocked


@register_jitable(**HELPER_OPTIONS)
def forward_plan(n, k, m, nr):
    """How linear_forward splits Z (n, m) = W (n, k) A_prev (k, m) + b:
    (plan, tiles, width, groups, rows).

    COURSE: one tile. SIMPLE: tiles of one unit by BLOCK examples. PACKED:
    tiles of all n rows by ``width`` columns, ``nr`` the panel width.
    BLOCKED_DOT (k >= DOT_FORM_K): tiles of all n rows by ``width`` columns,
    a multiple of 4, at least 8 tiles when m allows, so the cores share the
    work and each column of A_prev is packed once. BLOCKED_ROWS otherwise:
    tiles of JB columns by ``rows`` rows, ``groups`` row groups."""
    plan = product_plan(n, k, n * k * m, BLOCKED_DOT if k >= DOT_FORM_K else BLOCKED_ROWS)
    if plan == COURSE:
        return COURSE, 1, m, 1, n
    if plan == SIMPLE:
        return SIMPLE, ((m + BLOCK - 1) // BLOCK) * n, BLOCK, n, 1
    if plan == PACKED:
        width = packed_width(m, nr)
        return PACKED, (m + width - 1) // width, width, 1, n
    if plan == BLOCKED_DOT:
        nt = max((m + JB - 1) // JB, min(8, (m + 15) // 16))
        width = ((m + nt - 1) // nt + 3) // 4 * 4
        return BLOCKED_DOT, (m + width - 1) // width, width, 1, n
    njb, ngroups, rows = product_tiles(n, m)
    return BLOCKED_ROWS, njb * ngroups, JB, ngroups, rows


@register_jitable(**HELPER_OPTIONS)
def weight_gradients_plan(n, k, m):
    """The plan of dW (n, k) = dZ (n, m) A_prev^T (reduction over m): COURSE,
    SIMPLE (rows of dW), PACKED or BLOCKED_DOT."""
    return product_plan(n, m, n * k * m, BLOCKED_DOT)


@register_jitable(**HELPER_OPTIONS)
def input_gradient_plan(n, k, m):
    """The plan of dA_prev (k, m) = W^T (k, n) dZ (n, m) (reduction over n):
    COURSE, SIMPLE, PACKED or BLOCKED_ROWS."""
    return product_plan(k, n, n * k * m, BLOCKED_ROWS)
