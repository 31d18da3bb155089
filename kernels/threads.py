"""Numba's thread pool for the "parallel" backend: which threading layer,
when the pool starts, and what is safe (threads, fork, spawn).

Why TBB
-------
Numba runs ``prange`` loops on one of three threading layers (its docs:
"Selecting a threading layer for safe parallel execution"):

- ``omp`` with GNU OpenMP, Numba's first choice on Linux, is thread-safe but
  not fork-safe: a child forked after the parent ran a parallel loop is killed
  at its first one ("Terminating: fork() called from a process already using
  GNU OpenMP"), and a ``multiprocessing`` pool of such children hangs.
- ``workqueue`` is fork-safe but not thread-safe: two threads running
  parallel loops at once abort the process.
- ``tbb`` is both, so jitloops asks for it. The ``tbb`` wheel (a dependency
  where PyPI has one) puts ``libtbb.so.12`` in the environment's ``lib/``
  folder, where the dynamic loader does not look; Numba then finds no tbb
  layer. ``_preload_tbb`` loads that library first (``RTLD_GLOBAL``), found
  through the wheel's own file list.

The choice, made when ``kernels`` is imported (before Numba starts its pool):

- ``NUMBA_THREADING_LAYER`` set by the user: kept as it is;
- TBB loadable: ``tbb``;
- otherwise Numba's own default. Should that be GNU OpenMP, a process forked
  after the pool started refuses the parallel backend with an error that says
  how to fix it (``check_fork_safe``) instead of being killed or hanging.

``layer()`` names the layer in use (``jitloops --version`` and ``compare``'s
header print it).

Processes
---------
Numba keeps one index file per cached function and adds a signature by
loading it, choosing a data file and writing both back: two processes adding
different signatures of one function at once (a process pool training
float32 and float64 networks, ``jitloops bench``'s compile helper) can lose
one entry or leave the index naming the other's machine code.
``lock_cache_index_saves`` (run on import) makes that save hold an exclusive
lock on a file in the cache folder (POSIX ``flock``; elsewhere Numba's own
behaviour).
"""

import ctypes
import os

import numba
from numba.core import config

_TBB_NAMES = ("libtbb.so.12", "libtbb.12.dylib", "tbb12.dll")

# Set in a forked child whose parent had started a pool that is not
# fork-safe: the reason the parallel backend cannot run there.
_fork_unsafe_reason = None
# What layer the user asked for, and whether TBB could be loaded.
_requested = os.environ.get("NUMBA_THREADING_LAYER")
_tbb_loaded = False


def _tbb_library():
    """The path of the tbb wheel's shared library, or None."""
    try:
        from importlib.metadata import PackageNotFoundError, files
        entries = files("tbb") or []
    except (ImportError, PackageNotFoundError):
        return None
    except Exception:  # a broken installation: fall back as if absent
        return None
    for entry in entries:
        if entry.name in _TBB_NAMES:
            path = str(entry.locate())
            if os.path.exists(path):
                return path
    return None


def _preload_tbb():
    """Load TBB so that Numba's tbb layer can link to it; True when it can."""
    path = _tbb_library()
    if path is not None:
        try:
            ctypes.CDLL(path, mode=getattr(ctypes, "RTLD_GLOBAL", 0))
        except OSError:
            pass
    try:
        from numba.np.ufunc import tbbpool  # noqa: F401  (links against libtbb)
    except ImportError:
        return False
    return True


def _pool_started():
    from numba.np.ufunc import parallel
    return bool(getattr(parallel, "_is_initialized", False))


def choose_layer():
    """Pick the threading layer (see the module docstring); called once, at import."""
    global _tbb_loaded
    _tbb_loaded = _preload_tbb()
    if _requested is None and _tbb_loaded and not _pool_started():
        config.THREADING_LAYER = "tbb"


def start_pool():
    """Start Numba's thread pool, once.

    Why it is needed: a serial compiled function that calls parallel ones
    (the composite kernels, the model's training loop), loaded from Numba's
    cache, runs their parallel loops without Numba having started its pool
    (only a parallel function's own cache entry starts it) and segfaults.
    ``numba.get_num_threads()`` starts it.
    """
    check_fork_safe()
    numba.get_num_threads()


def layer():
    """The name of the threading layer in use ("tbb", "omp", "workqueue");
    starts the pool if it is not running yet."""
    start_pool()
    return numba.threading_layer()


def describe():
    """The layer in use and what it makes safe, for headers and --version."""
    try:
        name = layer()
    except Exception as exc:  # noqa: BLE001 - a report, not a failure
        return f"unavailable ({exc})"
    if name == "tbb":
        return "tbb (thread- and fork-safe)"
    if name == "workqueue":
        return "workqueue (fork-safe; parallel calls from several threads at once are not)"
    if name == "omp" and _gnu_openmp():
        return "omp, GNU OpenMP (thread-safe; not in processes forked after it started: pip install tbb)"
    return f"{name}"


def _gnu_openmp():
    try:
        from numba.np.ufunc import omppool
        return getattr(omppool, "openmp_vendor", "") == "GNU"
    except ImportError:
        return False


def check_fork_safe():
    """Raise RuntimeError in a forked child where the parallel backend would be
    killed (GNU OpenMP started in the parent)."""
    if _fork_unsafe_reason is not None:
        raise RuntimeError(_fork_unsafe_reason)


def _after_fork_in_child():
    global _fork_unsafe_reason
    if not _pool_started():
        return
    try:
        name = numba.threading_layer()
    except ValueError:
        return
    if name == "omp" and _gnu_openmp():
        _fork_unsafe_reason = (
            "the 'parallel' backend cannot run in this process: it was forked after its parent started "
            "Numba's GNU OpenMP thread pool, which is not fork-safe (the child would be killed). "
            "Install the tbb package (pip install tbb) so jitloops uses Numba's fork-safe tbb layer, "
            "start processes with multiprocessing.get_context('spawn') or 'forkserver', "
            "or use the 'numba' backend in the child")


INDEX_LOCK_NAME = ".jitloops-index.lock"


def lock_cache_index_saves():
    """Wrap Numba's cache-index save in an exclusive lock on INDEX_LOCK_NAME
    in the cache folder (see "Processes" above). Where the lock cannot be had
    (no fcntl, a folder we cannot write a file in) the save runs as Numba's
    own."""
    try:
        import fcntl
        from numba.core.caching import IndexDataCacheFile
    except ImportError:
        return
    original = IndexDataCacheFile.save
    if getattr(original, "locked_by_jitloops", False):
        return

    def save(self, key, data):
        try:
            lock = open(os.path.join(self._cache_path, INDEX_LOCK_NAME), "a")
        except OSError:
            return original(self, key, data)
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            return original(self, key, data)

    save.locked_by_jitloops = True
    save.original = original
    IndexDataCacheFile.save = save


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

choose_layer()
lock_cache_index_saves()

__all__ = ["choose_layer", "start_pool", "layer", "describe", "check_fork_safe", "lock_cache_index_saves"]
