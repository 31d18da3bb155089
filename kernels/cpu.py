"""Backends "numba" and "parallel": ``kernels.loops`` compiled twice.

The same Python functions (the same ``__code__`` objects) are compiled
serially with ``@njit`` and in parallel with ``@njit(parallel=True)``, where
``prange`` becomes a parallel loop over all cores. Uncompiled, they are
backend "python". One source, three speeds.

Two details make this safe:

- **Own cache entries.** Numba's on-disk cache names an entry after the
  function's qualified name and line, not after the compile options, so a
  serial and a parallel compilation of one function object would share one
  entry: whichever compiled first would silently serve both, and "parallel"
  would run serially. Each variant is therefore a fresh function object over
  the same code, named ``<name>__numba`` / ``<name>__parallel``, so each has its
  own cache file (``tests/test_cpu_compile.py`` proves it).
- **Own globals.** A composite kernel (``linear_backward`` calls
  ``weight_gradients``) must call the compiled callee of its own variant, so
  each variant's functions see a copy of the module globals in which the
  callees are that variant's dispatchers.
"""

import types

import numba

from . import loops

# 'reassoc' lets LLVM reorder the sums of the reductions (dW, db, dot, cost)
# into SIMD lanes, and 'contract' lets it fuse a*b+c into one FMA. Both change
# results only by rounding. No 'nnan'/'ninf': NaN must survive so that
# training can detect divergence.
FASTMATH = {"reassoc", "contract"}

SERIAL_OPTIONS = dict(cache=True, nogil=True, error_model="numpy", fastmath=FASTMATH)
PARALLEL_OPTIONS = dict(SERIAL_OPTIONS, parallel=True)

# Kernels that only call other kernels (each callee runs its own parallel
# loops); compiled without parallel=True, which they would have nothing to apply to.
COMPOSITES = frozenset({"linear_backward", "linear_activation_backward"})

# Compiled in this order: a kernel's callees come before it.
KERNEL_NAMES = (
    "linear_forward",
    "linear_activation_forward",
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


def _variant(func, suffix, namespace):
    """A new function object over ``func``'s very code, named ``name + suffix``
    and resolving globals in ``namespace``."""
    g = types.FunctionType(func.__code__, namespace, func.__name__ + suffix,
                           func.__defaults__, func.__closure__)
    g.__qualname__ = func.__qualname__ + suffix
    g.__module__ = func.__module__
    g.__doc__ = func.__doc__
    return g


def compile_loops(suffix, options, names=KERNEL_NAMES, module=loops, extra=None):
    """Compile ``module``'s kernels ``names`` with ``numba.njit(**options)``.

    Returns a ``SimpleNamespace`` of dispatchers; ``d.py_func.__code__`` is the
    code object of ``module``'s function. ``extra`` (a dict) is laid over the
    module's globals: loop code outside this package (the model's training
    loop) passes ``vars(numba_kernels)`` so that it calls that variant's kernels.
    """
    namespace = dict(vars(module))
    namespace.update(extra or {})
    compiled = {}
    for name in names:
        opts = dict(options, parallel=False) if name in COMPOSITES else options
        dispatcher = numba.njit(**opts)(_variant(getattr(module, name), suffix, namespace))
        namespace[name] = dispatcher  # later kernels call this variant
        compiled[name] = dispatcher
    return types.SimpleNamespace(**compiled)


numba_kernels = compile_loops("__numba", SERIAL_OPTIONS)
parallel_kernels = compile_loops("__parallel", PARALLEL_OPTIONS)

# backend name -> (suffix, options, kernels) for code that compiles more loops
# against one variant (see compile_loops' ``extra``).
VARIANTS = {
    "numba": ("__numba", SERIAL_OPTIONS, numba_kernels),
    "parallel": ("__parallel", PARALLEL_OPTIONS, parallel_kernels),
}
