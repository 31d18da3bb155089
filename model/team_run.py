"""How fit runs a team (model.team): how many members and parts
(team_members, team_parts, row_splits), the team's own arrays
(team_arrays), and the threads that run its members (fit_epochs_team
runs the compiled team_member on them: run_members, TeamThreads). Plain
Python; the members' work is model.team's.
"""

import contextlib
import os
import threading

import numba
import numpy as np

from kernels.loops.team import MEMBERS, STOP, SYNC_SIZE, WHY, reset
from kernels.options import MICRO_MIN_ROWS, MICRO_ROWS

from . import team
from .training import FINISHED, swap_items

# The multiply-adds of a batch's forward pass from which sharing a step
# pays for the team's meetings, and the rows a part owns at least in the
# widest hidden layer (fewer keep the micro-kernel's row blocks half empty).
TEAM_WORK = 1 << 18
MIN_ROWS = 16
# The unwritten bytes after each part's rows (of dW, of Z), in multiples of their own
# (part_rows): the prefetchers ran on for up to about as many rows as
# the part has.
PAD_PARTS = 2


def fit_epochs_team(member, sync, costs, lists, nested, W, b, W_next, b_next, Yb, Ybl, splits, jlog, X, Y,
                    perm, Xs, acts, start, count, cost_every, first_epoch, first_step, learning_rate, decay_rate,
                    decay_every, kind, beta1, beta2, epsilon, l2, eps, exact, shuffle, seed, Yv, val_costs, track,
                    validate, early, patience, tol, members):
    """model.training.fit_epochs (its arguments and buffers, its returns:
    done, status, steps; and whether W, b now hold the arrays W_next, b_next
    held, the lists' arrays traded; status is the exception a signal handler
    raised while the members ran, where one did: run_members), each step shared by a team of
    ``members`` members (the module docstring): ``member`` is team_member
    compiled (nogil), run by this thread and by members - 1 threads of our
    own (run_members), at most one a thread Numba runs
    (numba.set_num_threads); a thread with more runs them one after the
    other, each finding the phases done. The lists in two (team_lists:
    ``lists``, ``nested``); W, b, W_next, b_next also apart (their arrays
    traded back here where the run leaves them traded). The team's own
    arrays (team_arrays) and ``sync`` (SYNC_SIZE + parts + 1,) int64 as
    well. Always batches copied from X (fit runs one batch in order with
    fit_epochs).

    Why threads of our own and not a parallel loop: a ``prange`` over the
    members makes Numba optimize team_member's whole call tree twice more
    (in the loop's body and in the function around it), 2/3 of the team's
    cold compile; the members need nothing of a threading layer."""
    args = (sync, costs, lists, nested, Yb, Ybl, splits, jlog, X, Y, perm, Xs, acts, start, count,
            cost_every, first_epoch, first_step, learning_rate, decay_rate, decay_every, kind, beta1, beta2, epsilon,
            l2, eps, exact, shuffle, seed, Yv, val_costs, track, validate, early, patience, tol)
    reset(sync)
    pending = run_members(member, args, members, min(members, numba.get_num_threads()))
    if sync[STOP] >= 0:  # an item halted the team: halt's record
        status, done, steps, traded = int(sync[WHY]), int(sync[WHY + 1]), int(sync[WHY + 2]), sync[WHY + 3] != 0
    else:
        steps_per_chunk = count * jlog.shape[0]
        done, status, steps, traded = count, FINISHED, first_step + steps_per_chunk, steps_per_chunk % 2 == 1
    if traded:
        swap_items(W, W_next)
        swap_items(b, b_next)
    return done, pending or status, steps, traded


def team_lists(program, memo, W, b, named):
    """team_member's lists packed as it takes them: (a typed list of those
    of team.LISTS, one of those of team.NESTED), from ``named()`` (name ->
    list of ``program``). Kept in ``memo`` (a dict kept with the fit's
    buffers, and made anew with them) for the next fit while the same
    parameter lists W, b come back: every other list is those buffers' own.
    Packing costs more than the dispatch it saves (model.fit._fit_lists,
    the same for fit_chunk)."""
    last = memo.get("team_lists")
    if last is not None and last[0][0] is W and last[0][1] is b:
        return last[1]
    lists = named()
    packed = (program.lists([lists[k] for k in team.LISTS]), program.lists([lists[k] for k in team.NESTED]))
    memo["team_lists"] = ((W, b), packed)
    return packed


def run_members(member, args, members, threads):
    """member(*args) ``members`` times on ``threads`` threads: this one and
    threads - 1 of the team's threads (TEAM_THREADS, kept from one fit to
    the next: starting and joining threads of its own cost a short fit
    more than its Python; docs/performance-log.md, "A fit call's own time"), or,
    while another Python thread's fit has those, threads started and joined
    here. Every member has returned when it does, whatever happens (a
    member's error in another thread is raised here after the others
    finished): nothing runs a member after the call.

    What this thread raises meanwhile (a signal handler's exception: a
    Ctrl-C, a timeout's alarm; they run here when the member's compiled
    call returns, or while waiting for the others) is returned, not raised,
    where a member ran (``args[0]``, sync, counts the members that joined):
    every member that joins runs through every phase, so the run is whole,
    and fit raises it once the run is recorded. Where none ran it is raised."""
    pending = []

    def run(first):
        for _ in range(first, members, threads):
            member(*args)

    def run_here():
        try:
            run(0)
        except BaseException as exc:  # noqa: BLE001 - see the docstring
            if not _from_a_handler(exc, (run.__code__, run_here.__code__)):
                raise  # the member's own error: raised as it was
            pending.append(exc)

    if threads <= 1:
        run_here()
    elif not TEAM_THREADS.claim():
        _run_on_new_threads(run, run_here, threads, pending)
    else:
        try:
            workers = TEAM_THREADS.workers(threads - 1)
            try:
                for i, worker in enumerate(workers):
                    worker.start(run, i + 1)
                run_here()
            finally:  # every worker given a task (a handler may land before a start: no task given)
                errors = _wait_all(workers, pending)
        finally:
            TEAM_THREADS.release()
        for error in errors:
            if error is not None:
                raise error
    if pending and args[0][MEMBERS] == 0:  # no member ran: nothing changed, nothing to record
        raise pending[0]
    return pending[0] if pending else None


def _from_a_handler(exc, ours):
    """Whether ``exc`` was raised by a signal handler written in Python (its
    frame in the traceback below ours), not by the compiled member, whose
    errors come with no frame of their own."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code not in ours:
            return True
        tb = tb.tb_next
    return False


def _wait_all(workers, pending):
    """Each worker's wait(), given a task; what they raised (None where nothing)."""
    errors = []
    for worker in workers:
        try:
            if not worker.idle:
                errors.append(worker.wait(pending))
        except BaseException as exc:  # noqa: BLE001 - a handler's, between two waits
            pending.append(exc)
            errors.append(worker.wait(pending))
    return errors


def _run_on_new_threads(run, run_here, threads, pending):
    """run_here() (run(0)) here and run(1), ..., run(threads - 1) on threads
    started and joined here (a signal handler's exception while joining:
    into ``pending``)."""
    errors = []

    def guarded(first):
        try:
            run(first)
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            errors.append(exc)

    workers = [threading.Thread(target=guarded, args=(i,), name=f"jitloops-team-{i}", daemon=True)
               for i in range(1, threads)]
    try:
        for w in workers:
            w.start()
        run_here()
    finally:
        for w in workers:
            while w.is_alive():
                try:
                    w.join()
                except BaseException as exc:  # noqa: BLE001 - a signal handler's: raised by fit
                    pending.append(exc)
    if errors:
        raise errors[0]


class TeamThread:
    """A thread that runs one task at a time for run_members and waits,
    blocked on a lock (no core used), between them."""

    def __init__(self, number):
        self._go = threading.Lock()
        self._go.acquire()
        self._done = None  # the task's own lock, released once by the thread when the task is done
        self._task = None
        self._error = None
        self._given = self._completed = 0  # tasks given and done: wait() goes by these
        self.thread = threading.Thread(target=self._loop, name=f"jitloops-team-{number}", daemon=True)
        self.thread.start()

    @property
    def idle(self):
        """Whether no task is given to it (or running)."""
        return self._task is None

    def start(self, run, first):
        """Give it run(first) to do. Nothing between the task's assignment and
        the release checks for signals (CPython runs handlers on entering a
        function, on a backward jump and after a call): a handler's exception
        leaves it either idle or given its task, never a task it will not run.
        Each task has a lock of its own (threading's Semaphore and Condition
        are Python code that a handler's exception can leave held): a release
        that a handler kept wait() from seeing is left on that task's lock."""
        done = threading.Lock()
        done.acquire()
        self._done, self._task, self._error, self._given = done, (run, first), None, self._given + 1
        self._go.release()

    def wait(self, pending):
        """Until its task is done, whatever a signal handler raises meanwhile
        (a Ctrl-C, a timeout's alarm: appended to ``pending``; the task never
        outlives the run that gave it, and the thread is idle for the next
        one). Returns what the task raised, or None."""
        while True:
            try:
                while self._completed != self._given:  # its loop's jumps run handlers too: inside the try
                    self._done.acquire()
                break
            except BaseException as exc:  # noqa: BLE001 - raised by fit once the run is recorded
                pending.append(exc)
        error, self._task, self._error = self._error, None, None
        return error

    def _loop(self):
        while True:
            self._go.acquire()
            (run, first), done = self._task, self._done
            try:
                run(first)
            except BaseException as exc:  # noqa: BLE001 - raised again by run_members
                self._error = exc
            run = first = None  # nothing of the task (its X, its buffers) kept while the thread waits
            self._completed += 1  # before the release: wait() returns once it sees the count
            done.release()


class TeamThreads:
    """The team's threads, made as a fit first needs them and kept; one team
    at a time runs on them (``claim``). A process forked from one that has
    them has not their threads: it makes its own (os.register_at_fork)."""

    def __init__(self):
        # the idents of the threads claiming them, in order; the first holds
        # them. Not a lock: a signal handler's exception right after a lock's
        # acquire left it taken for good, and every later team started
        # threads of its own; a claim so left is its thread's, which takes
        # it up again at its next run (or drops it when the thread is gone).
        self._holders = []
        self._threads = []

    def claim(self):
        """Whether this thread may run a team on them now (release() after)."""
        me = threading.get_ident()
        holders = self._holders
        holders.append(me)  # one step under the GIL: at most one thread finds itself first
        first = holders[0]
        if first == me:
            return True
        holders.remove(me)
        if first not in {t.ident for t in threading.enumerate()}:  # a claim left by a thread now gone
            with contextlib.suppress(ValueError):
                holders.remove(first)
        return False

    def release(self):
        me = threading.get_ident()
        while me in self._holders:
            self._holders.remove(me)

    def workers(self, count):
        """``count`` threads, started here where fewer are alive (after claim())."""
        self._threads = [t for t in self._threads if t.thread.is_alive()]
        while len(self._threads) < count:
            self._threads.append(TeamThread(len(self._threads) + 1))
        return self._threads[:count]

    def idle(self):
        """Whether no team runs on them."""
        return not self._holders and all(t.idle for t in self._threads)


TEAM_THREADS = TeamThreads()


def _new_team_threads():
    global TEAM_THREADS
    TEAM_THREADS = TeamThreads()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_team_threads)


def team_members():
    """How many members a team has: one per thread Numba runs (numba.set_num_threads)."""
    return numba.get_num_threads()


def team_parts(dims, size, dropping, threads=None):
    """How many parts a team splits each hidden layer of a network of layer
    sizes ``dims`` into, for batches of ``size`` examples: one a thread,
    each at least MIN_ROWS rows of the widest hidden layer; 0 where a team
    does not pay (no hidden layer, under TEAM_WORK multiply-adds a batch,
    one thread, or dropout)."""
    threads = team_members() if threads is None else threads
    if len(dims) < 3 or dropping:
        return 0
    work = size * sum(dims[l] * dims[l - 1] for l in range(1, len(dims)))
    parts = min(threads, max(dims[1:-1]) // MIN_ROWS)
    return parts if parts >= 2 and work >= TEAM_WORK else 0


def row_splits(dims, parts):
    """The parts' first rows in each hidden layer, (L - 1, parts + 1)
    int64: as even as multiples of MICRO_ROWS (the micro-kernel's row
    block) allow, part 0 never empty; a narrow layer may leave the last
    parts none. Except where that would leave a part fewer than
    MICRO_MIN_ROWS rows and an even split would not: then the even split,
    whose parts' products keep the packed plans (they need MICRO_MIN_ROWS
    rows; a part that took the blocked plans was a third slower than the
    other: docs/performance-log.md, "Packed from four row blocks")."""
    def first_row(n, q, block):
        return min(n, -(-(q * n // parts) // block) * block)

    def layer(n):
        rows = [first_row(n, q, MICRO_ROWS) for q in range(parts + 1)]
        if min(np.diff(rows)) < MICRO_MIN_ROWS <= n // parts:
            rows = [first_row(n, q, 1) for q in range(parts + 1)]
        return rows
    return np.array([layer(n) for n in dims[1:-1]], dtype=np.int64)


def part_rows(net, splits, parts, widths):
    """Arrays a part writes by rows, each part's apart: for each part q, a
    list over the layers of its rows of the layer's (n[l+1], widths[l])
    array, (splits[l, q + 1] - splits[l, q], widths[l]), and for the output
    layer part 0 the whole (n[L], widths[L-1]) (the output item's; for
    parts q > 0 an empty (0, widths[L-1])). Each part's rows lie in a
    buffer of their own, followed by PAD_PARTS times their bytes that
    nothing writes (address space only: no page of it is ever touched).
    Not rows of one array: the cores' hardware prefetchers follow the
    micro-kernel's stores down a part's rows and run on into the rows after
    them, taking the next part's lines from the core writing them (docs/performance-log.md,
    "Parts apart in memory")."""
    p, ops, dt = net.program, net._ops, net.dtype
    dims = net.layer_dims
    L = len(dims) - 1
    out = []
    for q in range(parts):
        layers = []
        for l in range(L - 1):
            cells = int(splits[l, q + 1] - splits[l, q]) * widths[l]
            layers.append(ops.empty_lines(((1 + PAD_PARTS) * cells,), dt)[:cells].reshape(-1, widths[l]))
        layers.append(ops.empty((dims[L] if q == 0 else 0, widths[L - 1]), dt))
        out.append(p.list(layers))
    return numba.typed.List(out)


def team_arrays(net, X, size, last, parts):
    """fit_epochs_team's own arguments for ``net`` (a NeuralNetwork) training
    on X (n[0], m) with batches of ``size`` (the last of ``last`` examples,
    0 if none): the parts' shares of dA for a full and for the last batch,
    the row splits, the loss log, and the parts' rows of dW and of Z for a
    full and for the last batch (part_rows), as a tuple in the order it
    takes them, and sync: a slot for each of the P + 1 items of a phase
    (the parts, and the extra item of the first forward and backward
    phases: model.team)."""
    p, ops, dt = net.program, net._ops, net.dtype
    hidden = net.layer_dims[1:-1]

    def shares(width):
        return numba.typed.List([p.list([ops.empty((n, width), dt) for n in hidden]) for _ in range(1, parts)])

    full = shares(size)
    steps = -(-X.shape[1] // size)
    splits = row_splits(net.layer_dims, parts)
    dims = net.layer_dims
    dW = part_rows(net, splits, parts, dims[:-1])
    Z = part_rows(net, splits, parts, [size] * (len(dims) - 1))
    Z_last = part_rows(net, splits, parts, [last] * (len(dims) - 1)) if last else Z
    return (full, shares(last) if last else full, splits, np.zeros((steps, 1)), dW, Z, Z_last,
            np.zeros(SYNC_SIZE + parts + 1, dtype=np.int64))
