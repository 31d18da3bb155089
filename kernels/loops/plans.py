"""The engine's plans for the three matrix products, named once.

Every plan is plain loops; each product chooses one by its shape (below).

    COURSE        the course's loops (course.py): per example, per unit; for the tiniest products
    SIMPLE        the same loops reordered so the innermost walks a contiguous row (SIMD)
    BLOCKED_ROWS  rows_update: a 4 x 4 block of multipliers in registers, the inner loop along rows (products/blocked.py)
    BLOCKED_DOT   dot4x4: 4 x 4 dot products along contiguous rows, for long reductions (products/blocked.py)
    PACKED        packed panels, MR x NR micro-kernels holding their block in vector registers (products/packed.py)

The thresholds (COURSE_WORK, BLOCKED_WORK, MICRO_MIN_ROWS, ...) are in
kernels/options.py with what each trades.

Plan sets. The compiled code of BLOCKED_ROWS, BLOCKED_DOT and PACKED is most
of a kernel's compile time, and a small network reaches few of them (the
planar network: BLOCKED_ROWS in its forward pass, BLOCKED_DOT for one dW,
nothing else). So the kernels can be compiled for a plan set: a bit mask
with a bit per product (FORWARD, WEIGHT_GRADIENTS, INPUT_GRADIENT) and plan
(``plan_bit``; COURSE and SIMPLE always in). A kernel's module sees the set
as globals (``plan_globals``: PLANS, and FORWARD_ROWS, GRADIENT_PACKED, ...
one flag per product and plan) and Numba prunes a branch ``if
FORWARD_PACKED and ...`` before it types it, so that plan's helpers are
never compiled. A shape whose plan is not in the set gets the next best one
that is (SIMPLE at worst: correct for every shape). ``kernels.cpu`` compiles
a set; ``plans_needed`` says which set a network's shapes reach and
``plan_tier`` rounds it up to one of two (the training program compiles
that). The PARALLEL bit is not a plan: it says some loop is big enough
for threads (without it the parallel backend runs the serial program);
nor is FIRST_LAYER (the training loop's fused first layer).
"""

from numba.extending import register_jitable

from ..options import (BLOCK, BLOCKED_WORK, COURSE_WORK, DOT_FORM_K, FUSED_FIRST_UNITS, HELPER_OPTIONS, JB,
                       MICRO_BYTES, MICRO_LONG_K, MICRO_LONG_K_ROWS, MICRO_MIN_K, MICRO_MIN_ROWS, PARALLEL_ELEMENTS,
                       PARALLEL_WORK)
from .products.blocked import product_tiles
from .products.packed import packed_width

COURSE = 0
SIMPLE = 1
BLOCKED_ROWS = 2
BLOCKED_DOT = 3
PACKED = 4
PLAN_NAMES = ("COURSE", "SIMPLE", "BLOCKED_ROWS", "BLOCKED_DOT", "PACKED")


# The products, for plan sets.
FORWARD = 0           # Z = W A_prev + b
WEIGHT_GRADIENTS = 1  # dW = dZ A_prev^T / m
INPUT_GRADIENT = 2    # dA_prev = W^T dZ
PRODUCTS = (FORWARD, WEIGHT_GRADIENTS, INPUT_GRADIENT)
# Each product's blocked form: the plan PACKED falls back to.
BLOCKED_FORMS = {FORWARD: (BLOCKED_ROWS, BLOCKED_DOT), WEIGHT_GRADIENTS: (BLOCKED_DOT,),
                 INPUT_GRADIENT: (BLOCKED_ROWS,)}
# plan_globals' flag names: (prefix of the product, suffix of the plan).
_FLAG_PRODUCTS = ("FORWARD", "GRADIENT", "INPUT")
_FLAG_PLANS = {BLOCKED_ROWS: "ROWS", BLOCKED_DOT: "DOT", PACKED: "PACKED"}


@register_jitable(**HELPER_OPTIONS)
def plan_bit(product, plan):
    """The bit of ``plan`` for ``product`` in a plan set."""
    return 1 << (5 * product + plan)


ALWAYS = sum(plan_bit(p, COURSE) | plan_bit(p, SIMPLE) for p in PRODUCTS)
# Not a plan: some loop of the run is big enough for threads (PARALLEL_WORK
# multiply-adds, PARALLEL_ELEMENTS cells). Without it the "parallel"
# backend's loops would all take their serial branches: it runs (and
# compiles) the "numba" backend's code, which is the same.
PARALLEL = 1 << 15
# Not a plan of one product either: full-batch training fuses the first
# layer's dW, its step and the next forward pass into one pass over X
# (first_layer.py) where first_layer_fused says so.
FIRST_LAYER = 1 << 16
ALL_PLANS = (ALWAYS | sum(plan_bit(p, q) for p in PRODUCTS for q in BLOCKED_FORMS[p] + (PACKED,)) | PARALLEL
             | FIRST_LAYER)


# The smaller of the two sets networks are compiled for (plan_tier): every
# plan but PACKED, no threads.
SMALL_PLANS = ALWAYS | sum(plan_bit(p, q) for p in PRODUCTS for q in BLOCKED_FORMS[p])


def plan_tier(plans):
    """The set a network that reaches ``plans`` is compiled for: SMALL_PLANS
    when ``plans`` is within it (small networks: no packed products, no
    threads), else ALL_PLANS. Two sets, not one per network: a process that
    trains several networks (a benchmark, a lesson) compiles at most two
    training programs per backend and dtype."""
    return SMALL_PLANS if (plans | ALWAYS) & ~SMALL_PLANS == 0 else ALL_PLANS


# The kernel of each product: its prange loops are in its blocked and packed
# plans' branches (and the one-unit forward's, which the sets with a blocked
# forward plan compile on threads; SIMPLE's other work is below PARALLEL_WORK).
PRODUCT_KERNELS = {"linear_activation_forward": FORWARD, "weight_gradients": WEIGHT_GRADIENTS,
                   "input_gradient": INPUT_GRADIENT}


def runs_in_parallel(plans, kernel):
    """Whether ``kernel`` compiled for ``plans`` has a parallel loop (False:
    a product kernel without its blocked and packed plans)."""
    product = PRODUCT_KERNELS.get(kernel)
    return product is None or any(plans & plan_bit(product, q) for q in BLOCKED_FORMS[product] + (PACKED,))


def plan_globals(plans):
    """The globals a kernel compiled for plan set ``plans`` sees (see above):
    PLANS, and FORWARD_ROWS, FORWARD_DOT, FORWARD_PACKED, GRADIENT_DOT,
    GRADIENT_PACKED, INPUT_ROWS, INPUT_PACKED: whether the set has that
    product's plan; FUSED_FIRST: whether it has FIRST_LAYER."""
    plans |= ALWAYS
    flags = {f"{_FLAG_PRODUCTS[p]}_{_FLAG_PLANS[q]}": bool(plans & plan_bit(p, q))
             for p in PRODUCTS for q in BLOCKED_FORMS[p] + (PACKED,)}
    return dict(flags, PLANS=plans, FUSED_FIRST=bool(plans & FIRST_LAYER))


def describe_plans(plans):
    """A plan set in words: 'forward SIMPLE+BLOCKED_ROWS, dW ..., dA_prev ...'."""
    names = ("forward", "dW", "dA_prev")
    return ", ".join(f"{names[p]} " + "+".join(PLAN_NAMES[q] for q in range(5) if plans & plan_bit(p, q))
                     for p in PRODUCTS) + (", parallel loops" if plans & PARALLEL else ", serial loops") + (
        ", fused first layer" if plans & FIRST_LAYER else "")


@register_jitable(**HELPER_OPTIONS)
def product_plan(rows, reduction, work, blocked, plans, product):
    """The plan of a product with ``rows`` output rows, a reduction of length
    ``reduction`` and ``work`` multiply-adds: COURSE, SIMPLE, PACKED (rows >=
    MICRO_MIN_ROWS and reduction >= MICRO_MIN_K: enough rows to repay the
    packing; or rows >= MICRO_LONG_K_ROWS and reduction >= MICRO_LONG_K: a
    product bound by reading its operands, see kernels/options.py), else
    ``blocked`` (the product's register-blocked form). A plan not in the set
    ``plans`` for ``product`` falls back: PACKED to ``blocked``, that to SIMPLE."""
    if work <= COURSE_WORK:
        return COURSE
    if work < BLOCKED_WORK:
        return SIMPLE
    enough_rows = rows >= MICRO_MIN_ROWS or (rows >= MICRO_LONG_K_ROWS and reduction >= MICRO_LONG_K)
    if enough_rows and reduction >= MICRO_MIN_K and plans & plan_bit(product, PACKED):
        return PACKED
    if plans & plan_bit(product, blocked):
        return blocked
    return SIMPLE


@register_jitable(**HELPER_OPTIONS)
def forward_plan(n, k, m, nr, plans=ALL_PLANS, serial=False):
    """How linear_forward splits Z (n, m) = W (n, k) A_prev (k, m) + b:
    (plan, tiles, width, groups, rows).

    COURSE: one tile. SIMPLE: tiles of one unit by BLOCK examples; for a
    layer of one unit with a long reduction (k >= DOT_FORM_K, at any size)
    the whole row, its reduction in parts on threads above PARALLEL_WORK
    (forward.py's _one_unit_rows; tiles etc. unused). PACKED:
    tiles of all n rows by ``width`` columns, ``nr`` the panel width: one
    a thread of the pool, or more where 256 columns a tile need more
    (packed_width).
    BLOCKED_DOT (k >= DOT_FORM_K): tiles of all n rows by ``width`` columns,
    a multiple of 4, at least 8 tiles when m allows (unless ``serial``: one
    thread runs them all), so the cores share the work and each column of
    A_prev is packed once. BLOCKED_ROWS otherwise:
    tiles of JB columns by ``rows`` rows, ``groups`` row groups."""
    plan = product_plan(n, k, n * k * m, BLOCKED_DOT if k >= DOT_FORM_K else BLOCKED_ROWS, plans, FORWARD)
    if plan == BLOCKED_DOT and n == 1:
        plan = SIMPLE  # one unit: dot4x4 would leave 3 of its 4 rows empty (forward.py: _one_unit_rows)
    if plan == COURSE:
        return COURSE, 1, m, 1, n
    if plan == SIMPLE:
        return SIMPLE, ((m + BLOCK - 1) // BLOCK) * n, BLOCK, n, 1
    if plan == PACKED:
        width = packed_width(m, nr, serial)
        return PACKED, (m + width - 1) // width, width, 1, n
    if plan == BLOCKED_DOT:
        nt = (m + JB - 1) // JB if serial else max((m + JB - 1) // JB, min(8, (m + 15) // 16))
        width = ((m + nt - 1) // nt + 3) // 4 * 4
        return BLOCKED_DOT, (m + width - 1) // width, width, 1, n
    njb, ngroups, rows = product_tiles(n, m)
    return BLOCKED_ROWS, njb * ngroups, JB, ngroups, rows


@register_jitable(**HELPER_OPTIONS)
def weight_gradients_plan(n, k, m, plans=ALL_PLANS):
    """The plan of dW (n, k) = dZ (n, m) A_prev^T (reduction over m): COURSE,
    SIMPLE (rows of dW; also for one unit and a batch of at most BLOCK
    examples: dot4x4's 16 horizontal sums a block, 3 of its 4 rows empty,
    cost more than so short a reduction saves), PACKED or BLOCKED_DOT."""
    plan = product_plan(n, m, n * k * m, BLOCKED_DOT, plans, WEIGHT_GRADIENTS)
    if plan == BLOCKED_DOT and n == 1 and m <= BLOCK and n * k * m < PARALLEL_WORK:
        return SIMPLE
    return plan


@register_jitable(**HELPER_OPTIONS)
def input_gradient_plan(n, k, m, plans=ALL_PLANS):
    """The plan of dA_prev (k, m) = W^T (k, n) dZ (n, m) (reduction over n):
    COURSE, SIMPLE (also for one unit, n = 1, below PARALLEL_WORK: an outer
    product, one pass), PACKED or BLOCKED_ROWS."""
    plan = product_plan(k, n, n * k * m, BLOCKED_ROWS, plans, INPUT_GRADIENT)
    if plan == BLOCKED_ROWS and n == 1 and n * k * m < PARALLEL_WORK:
        return SIMPLE
    return plan


@register_jitable(**HELPER_OPTIONS)
def first_layer_fused(n, n_x):
    """Whether full-batch training fuses a first layer of ``n`` units over
    ``n_x`` inputs into one pass over X (first_layer.py): a
    long reduction (n_x >= MICRO_LONG_K), so that both of its products are
    bound by reading X, and fewer than FUSED_FIRST_UNITS units (more make the
    products dense enough for the packed micro-kernels, which do their
    arithmetic in fewer instructions than the fused pass's 4 x 4 blocks)."""
    return n < FUSED_FIRST_UNITS and n_x >= MICRO_LONG_K


def plans_needed(layer_dims, ms, itemsize):
    """The plan set (a bit mask) that training and running a network of
    ``layer_dims`` = [n0, n1, ..., nL] on batches of each m in ``ms`` reaches
    in the products, with float ``itemsize`` bytes; with the PARALLEL bit
    when a product, an activation or a parameter is big enough for threads,
    and FIRST_LAYER where full-batch training fuses its first layer."""
    nr = MICRO_BYTES // itemsize
    plans = ALWAYS
    for m in ms:
        for l in range(1, len(layer_dims)):
            n, k = layer_dims[l], layer_dims[l - 1]
            if n * k * m >= PARALLEL_WORK or max(n * m, k * m, n * k) >= PARALLEL_ELEMENTS:
                plans |= PARALLEL
            plans |= plan_bit(FORWARD, forward_plan(n, k, m, nr)[0])
            plans |= plan_bit(WEIGHT_GRADIENTS, weight_gradients_plan(n, k, m))
            if l > 1:  # dA of the input layer is never computed
                plans |= plan_bit(INPUT_GRADIENT, input_gradient_plan(n, k, m))
    if first_layer_fused(layer_dims[1], layer_dims[0]):
        plans |= FIRST_LAYER
    return plans
