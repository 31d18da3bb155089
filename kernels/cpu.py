"""Backends "numba" and "parallel": ``kernels.loops`` compiled twice.

The same Python functions (the same ``__code__`` objects) are compiled
serially with ``@njit`` and in parallel with ``@njit(parallel=True)``, where
``prange`` becomes a parallel loop over all cores. Uncompiled, they are
backend "python". One source, three speeds.

What makes this safe, and quick to compile:

- **Own cache entries.** Numba's on-disk cache names an entry after the
  function's qualified name and line, not after the compile options, so a
  serial and a parallel compilation of one function object would share one
  entry: whichever compiled first would silently serve both, and "parallel"
  would run serially. Each variant is therefore a fresh function object over
  the same code, named ``<name>__numba`` / ``<name>__parallel<threads>``, so each has its
  own cache file (``tests/test_cpu_compile.py`` proves it).
- **Own globals.** A composite kernel (``linear_backward`` calls
  ``weight_gradients``) must call the compiled callee of its own variant, so
  each variant's functions see a copy of the module globals in which the
  callees are that variant's dispatchers.
- **One writer of a cache index at a time.** Numba keeps one index file per
  function (its compiled signatures and their data files) and adds an entry
  by loading the index, choosing a data file name and writing both back.
  Two processes adding *different* signatures of one function at once (a
  process pool training float32 and float64 networks, ``jitloops bench``'s
  compile helper) could each load the old index and pick the same data
  file: one signature's entry lost, or an index naming the other's machine
  code. ``kernels.threads.lock_cache_index_saves`` (run when ``kernels`` is
  imported) makes each such save hold an exclusive lock on
  a file in the cache folder (POSIX ``flock``; elsewhere Numba's own
  behaviour), so the second process loads the first one's index
  (``tests/test_cache_source.py`` races two processes to prove it).
- **Compiled once, called by address.** The products' tiles (the blocked
  and packed plans' code) and the optimizers' block are compiled once,
  serially (``tile_kernels``), and every product and ``optimizer_step`` of
  both variants calls them through their addresses; later kernels call the
  products so too (``kernels.external``): no caller compiles its callee's
  code again, and a process that compiles runs the same machine code as one
  that loads it from the cache (README, "Fresh and cached code alike").
- **Cache entries true to all their source.** Numba's cache checks only the
  file of the function it compiled (its timestamp and size), but a kernel
  inlines callees from other modules (``kernels.approx``'s tanh, exp, log,
  ``kernels.wide``), and the model's training loop inlines the kernels. So
  the suffix also carries ``SOURCE_DIGEST``, a hash of every source file of
  this package: after any edit the compiled functions have new names, hence
  new cache entries, and the next process compiles them afresh. Entries of
  other digests are deleted from the cache folder when a variant first
  compiles, so the folder does not grow with every edit
  (``tests/test_cache_source.py`` edits a copy of the package to prove it).
"""

import hashlib
import os
import pathlib
import re
import types

import numba

from . import loops, options
from .external import external
from .loops.plans import ALL_PLANS, ALWAYS, PARALLEL, PRODUCT_KERNELS, plan_globals, runs_in_parallel

# The compile options are kernels.options' (one home for every flag).
SERIAL_OPTIONS = options.SERIAL_OPTIONS
PARALLEL_OPTIONS = options.PARALLEL_OPTIONS

# Kernels compiled without parallel=True in both variants, having no loop of
# their own to run in parallel: the composites only call other kernels (each
# callee runs its own parallel loops), all_finite stops at the first
# non-finite value, and permutation is a sort.
SERIAL_KERNELS = frozenset({"linear_forward", "linear_backward", "linear_activation_backward", "all_finite",
                            "permutation"})

# Compiled in this order: a kernel's callees come before it.
KERNEL_NAMES = loops.KERNEL_NAMES


def source_digest(*paths):
    """A short hash of the ``.py`` files under ``paths`` (folders or files):
    their names relative to the folder, and their bytes."""
    h = hashlib.sha1()
    for root in map(pathlib.Path, paths):
        files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
        for f in files:
            h.update(str(f.relative_to(root.parent)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:10]


SOURCE_DIGEST = source_digest(pathlib.Path(__file__).parent)

# A compiled function's name ends in "__<family>[p<plans>]_<digest>" (see
# compile_loops): the family is a variant ("numba", "parallel") or what is
# compiled against one ("team", a lesson's). Families sharing a cache folder
# hash different sources (model/: the training loop's and the team's), so
# each prunes only its own.
_DIGEST_NAME = re.compile(r"__([A-Za-z0-9]+?)(?:p[0-9]+)?_([0-9a-f]{10})[-.]")
_pruned = set()


def _prune_stale(dispatcher, digest):
    """Delete the cache files of ``dispatcher``'s family (its name's variant,
    any plan set) compiled from other source digests, in its cache folder
    (best effort: once per folder, family and digest, errors ignored)."""
    try:
        folder = dispatcher._cache._cache_path  # Numba's own choice of folder
    except AttributeError:
        return
    own = _DIGEST_NAME.search(dispatcher.py_func.__name__ + "-")
    if own is None:
        return
    family = own.group(1)
    if (folder, family, digest) in _pruned:
        return
    _pruned.add((folder, family, digest))
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        match = _DIGEST_NAME.search(name)
        if match and match.group(1) == family and match.group(2) != digest and name.endswith((".nbi", ".nbc")):
            try:
                os.remove(os.path.join(folder, name))
            except OSError:
                pass


def rebind(func, namespace=None, suffix=""):
    """A new function object over ``func``'s very code, named ``name + suffix``
    and resolving its globals in ``namespace`` (a copy of its own by default).

    The one home of this trick: a compiled variant is its own dispatcher with
    its own cache entry (the suffix), calling what its namespace says (the
    variant's callees, or a backend's kernels for the interpreted training
    loop)."""
    g = types.FunctionType(func.__code__, dict(func.__globals__) if namespace is None else namespace,
                           func.__name__ + suffix, func.__defaults__, func.__closure__)
    g.__qualname__ = func.__qualname__ + suffix
    g.__module__ = func.__module__
    g.__doc__ = func.__doc__
    return g


def compile_loops(suffix, options, names=KERNEL_NAMES, module=loops, extra=None, digest=SOURCE_DIGEST,
                  plans=ALL_PLANS, own_options=None, tiles=None):
    """Compile ``module``'s kernels ``names`` with ``numba.njit(**options)``.

    Each function is named ``<name><suffix>_<digest>``: ``digest`` hashes all
    the source the compiled code may contain (see the module docstring). A
    plan set other than all (``plans``, kernels.loops.plans) is compiled
    under its own names, ``<suffix>p<plans>``: its kernels have no code for
    the plans outside the set. ``own_options`` maps a name to the options it
    is compiled with instead of ``options``. The products of ``loops`` call
    their tiles through ``tiles`` (``callees(compile_tiles(...))``; default:
    this process's ``tile_kernels``), and later kernels call the products
    through their addresses (kernels.external).

    Returns a ``SimpleNamespace`` of dispatchers; ``d.py_func.__code__`` is the
    code object of ``module``'s function. Each function resolves its globals
    in a copy of its own defining module's (``kernels.loops`` is a package:
    forward.py's kernels see forward.py's helpers), with the variant's
    dispatchers compiled so far laid over them, so a kernel calls its own
    variant's callees. ``extra`` (a dict) is laid over them too: loop code
    outside this package (the model's training loop) passes
    ``vars(numba_kernels)`` so that it calls that variant's kernels.
    """
    namespaces = {}  # defining module -> the globals its variants see
    compiled = {}
    called = {}  # what later kernels call: compiled's, the products external
    if tiles is None:
        tiles = TILE_CALLEES if module is loops else {}
    extra = dict(tiles, **(extra or {}), **plan_globals(plans), THREADED=bool(options.get("parallel")))
    suffix = f"{suffix}{'' if plans == ALL_PLANS else f'p{plans}'}_{digest}"
    for name in names:
        func = getattr(module, name)
        namespace = namespaces.get(func.__module__)
        if namespace is None:
            namespace = namespaces[func.__module__] = {**func.__globals__, **extra, **called}
        opts = (own_options or {}).get(name) or options
        if name in SERIAL_KERNELS or not runs_in_parallel(plans, name):
            opts = dict(opts, parallel=False)
        dispatcher = numba.njit(**opts)(rebind(func, namespace, suffix))
        if opts.get("cache"):
            _prune_stale(dispatcher, digest)
        compiled[name] = dispatcher
        called[name] = callee = external(dispatcher) if name in PRODUCT_KERNELS else dispatcher
        # later kernels, in any module, call this variant; the products
        # through their addresses (kernels.external: their callers do not
        # compile them again)
        for ns in namespaces.values():
            ns[name] = callee
    return types.SimpleNamespace(**compiled)


# The products' tiles (the blocked and packed plans' code, most of a
# product kernel's compile time) compiled once, serially, for every variant
# and plan set: the kernels call them through their addresses
# (kernels.external), in their serial loops and in their prange bodies alike.
def compile_tiles(suffix, options):
    """The tiles (kernels.loops.TILE_KERNELS: the products', the optimizers' block) compiled with
    ``options``, as a SimpleNamespace of dispatchers; ``callees(tiles)``
    is what compile_loops' ``tiles`` takes."""
    return types.SimpleNamespace(**{
        name: dispatcher for module, names in loops.TILE_KERNELS.items()
        for name, dispatcher in vars(compile_loops(suffix, options, names, module)).items()})


def callees(tiles):
    """The tiles of ``tiles`` as the kernels call them: through their addresses
    (loops.LAZY_TILES compiled at their first call, kernels.external)."""
    return {name: external(d, lazy=name in loops.LAZY_TILES) for name, d in vars(tiles).items()}


tile_kernels = compile_tiles("__tiles", SERIAL_OPTIONS)
TILE_CALLEES = callees(tile_kernels)

numba_kernels = compile_loops("__numba", SERIAL_OPTIONS)
# The parallel variant's names carry the pool's size: its tiling counts the
# pool's threads (options.POOL_THREADS), a constant of its compiled code.
PARALLEL_SUFFIX = f"__parallel{options.POOL_THREADS}"
parallel_kernels = compile_loops(PARALLEL_SUFFIX, PARALLEL_OPTIONS)

# backend name -> (suffix, options, kernels) for code that compiles more loops
# against one variant (see compile_loops' ``extra``).
VARIANTS = {
    "numba": ("__numba", SERIAL_OPTIONS, numba_kernels),
    "parallel": (PARALLEL_SUFFIX, PARALLEL_OPTIONS, parallel_kernels),
}
_plan_kernels = {}

# The kernels whose code depends on the plan set: the products and the ops
# made of them (callees first). The others are the same in every set.
PLAN_KERNELS = ("linear_activation_forward", "linear_forward", "weight_gradients", "input_gradient",
                "linear_backward", "linear_activation_backward")


def compiled_variant(backend, plans):
    """(variant, plans) that code for ``backend`` ("numba" or "parallel") and
    plan set ``plans`` is compiled as: a set without the PARALLEL bit is the
    "numba" variant's (the parallel one would run its serial branches), and
    COURSE, SIMPLE and the PARALLEL bit are added (so equal sets compare
    equal and name the same cache entries)."""
    if backend == "parallel" and not plans & PARALLEL:
        backend = "numba"
    return backend, plans | ALWAYS | PARALLEL


def variant_kernels(backend, plans=ALL_PLANS):
    """The kernels of variant ``backend`` ("numba" or "parallel") for plan
    set ``plans`` (kernels.loops.plans, see compiled_variant): the public
    ops' (all plans) but for PLAN_KERNELS, compiled for the set (once per
    process)."""
    backend, plans = compiled_variant(backend, plans)
    suffix, opts, kernels = VARIANTS[backend]
    if plans == ALL_PLANS:
        return kernels
    key = (backend, plans)
    if key not in _plan_kernels:
        own = compile_loops(suffix, opts, PLAN_KERNELS, extra=vars(kernels), plans=plans)
        _plan_kernels[key] = types.SimpleNamespace(**{**vars(kernels), **vars(own)})
    return _plan_kernels[key]
