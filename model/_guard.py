"""One network, several threads: fit is exclusive, reads are shared.

Why: fit trains the network's own parameter arrays in place and keeps its
scratch buffers for the next fit, so two fits of one network at once would
write the same arrays and end far from two sequential fits, with no error.
The rule:

- ``fit`` and ``set_parameters`` (writers) run one at a time per network: a
  second writer while one runs in another thread raises RuntimeError at once
  (the order two fits would run in is not defined, so no result is right).
- ``predict``, ``cost``, ``parameters``, ``save`` ... (readers) run together,
  and wait while a writer runs, so they never see half-updated parameters.

The same thread may nest them (fit may read; a reader may call a reader).
Different networks share nothing here and run in parallel. In a child made
by ``os.fork()`` every guard starts free (the threads that held them in the
parent do not exist there).
"""

import contextlib
import functools
import os
import threading
import weakref

_guards = weakref.WeakSet()


class Guard:
    """The readers-writer rule above, for one network."""

    def __init__(self):
        self._reset()
        _guards.add(self)

    def _reset(self):
        self._cond = threading.Condition()
        self._writer = None  # (thread ident, method name) of the running writer
        self._readers = 0
        self._local = threading.local()  # .reads: this thread's nesting depth

    def begin_write(self, what, owner):
        """Mark this thread the network's writer (waiting for readers in other
        threads to finish), or raise where another thread's writer runs.
        Returns whether this thread was the writer already (a nested call:
        end_write is then not called)."""
        me = threading.get_ident()
        with self._cond:
            if self._writer is not None and self._writer[0] == me:
                return True
            if self._writer is not None:
                raise RuntimeError(
                    f"{owner}.{what}() was called while {owner}.{self._writer[1]}() runs on the same network in "
                    f"another thread; a network trains in one thread at a time, and two fits at once would "
                    f"overwrite each other's parameters. Wait for the other call to return (join its thread), "
                    f"or give each thread its own network (copy.deepcopy(net) copies one)")
            self._writer = (me, what)
            own_reads = getattr(self._local, "reads", 0)
            try:
                while self._readers > own_reads:  # readers in other threads finish first
                    self._cond.wait()
            except BaseException:  # a Ctrl-C (a signal handler's exception) while waiting: not the writer
                self._writer = None
                self._cond.notify_all()
                raise
        return False

    def end_write(self):
        with self._cond:
            self._writer = None
            self._cond.notify_all()

    def begin_read(self):
        """Count this thread a reader (waiting while another thread writes).
        Returns its nesting depth before, for end_read."""
        me = threading.get_ident()
        depth = getattr(self._local, "reads", 0)
        with self._cond:
            if depth == 0:
                while self._writer is not None and self._writer[0] != me:
                    self._cond.wait()
            self._readers += 1
        self._local.reads = depth + 1
        return depth

    def end_read(self, depth):
        self._local.reads = depth
        with self._cond:
            self._readers -= 1
            self._cond.notify_all()

    @contextlib.contextmanager
    def shared(self):
        """A reader's block (what the ``shared`` decorator does for a method)."""
        depth = self.begin_read()
        try:
            yield
        finally:
            self.end_read(depth)


# The decorators call the guard's methods themselves, not a context manager:
# every fit and predict passes here, and a contextlib generator is more of
# the interpreter to go through on each call.
def exclusive(method):
    """Decorate a method that changes the network's parameters or buffers."""
    name = method.__name__

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        guard = self._guard
        nested = guard.begin_write(name, type(self).__name__)
        try:
            return method(self, *args, **kwargs)
        finally:
            if not nested:
                guard.end_write()
    return wrapper


def shared(method):
    """Decorate a method that reads the network's parameters."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        guard = self._guard
        depth = guard.begin_read()
        try:
            return method(self, *args, **kwargs)
        finally:
            guard.end_read(depth)
    return wrapper


def _after_fork_in_child():
    for guard in list(_guards):
        guard._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
