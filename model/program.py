"""The training loop of ``model.training`` bound to one backend's kernels.

``get_program(ops)`` returns a ``Program``: the functions of ``model.training``
(``forward``, ``backward``, ``fit_chunk``, ``logistic_fit_chunk``, ...) whose bare
kernel names resolve to that backend's raw kernels.

- "numba" / "parallel": compiled with ``kernels.cpu.compile_loops`` against the
  variant's kernels, so ``fit_chunk`` runs whole chunks of iterations in compiled
  code. Lists are ``numba.typed.List``.
- every other backend ("python", "numpy", "cuda", ...): the same functions
  interpreted, calling ``ops.kernels``; lists are Python lists. A backend's
  kernels may provide their own ``activation_backward_from_output`` (dZ, dA, Z,
  A, act); otherwise "numpy" gets a vectorized one and any other backend falls
  back to its ``activation_backward`` (dZ, dA, Z, act). Likewise
  ``all_finite`` (x, zeros) -> bool, the default one ``dot`` with zeros, and
  ``parameters_finite`` (W, b, zeros) -> bool, the default all_finite on each.

``Program.fit_chunk_unguarded`` is ``fit_chunk`` with the per-iteration test of
the parameters switched off (bound with an ``all_finite`` that is always true):
a device backend runs its chunks so and tests once per chunk (``model.network``).
Compiled programs keep the guard (there it is a cheap loop in compiled code):
their ``fit_chunk_unguarded`` is ``fit_chunk``.

The arrays the model hands these functions come from the backend's hooks
(``ops.empty``, ``ops.asarray``), so a device backend keeps them on its device.
"""

import functools
import pathlib
import types

import numpy as np

import kernels
from kernels import loops, threads
from kernels.loops import EXACT, SIGMOID, TANH

from . import training

# Functions of model.training with prange loops (compiled with the variant's
# options) and those that only call kernels (compiled serially: they have no
# loop of their own to parallelize). Callees come before callers.
PARALLEL_LOOPS = ("activation_backward_from_output", "logistic_pass")
DRIVERS = ("forward", "backward", "all_finite", "parameters_finite", "update", "swap_items", "fit_chunk",
           "logistic_gradients", "logistic_fit_chunk")
FUNCTIONS = PARALLEL_LOOPS + DRIVERS

# The kernel names model.training calls.
KERNEL_NAMES = ("linear_activation_forward", "weight_gradients", "input_gradient",
                "activation_backward", "cross_entropy", "gradient_step", "dot")

_programs = {}


def _numpy_activation_backward_from_output(dZ, dA, Z, A, act):
    """Vectorized twin of training.activation_backward_from_output."""
    if act == TANH:
        np.multiply(dA, 1 - A * A, out=dZ)
    elif act == SIGMOID:
        np.multiply(dA, A * (1 - A), out=dZ)
    else:
        from kernels import vectorized
        vectorized.activation_backward(dZ, dA, Z, act)


def _always_finite(x, zeros):
    """all_finite of the unguarded fit_chunk: tests nothing, reads nothing back."""
    return True


def _rebind(func, namespace):
    """``func``'s code with its globals looked up in ``namespace``."""
    g = types.FunctionType(func.__code__, namespace, func.__name__,
                           func.__defaults__, func.__closure__)
    g.__qualname__ = func.__qualname__
    g.__doc__ = func.__doc__
    return g


class Program:
    """``model.training``'s functions bound to the kernels of ``ops``."""

    _act_bits = 0  # OR-ed into activation codes (EXACT: the C math library)

    def __init__(self, ops):
        self.ops = ops
        self.name = ops.name
        self.compiled = False
        try:
            from kernels import cpu
            variant = cpu.VARIANTS.get(ops.name)
            if variant is not None and variant[2] is not ops.kernels:
                variant = None  # an Ops over other kernels that happens to share the name
        except ImportError:  # pragma: no cover - numba is a dependency
            variant = None
        if variant is not None:
            self._compile(cpu, *variant)
        else:
            self._interpret(ops)

    def _compile(self, cpu, suffix, options, variant_kernels):
        import numba

        self.compiled = True
        if options.get("parallel"):
            threads.start_pool()
        # The training loop inlines the kernels: its cache entries depend on
        # the kernels' source as well as its own (see kernels.cpu).
        digest = cpu.source_digest(pathlib.Path(kernels.__file__).parent, pathlib.Path(training.__file__))
        extra = dict(vars(variant_kernels))
        loops = cpu.compile_loops(suffix, options, PARALLEL_LOOPS, training, extra, digest)
        extra.update(vars(loops))
        drivers = cpu.compile_loops(suffix, dict(options, parallel=False), DRIVERS, training, extra, digest)
        for name in FUNCTIONS:
            setattr(self, name, getattr(loops, name, None) or getattr(drivers, name))
        self.fit_chunk_unguarded = self.fit_chunk
        self._typed_list = _typed_list
        self._python_list = _python_list

    def _interpret(self, ops):
        namespace = dict(vars(training))
        for name in KERNEL_NAMES:
            if hasattr(ops.kernels, name):
                namespace[name] = getattr(ops.kernels, name)
        if ops.kernels is loops and ops.exact_math:
            # The interpreted loops with the C math library (the python
            # backend's default): the EXACT bit on every code (see codes())
            # and the cost's exact log.
            self._act_bits = EXACT
            namespace["cross_entropy"] = functools.partial(loops.cross_entropy, exact=True)
        own = getattr(ops.kernels, "activation_backward_from_output", None)
        if own is not None:
            namespace["activation_backward_from_output"] = own
        elif ops.name == "numpy":
            namespace["activation_backward_from_output"] = _numpy_activation_backward_from_output
        elif ops.name != "python":
            def activation_backward_from_output(dZ, dA, Z, A, act):
                namespace["activation_backward"](dZ, dA, Z, act)
            namespace["activation_backward_from_output"] = activation_backward_from_output
        for name in FUNCTIONS:
            if not (name == "activation_backward_from_output" and ops.name != "python"):
                namespace[name] = _rebind(getattr(training, name), namespace)
        # one kernel call instead of a Python loop over every parameter (a
        # backend may bring its own all_finite(x, zeros) -> bool)
        own = getattr(ops.kernels, "all_finite", None)
        namespace["all_finite"] = own if own is not None else _rebind(training.dot_all_finite, namespace)
        own = getattr(ops.kernels, "parameters_finite", None)
        if own is not None:
            namespace["parameters_finite"] = own
        for name in FUNCTIONS:
            setattr(self, name, namespace[name])
        # the same loop without the per-iteration test: every step swaps in its parameters
        unguarded = dict(namespace, all_finite=_always_finite)
        for name in ("update", "fit_chunk"):
            unguarded[name] = _rebind(getattr(training, name), unguarded)
        self.fit_chunk_unguarded = unguarded["fit_chunk"]
        self._typed_list = list
        self._python_list = list

    def list(self, arrays):
        """A list of the backend's arrays in the form the program takes."""
        return self._typed_list(arrays)

    def unlist(self, arrays):
        """A Python list of the arrays of a list made by ``list``."""
        return self._python_list(arrays)

    def codes(self, codes):
        """Activation codes in the form the program takes."""
        if self.compiled:
            return np.asarray(codes, dtype=np.int64)
        return [int(c) | self._act_bits for c in codes]


def _typed_list(arrays):
    """numba.typed.List(arrays), built in compiled code: 4-8x faster than
    the constructor, which types and appends each array from Python (a fit
    makes about ten lists: 0.2-0.3 ms per fit call, as much as 20 planar
    iterations). Arrays of mixed types fall back to the constructor, which
    says what does not match."""
    arrays = tuple(arrays)
    first = arrays[0] if arrays else None
    if not (isinstance(first, np.ndarray) and all(
            type(a) is np.ndarray and a.dtype == first.dtype and a.ndim == first.ndim
            and a.flags.c_contiguous and a.flags.writeable for a in arrays)):
        import numba.typed
        return numba.typed.List(arrays)
    global _list_builder
    if _list_builder is None:
        import numba
        from numba.typed import List

        def list_from_tuple(items):
            out = List()
            for x in items:  # a homogeneous tuple: one item type
                out.append(x)
            return out
        _list_builder = numba.njit(cache=True)(list_from_tuple)
    return _list_builder(arrays)


_list_builder = None


def _python_list(typed):
    """list(typed) for a numba.typed.List of arrays, in compiled code: one
    call instead of one per item from Python (2 us instead of 6 for two
    arrays; fit does this after every chunk)."""
    global _list_reader
    if _list_reader is None:
        import numba

        def python_list_of(items):
            out = [items[0]]
            for i in range(1, len(items)):
                out.append(items[i])
            return out
        _list_reader = numba.njit(cache=True)(python_list_of)
    if len(typed) == 0:
        return []
    return _list_reader(typed)


_list_reader = None


def get_program(ops):
    """The (cached) ``Program`` of backend ``ops``."""
    key = (ops.name, id(ops.kernels))
    if key not in _programs:
        _programs[key] = Program(ops)
    return _programs[key]
