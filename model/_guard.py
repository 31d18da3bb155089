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

The marks are kept in Python, so an exception from a signal handler (a
Ctrl-C, an alarm) can land between a call's mark and the ``try`` that would
clear it, and leave a reader or writer marked that has gone (Python's own
locks have the same window: the signal module's docs). Such a mark must not
make the next call wait for ever, so a thread that has waited
``RECHECK_S`` looks at the marked threads' stacks: a mark whose thread runs
no guarded call of this network is dropped.
"""

import functools
import os
import sys
import threading
import weakref

_guards = weakref.WeakSet()
# How long a waiting thread trusts the marks before it checks them against
# the marked threads' stacks (only a left-behind mark makes a wait this long
# for nothing; a real reader or writer keeps its mark and is waited for).
RECHECK_S = 0.1


class Guard:
    """The readers-writer rule above, for one network."""

    def __init__(self):
        self._reset()
        _guards.add(self)

    def _reset(self):
        # entered as ``with self._lock``: the C lock's own __enter__, which a
        # signal handler's exception cannot split from the with block (the
        # Condition's Python __enter__ can, and left the lock held)
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._writer = None  # (thread ident, method name) of the running writer
        self._reads = {}  # thread ident -> how deep its reads nest (only threads reading)

    def begin_write(self, what, owner):
        """Mark this thread the network's writer (waiting for readers in other
        threads to finish), or raise where another thread's writer runs.
        Returns whether this thread was the writer already (a nested call:
        end_write is then not called)."""
        me = threading.get_ident()
        with self._lock:
            if self._writer is not None:
                if self._writer[0] == me:
                    if self._calls_in_stack(sys._getframe(), _EXCLUSIVE) > 1:
                        return True
                    self._writer = None  # left behind by an earlier call of this thread
                elif self._calls_in_stack(sys._current_frames().get(self._writer[0]), _EXCLUSIVE) == 0:
                    self._writer = None
                else:
                    raise RuntimeError(
                        f"{owner}.{what}() was called while {owner}.{self._writer[1]}() runs on the same network "
                        f"in another thread; a network trains in one thread at a time, and two fits at once "
                        f"would overwrite each other's parameters. Wait for the other call to return (join its "
                        f"thread), or give each thread its own network (copy.deepcopy(net) copies one)")
            self._writer = (me, what)
            try:
                while len(self._reads) > (me in self._reads):  # readers in other threads finish first
                    if not self._cond.wait(RECHECK_S):
                        self._drop_left_behind()
            except BaseException:  # a Ctrl-C (a signal handler's exception) while waiting: not the writer
                self._writer = None
                self._cond.notify_all()
                raise
        return False

    def end_write(self):
        with self._lock:
            self._writer = None
            self._cond.notify_all()

    def begin_read(self):
        """Count this thread a reader, waiting while another thread writes
        (unless this thread reads already: a nested read)."""
        me = threading.get_ident()
        with self._lock:
            depth = self._reads.get(me, 0)
            if self._writer is not None and self._writer[0] != me:
                if depth:  # trust a nested read only if an outer read runs
                    depth = max(0, min(depth, self._calls_in_stack(sys._getframe(), _SHARED) - 1))
                    if depth == 0:  # a mark left behind: gone before the wait, or the writer waits for it
                        self._reads.pop(me, None)
                        self._cond.notify_all()
                while depth == 0 and self._writer is not None and self._writer[0] != me:
                    if not self._cond.wait(RECHECK_S):
                        self._drop_left_behind()
            self._reads[me] = depth + 1

    def end_read(self):
        me = threading.get_ident()
        with self._lock:
            depth = self._reads.get(me, 0) - 1
            if depth > 0:
                self._reads[me] = depth
            else:
                self._reads.pop(me, None)
            self._cond.notify_all()

    def _calls_in_stack(self, frame, code):
        """How many guarded calls of this network (wrappers of ``code``) run
        in the stack that ends at ``frame`` (None: a thread that has ended)."""
        n = 0
        while frame is not None:
            if frame.f_code is code and frame.f_locals.get("guard") is self:
                n += 1
            frame = frame.f_back
        return n

    def _drop_left_behind(self):
        """Drop the marks of threads that run no guarded call of this network
        (held under the condition's lock, so no mark changes meanwhile)."""
        stacks = sys._current_frames()
        for ident, depth in list(self._reads.items()):
            running = self._calls_in_stack(stacks.get(ident), _SHARED)
            if running < depth:
                if running:
                    self._reads[ident] = running
                else:
                    del self._reads[ident]
        if self._writer is not None and self._calls_in_stack(stacks.get(self._writer[0]), _EXCLUSIVE) == 0:
            self._writer = None
        self._cond.notify_all()


# The decorators call the guard's methods themselves, not a context manager:
# every fit and predict passes here, and a contextlib generator is more of
# the interpreter to go through on each call. Their frames are what
# _calls_in_stack counts: each holds its guard in the local ``guard``.
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
        guard.begin_read()
        try:
            return method(self, *args, **kwargs)
        finally:
            guard.end_read()
    return wrapper


_EXCLUSIVE = exclusive(lambda self: None).__code__
_SHARED = shared(lambda self: None).__code__


def _after_fork_in_child():
    for guard in list(_guards):
        guard._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
