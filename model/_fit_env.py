"""What fit changes in the process while it runs, and puts back after.

- ``DeferredInterrupt``: a Ctrl-C (SIGINT) is only noted while fit runs; fit
  raises KeyboardInterrupt itself between two chunks, when the parameters are
  those of a completed iteration.
- ``BlasLimit``: NumPy's BLAS kept to one thread while Numba's threads run,
  so the two do not compete for the cores.

Context managers written as classes, not with contextlib's generators:
every fit enters and leaves them, and a class's are fewer steps of the
interpreter (docs/performance-log.md, "The step tests its own cells": what a fit call's
own time is made of).
"""

import contextlib
import os
import signal
import threading

# signal.signal wraps the C module's in enum conversions: 12 us a call
# against 1 us, a large part of a short fit's call (every fit sets and
# restores the handler). The same function, where CPython has it.
try:
    from _signal import getsignal as _get_handler, signal as _set_handler
except ImportError:  # another interpreter
    _get_handler, _set_handler = signal.getsignal, signal.signal


class DeferredInterrupt:
    """While fit runs, a Ctrl-C (SIGINT) is only noted (``as received``: the
    list it is appended to); fit raises KeyboardInterrupt itself between two
    chunks. (Compiled code cannot be interrupted anyway; this makes the
    interpreted backends just as consistent.) Outside the main thread
    signals cannot be caught and nothing changes; nor where the program has
    a SIGINT handler of its own (or ignores SIGINT: a pool's workers often
    do): its handler runs as it would anywhere else."""

    __slots__ = ("received", "_previous")

    def __enter__(self):
        received = self.received = []
        self._previous = None
        if threading.current_thread() is threading.main_thread() and \
                _get_handler(signal.SIGINT) is signal.default_int_handler:
            try:
                self._previous = _set_handler(signal.SIGINT, lambda signum, frame: received.append(signum))
            except ValueError:  # e.g. an embedded interpreter
                pass
        return received

    def __exit__(self, *exc_info):
        if self._previous is not None:
            _set_handler(signal.SIGINT, self._previous)
        return False


_blas_libraries = None
# The BLAS limit is process-wide and fits run in several threads at once: the
# first fit to need it saves the setting and limits, the last to finish
# restores it (each thread saving and restoring its own left the later
# one's "before", 1, in place for good).
_blas_lock = threading.Lock()
_blas_users = 0
_blas_before = None


def is_numpy_library(path):
    """Whether the shared library at ``path`` is one of NumPy's own (in its
    wheel's ``numpy.libs`` folder): where SciPy is installed, Numba's first
    compile loads SciPy's OpenBLAS beside NumPy's, and only NumPy's runs
    NumPy's products."""
    return "numpy" in os.path.basename(os.path.dirname(path or ""))


class BlasLimit:
    """Where ``threads`` (fit runs Numba's threads: the parallel backend, a
    network big enough for them), keep NumPy's BLAS to one thread while
    inside, where it runs more than one: two calls to threadpoolctl's
    controller of NumPy's BLAS (or of every BLAS where none is in NumPy's
    folder: a NumPy built against the system's), not its ``limit``
    context, which reads every library's settings on the way in and out (a
    large part of a short fit's call: docs/performance-log.md, stop 42). Counted across
    threads (the first fit in limits, the last one out restores), and
    threadpoolctl's claim on OpenBLAS for this thread (3.8 lets one thread
    at a time set it) is given up after each change, so that the next fit,
    or the program's own threadpool_limits, in any thread, can set it."""

    __slots__ = ("threads",)

    def __init__(self, threads):
        self.threads = bool(threads)

    def __enter__(self):
        global _blas_libraries, _blas_users, _blas_before
        if not self.threads:
            return self
        with _blas_lock:
            if _blas_libraries is None:  # scanning the loaded libraries is slow: once
                from threadpoolctl import ThreadpoolController
                found = ThreadpoolController().select(user_api="blas").lib_controllers
                _blas_libraries = [lib for lib in found if is_numpy_library(lib.filepath)] or found
            if _blas_users == 0:  # the libraries to limit, with their setting: those not at one thread already
                _blas_before = [(lib, n) for lib, n in ((lib, lib.num_threads) for lib in _blas_libraries) if n != 1]
                _set_blas_threads([(lib, 1) for lib, _ in _blas_before])
            _blas_users += 1
        return self

    def __exit__(self, *exc_info):
        global _blas_users
        if self.threads:
            with _blas_lock:
                _blas_users -= 1
                if _blas_users == 0:
                    _set_blas_threads(_blas_before)
        return False


def _set_blas_threads(settings):
    """Each (library controller, threads) of ``settings`` set."""
    for lib, n in settings:
        lib.set_num_threads(n)
        release = getattr(lib, "clear_controlling_thread", None)  # threadpoolctl >= 3.8's OpenBLAS
        if release is not None:
            release()


def _blas_after_fork_in_child():
    """A child forked while fits in other threads held the limit has none of
    those fits: its own lock, and its BLAS as it was before them."""
    global _blas_lock, _blas_users
    _blas_lock = threading.Lock()
    if _blas_users:
        _blas_users = 0
        with contextlib.suppress(Exception):
            _set_blas_threads(_blas_before)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_blas_after_fork_in_child)

