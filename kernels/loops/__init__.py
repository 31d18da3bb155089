"""The explicit-loop formulation: every op written ONCE, as loops over units and examples.

Run as-is by the interpreter this package is backend "python". ``kernels.cpu``
compiles the very same functions with Numba, serially ("numba") and in
parallel ("parallel"): ``numba.prange`` is plain ``range`` when the function is
not compiled, so one source gives three speeds.

Read in this order:

    course.py       the course's loops as on its slides (per example, per unit):
                    the reference, and the path for the tiniest products
    activations.py  g and g' on scalars and rows; the elementwise ops
    forward.py      linear_forward, linear_activation_forward
    backward.py     weight_gradients, input_gradient, linear_(activation_)backward
    cost.py         cross_entropy (binary and categorical), cross_entropy_backward, softmax
    update.py       gradient_step, optimizer_step, dot, all_finite, gather_columns, gather_batches
    first_layer.py  first_layer_step: the first layer's dW, step and next forward in one pass over X
    draws.py        counter-based draws: the mini-batch permutation, dropout masks
    plans.py        the engine's plans for the products, one line each, and how
                    a shape chooses one
    products/       the engine: blocked.py (register blocking), packed.py
                    (packed panels), micro.py (the micro-kernels)
    views.py        flat, the 1-D view the elementwise loops walk; borrowed views
                    and lists of them (tables of addresses), which count no references
    team.py         atomics and items taken in phases: how model/team.py's threads meet
    memory.py       hints to the memory system: prefetches, streaming stores

Shape key (the course's notation):
    m      number of examples (examples are columns)
    n      units of this layer, n[l]
    k      units of the previous layer, n[l-1]
    Z, A, dZ, dA       (n, m)
    A_prev, dA_prev    (k, m)
    W, dW              (n, k)
    b, db              (n, 1)
    AL, Y, dAL         (1, m)

Conventions of every kernel here (llm.c's): outputs first, then inputs, then
sizes/options. Kernels do NOT check their arguments: the public ops in
``kernels.backend`` validate shapes, dtypes and layouts first, so compiled code
never sees an inconsistent shape. Every array is C-contiguous.

Habits that make these loops fast once compiled:
- the innermost loop walks a contiguous row (``z[j]``, ``a[j]``), so LLVM can
  use SIMD; rows are taken as 1-D slices so the loop index starts at 0 (a
  ``range(j0, j1)`` index into ``A[i, j]`` keeps Numba's negative-index
  wraparound check, which blocks vectorization);
- every ``prange`` iteration owns the cells it writes (no races);
- constants are made in the arrays' own dtype (``X.dtype.type(...)``) so a
  float32 loop is never promoted to float64 by a float64 literal;
- below PARALLEL_WORK multiply-adds (PARALLEL_ELEMENTS elements for the
  elementwise ops, the cost and dot) the parallel variant runs its serial
  loop: starting threads would cost more than they save;
- tanh, sigmoid, the softmax's exp and the cost's log use the vectorizable
  approximations of ``kernels.approx`` (the C math library with the EXACT
  bit of an activation code, or ``exact=True`` for the cost).

Settings (compile flags, activation codes, thresholds) live in
``kernels.options``; they are re-exported here for the code that reads them.
"""

from ..options import (ACTIVATION_CODES, BLOCK, BLOCKED_WORK, COURSE_WORK, DOT_FORM_K, EXACT, FUSED_FIRST_UNITS,
                       HELPER_OPTIONS, JB, JR_BYTES, KC, LEAKY_RELU, LEAKY_SLOPE, LINEAR, MICRO_BYTES, MICRO_KC, MICRO_LONG_K,
                       MICRO_LONG_K_ROWS, MICRO_MIN_K, MICRO_MIN_ROWS, MICRO_ROWS, OUTPUTS, PARALLEL_ELEMENTS,
                       PARALLEL_WORK, QB, RELU, SIGMOID, SOFTMAX, TANH)
from . import course
from .activations import (activate_row, activation_backward, activation_backward_from_output, activation_forward,
                          activation_scalar, backprop_row, derivative_scalar, sigmoid_scalar)
from .backward import input_gradient, linear_activation_backward, linear_backward, weight_gradients
from .cost import cross_entropy, cross_entropy_backward, softmax
from .forward import linear_activation_forward, linear_forward
from .plans import PLAN_NAMES, forward_plan, input_gradient_plan, plans_needed, weight_gradients_plan
from .products.micro import MICRO_SOURCES, micro_block
from .draws import dropout, hash3, permutation
from .first_layer import first_layer_step
from .update import all_finite, batch_of, dot, gather_batches, gather_columns, gradient_step, optimizer_step
from .views import flat
from . import backward, first_layer, forward, update

# The loop kernels, callees before callers (kernels.cpu compiles them in this
# order): the public ops' (kernels.backend.Ops calls them) and those the
# training loop needs from every backend (model.training).
PUBLIC_KERNELS = (
    "linear_activation_forward",
    "linear_forward",
    "activation_forward",
    "activation_backward",
    "weight_gradients",
    "input_gradient",
    "linear_backward",
    "linear_activation_backward",
    "cross_entropy",
    "cross_entropy_backward",
    "gradient_step",
    "dot",
)
TRAINING_KERNELS = (
    "activation_backward_from_output",
    "all_finite",
    "optimizer_step",
    "gather_columns",
    "gather_batches",
    "permutation",
    "dropout",
    "softmax",
    "first_layer_step",
)
KERNEL_NAMES = PUBLIC_KERNELS + TRAINING_KERNELS

__all__ = list(KERNEL_NAMES) + [
    "ACTIVATION_CODES", "OUTPUTS", "SOFTMAX", "SIGMOID", "TANH", "RELU", "LEAKY_RELU", "LINEAR", "LEAKY_SLOPE", "EXACT",
    "BLOCK", "BLOCKED_WORK", "COURSE_WORK", "DOT_FORM_K", "HELPER_OPTIONS", "JB", "JR_BYTES", "KC",
    "FUSED_FIRST_UNITS", "MICRO_BYTES", "MICRO_KC", "MICRO_LONG_K", "MICRO_LONG_K_ROWS", "MICRO_MIN_K",
    "MICRO_MIN_ROWS", "MICRO_ROWS",
    "PARALLEL_ELEMENTS",
    "PARALLEL_WORK", "QB", "course", "activate_row", "activation_scalar", "backprop_row", "derivative_scalar",
    "sigmoid_scalar", "PLAN_NAMES", "forward_plan", "input_gradient_plan", "weight_gradients_plan",
    "MICRO_SOURCES", "micro_block", "flat", "batch_of", "KERNEL_NAMES", "PUBLIC_KERNELS", "TRAINING_KERNELS", "hash3",
]

# The tiles, by defining module: kernels.cpu compiles them once and the
# kernels above call them through their addresses (kernels.external): the
# products' (most of their compile time), and the optimizers' block, so
# that every process runs one compilation of it (README, "Fresh and
# cached code alike").
TILE_KERNELS = {forward: ("_rows_tile", "_dot_tile", "_packed_tile", "_sparse_tile"),
                backward: ("_weight_gradients_block", "_weight_gradients_packed_tile", "_weight_gradients_sparse_tile",
                           "_input_gradient_block", "_input_gradient_packed_tile",
                           "_input_gradient_sparse_tile"),
                first_layer: ("_first_layer_part", "_first_layer_end"),
                update: ("_optimizer_block",)}
# Tiles compiled at their first call, not with their callers
# (kernels.external's lazy): the sparse tiles run only where a mini-batch's
# operand is mostly zeros (behind a relu), and compile for seconds.
LAZY_TILES = ("_sparse_tile", "_weight_gradients_sparse_tile", "_input_gradient_sparse_tile")
