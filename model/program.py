"""The training loop of ``model.training`` (and ``model.logistic_loop``) bound
to one backend's kernels.

``get_program(ops)`` returns a ``Program``: the functions of those modules
(``forward``, ``backward``, ``fit_chunk``, ``logistic_fit_chunk``, ...) whose bare
kernel names resolve to that backend's raw kernels (``KERNEL_NAMES``: every
backend supplies them, ``activation_backward_from_output`` and ``all_finite``
included, and may supply its own ``parameters_finite``).

- "numba" / "parallel": compiled with ``kernels.cpu.compile_loops`` against the
  variant's kernels, so ``fit_chunk`` runs whole chunks of iterations in compiled
  code. Lists are ``numba.typed.List``. "parallel" also has
  ``fit_epochs_team`` (model/team.py: mini-batch steps shared by a team of
  threads), whose members run ``team_member``, compiled on first use
  against the "numba" variant's kernels.
- every other backend ("python", "numpy", "cuda", ...): the same functions
  interpreted, calling ``ops.kernels``; lists are Python lists.

``Program.fit_chunk_unguarded`` is ``fit_chunk`` with the per-iteration test of
the parameters switched off (bound with an ``all_finite`` that is always true):
a device backend runs its chunks so and tests once per chunk (``model.network``).
Compiled programs keep the guard (there it is a cheap loop in compiled code):
their ``fit_chunk_unguarded`` is ``fit_chunk``.

A program is the same for a backend with and without exact math: the caller
passes the activation codes with ``ops.act_bits`` and ``exact=ops.exact_math``.
The arrays the model hands these functions come from the backend's hooks
(``ops.empty``, ``ops.asarray``), so a device backend keeps them on its device.
"""

import hashlib
import pathlib
import types

import numpy as np

from kernels import cpu, threads
from kernels.external import external
from kernels.loops.plans import ALL_PLANS, ALWAYS, PRODUCT_KERNELS

from . import logistic_loop, team, team_run, training

# The training programs' cache entries depend on the kernels' source as well
# as their own (see kernels.cpu): their digests combine kernels.cpu's
# SOURCE_DIGEST (the kernels' source as this process imported it) with
# model's own files, read here, at import, once. Read later (when a program
# is first compiled), an edit or an upgrade of the files in between would
# name a program compiled against this process's (older) kernels after the
# newer source, and a process started after the change would load it and
# look for kernels of the older digest, which it never compiles.
_TRAINING_FILE = pathlib.Path(training.__file__)
TRAINING_DIGEST = cpu.source_digest(_TRAINING_FILE, pathlib.Path(logistic_loop.__file__))
TEAM_DIGEST = cpu.source_digest(_TRAINING_FILE, _TRAINING_FILE.with_name("team.py"))


def _program_digest(own):
    """The digest of a program: the kernels' (SOURCE_DIGEST) and ``own`` (its files')."""
    return hashlib.sha1(f"{cpu.SOURCE_DIGEST} {own}".encode()).hexdigest()[:10]


# Functions of model.training and model.logistic_loop with prange loops
# (compiled with the variant's options) and those that only call kernels
# (compiled serially: they have no loop of their own to parallelize).
# Callees come before callers.
PARALLEL_LOOPS = ("logistic_pass", "examples_as_rows")
DRIVERS = ("forward", "backward", "parameters_finite", "update", "swap_items", "fit_chunk", "forward_dropout",
           "backward_dropout", "optimizer_update", "fit_epochs", "logistic_gradients", "logistic_fit_chunk")
FUNCTIONS = PARALLEL_LOOPS + DRIVERS
# Both modules' functions, as one namespace to compile (each keeps its own
# module's globals: kernels.cpu.compile_loops) or interpret them from.
LOOP_CODE = types.SimpleNamespace(**{name: getattr(training, name, None) or getattr(logistic_loop, name)
                                     for name in FUNCTIONS})
# Drivers inlined into their callers by Numba (inline="always"), not linked
# as functions of their own: Numba optimizes and compiles a function's whole
# call tree again in every caller, so each level it need not compile is saved
# compile time. Called from Python (forward, backward: predict, gradients) they
# compile as usual.
INLINED = ("forward", "backward", "update", "swap_items", "forward_dropout", "backward_dropout",
           "optimizer_update")

# The kernels model.training calls, by their bare names; a backend without
# the mini-batch ones (MINIBATCH_KERNELS) trains full batch with plain
# gradient descent only (model.network says so).
MINIBATCH_KERNELS = ("optimizer_step", "gather_columns", "gather_batches", "permutation", "dropout")
KERNEL_NAMES = ("linear_activation_forward", "weight_gradients", "input_gradient", "activation_backward",
                "activation_backward_from_output", "cross_entropy", "gradient_step", "all_finite")
OPTIONAL_KERNELS = MINIBATCH_KERNELS + ("softmax",)  # the softmax output's (model.network checks)
KERNEL_NAMES += OPTIONAL_KERNELS

_programs = {}


def _missing(backend, name):
    """A stand-in for a kernel the backend does not have (fit checks first)."""
    def missing(*args):
        raise NotImplementedError(f"backend {backend!r} has no {name} kernel")
    return missing


def _always_finite(x, zeros):
    """all_finite of the unguarded fit_chunk: tests nothing, reads nothing back."""
    return True


_compiled = {}

# model.team's compiled functions, callees first: what the team's members
# run (fit_epochs_team, plain Python, starts them), inlined into team_member.
TEAM_INLINED = ("team_gather", "moment_rows", "team_step", "team_forward",
                "team_output", "team_output_step", "output_rows", "team_backward", "team_epoch_end")
TEAM_FUNCTIONS = TEAM_INLINED + ("team_member",)


# The kernels the compiled training loop calls through their addresses: the
# big ones, which LLVM would not inline. A linked callee that stays a call runs
# the callee's own compilation in the process that compiles the loop and the
# loop's copy where the loop comes from the cache: two compilations, other
# roundings (README, "Fresh and cached code alike").
EXTERNAL_KERNELS = tuple(PRODUCT_KERNELS) + ("first_layer_step", "optimizer_step")


def _kernels_called(variant, plans):
    """The kernels the compiled training loop calls, by name: the matrix
    products, the fused first layer and the optimizers' step through their
    addresses (kernels.external: the loop's module does not compile them
    again), the others linked in (small loops LLVM inlines)."""
    called = dict(vars(cpu.variant_kernels(variant, plans)))
    for name in EXTERNAL_KERNELS:
        called[name] = external(called[name])
    return called


def _compiled_functions(variant, plans):
    """model.training's functions compiled against variant ``variant``'s
    kernels for plan set ``plans`` (kernels.cpu.compiled_variant: a set
    without the PARALLEL bit is the "numba" variant's), once per process."""
    key = variant, plans = cpu.compiled_variant(variant, plans)
    if key in _compiled:
        return _compiled[key]
    suffix, options, _ = cpu.VARIANTS[variant]
    if options.get("parallel"):
        threads.start_pool()
    digest = _program_digest(TRAINING_DIGEST)  # the kernels' source and the loops' (above)
    extra = _kernels_called(variant, plans)
    loops = cpu.compile_loops(suffix, options, PARALLEL_LOOPS, LOOP_CODE, extra, digest, plans)
    extra.update(vars(loops))
    serial = dict(options, parallel=False)
    drivers = cpu.compile_loops(suffix, serial, DRIVERS, LOOP_CODE, extra, digest, plans,
                                {name: dict(serial, inline="always") for name in INLINED})
    _compiled[key] = types.SimpleNamespace(**vars(loops), **vars(drivers))
    return _compiled[key]


def _team_functions(plans):
    """model.team's functions for plan set ``plans``, once per process: the
    members run the "numba" variant's kernels and training drivers (one
    thread each), compiled nogil so that the team's threads run at once."""
    plans = cpu.compiled_variant("numba", plans)[1]
    key = ("team", plans)
    if key in _compiled:
        return _compiled[key]
    serial = _compiled_functions("numba", plans)
    extra = dict(_kernels_called("numba", plans),
                 **{name: getattr(serial, name) for name in ("forward", "swap_items")})
    digest = _program_digest(TEAM_DIGEST)
    options = cpu.VARIANTS["numba"][1]
    own = {name: dict(options, inline="always") for name in TEAM_INLINED}
    _compiled[key] = cpu.compile_loops("__team", options, TEAM_FUNCTIONS, team, extra, digest, plans, own)
    return _compiled[key]


class Program:
    """``model.training``'s functions bound to the kernels of ``ops``; when
    compiled, to its kernels for the plan set ``plans`` (kernels.loops.plans:
    only the products' plans a network's shapes reach are compiled)."""

    def __init__(self, ops, plans=ALL_PLANS):
        self.ops = ops
        self.name = ops.name
        self.plans = plans
        # compiled when the backend's kernels are one of kernels.cpu's variants
        variant = next((name for name, v in cpu.VARIANTS.items() if v[2] is ops.kernels), None)
        # the parallel backend shares mini-batch steps out to a team of threads (model.team)
        self.team = variant == "parallel"
        if variant is not None:
            self._compile(variant, plans)
        else:
            self._interpret(ops)

    def _compile(self, variant, plans):
        self.compiled = True
        self.kernels = cpu.variant_kernels(variant, plans)  # those the functions call
        functions = _compiled_functions(variant, plans)
        for name in FUNCTIONS:
            setattr(self, name, getattr(functions, name))
        self.fit_chunk_unguarded = self.fit_chunk
        self._typed_list = _typed_list
        self._typed_lists = _typed_lists
        self._python_list = _python_list

    def _interpret(self, ops):
        self.compiled = False
        self.kernels = ops.kernels
        namespace = dict(vars(logistic_loop), **vars(training))
        for name in KERNEL_NAMES:
            if hasattr(ops.kernels, name) or name not in OPTIONAL_KERNELS:
                namespace[name] = getattr(ops.kernels, name)
            else:
                namespace[name] = _missing(ops.name, name)
        for name in FUNCTIONS:
            namespace[name] = cpu.rebind(getattr(LOOP_CODE, name), namespace)
        own = getattr(ops.kernels, "parameters_finite", None)  # e.g. one host sync in all
        if own is not None:
            namespace["parameters_finite"] = own
        for name in FUNCTIONS:
            setattr(self, name, namespace[name])
        # the same loop without the per-iteration test: every step swaps in its parameters
        unguarded = dict(namespace, all_finite=_always_finite)
        for name in ("update", "fit_chunk"):
            unguarded[name] = cpu.rebind(getattr(training, name), unguarded)
        self.fit_chunk_unguarded = unguarded["fit_chunk"]
        self._typed_list = list
        self._typed_lists = list
        self._python_list = list

    def fit_epochs_team(self, *args):
        """model.team_run.fit_epochs_team, its members compiled on the first call."""
        return team_run.fit_epochs_team(_team_functions(self.plans).team_member, *args)

    def list(self, arrays):
        """A list of the backend's arrays in the form the program takes."""
        return self._typed_list(arrays)

    def lists(self, lists):
        """A list of lists made by ``list``, in the form the program takes."""
        return self._typed_lists(lists)

    def unlist(self, arrays):
        """A Python list of the arrays of a list made by ``list``."""
        return self._python_list(arrays)

    def codes(self, codes):
        """Activation codes (with the backend's ``act_bits``) in the form the program takes."""
        if self.compiled:
            return np.asarray(codes, dtype=np.int64)
        return [int(c) for c in codes]


def _typed_list(arrays):
    """numba.typed.List(arrays), built in compiled code: several times faster
    than the constructor, which types and appends each array from Python (a
    fit makes about ten lists, which took as long as many planar
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


def _typed_lists(lists):
    """numba.typed.List of typed lists (made once a fit at most: see model.fit)."""
    import numba.typed
    return numba.typed.List(lists)


def _python_list(typed):
    """list(typed) for a numba.typed.List of arrays, in compiled code: one
    call instead of one per item from Python (fit does this after every
    chunk). Not len(typed) from Python first: Numba compiles that in every
    process (~70 ms, uncached) and calls it for ~12 us."""
    global _list_reader
    if _list_reader is None:
        import numba

        def python_list_of(items):
            out = [items[0]]
            for i in range(1, len(items)):
                out.append(items[i])
            return out
        _list_reader = numba.njit(cache=True)(python_list_of)
    try:
        return _list_reader(typed)
    except IndexError:  # empty: no items[0] to type the Python list by
        return []


_list_reader = None


def get_program(ops, plans=ALL_PLANS):
    """The (cached) ``Program`` of backend ``ops`` for the products' plan set
    ``plans`` (kernels.loops.plans.plans_needed; all plans by default).
    Backends that are not compiled have one program whatever the set."""
    compiled = any(v[2] is ops.kernels for v in cpu.VARIANTS.values())
    key = (ops.name, id(ops.kernels), (plans | ALWAYS) if compiled else None)
    if key not in _programs:
        _programs[key] = Program(ops, key[2] or ALL_PLANS)
    return _programs[key]
