"""The fit driver: how ``NeuralNetwork.fit`` runs the training loop.

fit (network.py) checks its arguments and calls ``_drive``, which runs
``chunk(start, count)`` until every iteration is done, in chunks of about
CHUNK_SECONDS: between two chunks the progress bar moves and a Ctrl-C
lands. ``_chunk_runner`` allocates the fit's buffers once (or takes those the
last fit kept) and returns ``chunk``, which calls the program's ``fit_chunk``
(model/training.py): forward, cost, backward and update for ``count``
iterations, compiled in one call on "numba" and "parallel". Mini-batch
fits go through ``_epoch_runner`` and ``fit_epochs``; on "parallel" their
steps are shared by a team of threads (``model/team.py``, ``fit_epochs_team``).
What fit changes in the process meanwhile (SIGINT's handler, BLAS's
threads) is ``model/_fit_env.py``'s.

``FitLoop`` is a mixin of NeuralNetwork: it reads the network's parameters
(``_W``, ``_b``), its backend (``_ops``, ``program``) and its kept buffers.
"""

import contextlib
import time

import numpy as np

from kernels.loops.plans import PARALLEL

from ._fit_env import BlasLimit, DeferredInterrupt
from ._progress import Progress
from . import team_run
from .training import DIVERGED, STOPPED, X_NOT_FINITE

# Seconds of work per chunk of fit: the progress bar updates and a Ctrl-C
# lands (model._fit_env.DeferredInterrupt) between chunks.
CHUNK_SECONDS = 0.1
# A fit keeps its buffers (and their typed lists) for the next fit with as
# many examples when they take at most this many bytes: for a small network,
# allocating them and building Numba's typed lists costs more than several
# iterations. Larger buffers are freed when fit returns.
KEEP_FIT_BUFFERS_BYTES = 4 << 20
# Mini-batches of an X of at least this many bytes (every X: the tests set
# it past theirs to compare with a gather per batch) are gathered once an
# epoch into a buffer the size of X (the course's shuffled_X; scikit-learn's
# MLP shuffles a copy of X every epoch too), batch after batch, and each
# batch's steps read their block of it (model.training.fit_epochs): a
# batch's own gather reads a cache line of X for every cell it takes, from
# memory past the caches, and from the other core's cache for the team's
# members, which gather a small X's rows apart (docs/performance-log.md,
# "The epoch's batches where the steps find them").
EPOCH_GATHER_BYTES = 0
# An X that a fit gathers once an epoch and that takes at least this many
# bytes in the network's dtype is tested for NaN and infinity by that gather
# (each row while it is in the caches), not first by check_X (a pass over a
# large X of its own, a large part of a short fit's fixed cost); a smaller X
# by check_X, a pass of microseconds, so that its error comes before any
# other check, buffer or compilation.
GATHER_TESTS_X_BYTES = 4 << 20
# ... and the epoch's buffer is kept with the fit's other buffers (for the next fit
# of the same X shape) up to this size: a new one costs a first touch of
# every page (about twice the gather's own writes), in each fit(epochs=1).
# Past it, a fit frees it when it returns.
KEEP_EPOCH_BUFFER_BYTES = 64 << 20


def call_recorded(results, fn, *args):
    """fn(*args), its result appended to ``results`` as fn returns. The
    append is list.extend's, in C: the interpreter runs a signal handler
    written in Python (a timeout's alarm, a SIGINT handler of the program's
    own) between two of its bytecodes, and where fn is compiled code
    ("numba", "parallel") there is none between fn's return and the append.
    So an exception such a handler raises as the chunk's compiled call
    returns finds that call's epochs in ``results``, and fit records them
    before raising it (``_drive``). (Where fn is Python, the interpreted
    backends' loops or the team's driver, one can still land inside it.)"""
    ran = len(results)
    results.extend(map(fn, *((a,) for a in args)))
    if len(results) == ran:  # fn raised StopIteration, which ends map's iteration silently
        raise RuntimeError(f"{getattr(fn, '__name__', fn)} raised StopIteration")
    return results[-1]


def _arrays(items):
    """The arrays in ``items`` (arrays, lists and tuples of them, nested)."""
    for item in items:
        if hasattr(item, "nbytes"):
            yield item
        elif hasattr(item, "__len__"):  # lists, tuples, typed lists
            yield from _arrays(list(item))


class FitLoop:
    """fit's machinery, mixed into NeuralNetwork (see the module docstring)."""

    def _drive(self, chunk, iterations, costs, cost_every, progress, key):
        """Run ``chunk(start, count) -> (done, status)`` until ``iterations`` are
        done, in chunks of about CHUNK_SECONDS. Returns (done, status), status
        DIVERGED, 0, or an exception to raise once the history is saved: a
        KeyboardInterrupt, what a signal handler raised while a team ran
        (team_run.run_members), or any exception raised in here, with the
        epochs of the chunks ``chunk.results`` recorded (call_recorded)."""
        bar = Progress(iterations, desc=f"fit [{self.backend}]", enabled=progress)
        # The first chunk is one iteration (and any compilation), unless the
        # last fit of the same kind (``key``: backend, m, ...) measured the chunk size.
        count = self._chunk_hint[1] if self._chunk_hint is not None and self._chunk_hint[0] == key else 1
        start, status = 0, 0
        try:
            # NumPy's overflow warnings are moot here: divergence is detected and raised
            with DeferredInterrupt() as interrupted, BlasLimit(self._ops.parallel and self._plans & PARALLEL), \
                    np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                while start < iterations:
                    count = min(count, iterations - start)
                    t0 = time.perf_counter()
                    done, status = chunk(start, count)
                    self._ops.synchronize()
                    elapsed = time.perf_counter() - t0
                    start += done
                    last = (start - 1) // cost_every
                    bar.update(done, costs[last] if start > 0 else None)
                    if isinstance(status, BaseException) or status in (DIVERGED, STOPPED, X_NOT_FINITE):
                        break
                    if interrupted:
                        status = KeyboardInterrupt()
                        break
                    per_iteration = elapsed / max(done, 1)
                    count = max(1, min(int(CHUNK_SECONDS / per_iteration) if per_iteration > 0 else 10**6, 10**6))
                    self._chunk_hint = (key, count)
        except BaseException as exc:  # a signal handler's, wherever it landed: what the chunks did is recorded
            results = getattr(chunk, "results", None)
            if results is None:
                raise
            start, status = sum(result[0] for result in results), exc
        finally:
            bar.close()
        return start, status

    def _chunk_runner(self, X, Y, costs, cost_every, learning_rate):
        """Allocate every buffer of the fit once (or take those the last fit
        kept); return chunk(start, count)."""
        p, dt = self._program_for(X.shape[1]), self.dtype
        W, b = self._parameter_lists(p)
        buf, W_next, b_next, zeros, codes, kept = self._fit_scratch(X)
        lists = self._fit_lists(p, (W, b, W_next, b_next, buf["Z"], buf["A"], buf["dZ"], buf["dA"], buf["dW"],
                                    buf["db"]), kept)
        eps = self._eps()
        ops = self._ops
        optimistic = ops.syncs_are_costly
        if optimistic:  # the parameters at the start of the chunk, to go back to
            W_start = [ops.empty(w.shape, dt) for w in self._W]
            b_start = [ops.empty(v.shape, dt) for v in self._b]

        results = []  # (done, status) of each chunk run (call_recorded)

        def run(fit_chunk, start, count):
            return fit_chunk(costs, lists, X, zeros, Y, codes, start, count, cost_every, learning_rate, eps,
                             ops.exact_math)

        def restore():
            for l in range(len(W)):
                ops.copy(W[l], W_start[l])
                ops.copy(b[l], b_start[l])

        def chunk(start, count):
            traded = True  # whether W, b may hold other arrays than _W, _b now
            try:
                if not optimistic:
                    done, status = call_recorded(results, p.fit_chunk, costs, lists, X, zeros, Y, codes, start,
                                                 count, cost_every, learning_rate, eps, ops.exact_math)
                    traded = done % 2 == 1  # fit_chunk trades the lists' arrays once per step
                    return done, status
                # A device backend: run the chunk without the per-iteration test
                # (each test is a host sync), test the parameters once at its end,
                # and only if that fails (or a recorded cost is NaN/inf) run it
                # again, guarded, from its starting parameters: that run stops at
                # the exact iteration and keeps the last finite parameters.
                for l in range(len(W)):
                    ops.copy(W_start[l], W[l])
                    ops.copy(b_start[l], b[l])
                try:
                    done, status = run(p.fit_chunk_unguarded, start, count)
                    finite = status != DIVERGED and p.parameters_finite(W, b, zeros)
                except BaseException:  # leave the parameters of a finite iteration: the chunk's first
                    with contextlib.suppress(Exception):
                        restore()
                    raise
                if finite:
                    results.append((done, status))
                    return done, status
                restore()
                return call_recorded(results, run, p.fit_chunk, start, count)
            finally:  # the lists may have traded arrays: W, b hold the current parameters
                self._keep_parameter_lists(p, W, b, traded)

        chunk.results = results
        return chunk

    def _epoch_runner(self, X, Y, costs, cost_every, learning_rate, options, validation=None, val_costs=None):
        """chunk(start, count) for the second course's training (model.training.fit_epochs):
        buffers for a batch and for the smaller last one, allocated once per
        fit; the optimizer's state taken over from the last fit where it fits."""
        dt, ops = self.dtype, self._ops
        m = X.shape[1]
        size = m if options.batch_size is None else min(options.batch_size, m)
        last = m % size
        copy = size < m  # one batch in order: X itself is A[0]
        dropping = bool(min(options.keep_prob, default=1.0) < 1.0)
        ms = [size, last or size] + ([] if validation is None else [validation[0].shape[1]])
        p = self._program_for(*ms)
        # the parallel backend shares each step between its threads (model.team)
        members = team_run.team_members() if p.team and copy else 0
        parts = team_run.team_parts(self.layer_dims, size, dropping, members) if members else 0
        state = self._optimizer_state_for(options)
        W, b = self._parameter_lists(p)
        # The buffers below hold nothing from one fit to the next (the
        # moments are the optimizer state's own arrays), so the next fit of
        # the same shapes takes them over, as _fit_scratch does: building
        # them and their typed lists is a large part of a short fit. Not with
        # validation data (its lists hold X_val) or one batch (A[0] is X).
        key = ("epochs", self.backend, p, X.shape, size, copy, id(state), options.early_stopping, parts)
        kept = self._fit_buffers
        if validation is None and copy and kept is not None and kept[0] == key and kept[1] is state:
            full, tail, Yb, Ybl, W_next, b_next, dW, db, moments, codes, W_best, b_best, shared, memo, Xs = kept[2]
        else:
            self._fit_buffers = None
            full = self._batch_buffers(X, size, copy)
            tail = self._batch_buffers(X, last, copy) if last else full
            Yb = ops.empty((Y.shape[0], size), dt) if copy else Y  # Y (1, m), or (C, m) one-hot
            Ybl = ops.empty((Y.shape[0], last), dt) if last else Yb
            spare_W, spare_b = self._spare_parameters()
            W_next, b_next = p.list(spare_W), p.list(spare_b)
            # a team has each part's rows of dW instead (team_run.part_rows)
            dW = None if parts else p.list([ops.empty(w.shape, dt) for w in self._W])
            db = p.list([ops.empty(v.shape, dt) for v in self._b])
            moments = [p.list(state[k]) for k in ("V_W", "V_b", "S_W", "S_b")]
            codes = p.codes(self._codes())
            W_best = p.list([ops.empty(w.shape, dt) for w in self._W]) if options.early_stopping else W_next
            b_best = p.list([ops.empty(v.shape, dt) for v in self._b]) if options.early_stopping else b_next
            shared = team_run.team_arrays(self, X, size, last, parts) if parts else ()
            gather = self._gathers(X, options.batch_size)
            Xs = ops.empty_lines(X.shape if gather else (0, 0), dt)  # the epoch's gather of X, or unused
            memo = {}  # what is made from the kept buffers, kept with them (team_run.team_lists)
            kept = (full, tail, Yb, Ybl, W_next, b_next, dW, db, moments, codes, W_best, b_best, shared, memo, Xs)
            # what counts: not the moments (the optimizer state's, kept with it
            # anyway), nor the epoch buffer (its own limit), nor X (the caller's)
            own_arrays = (full, tail, Yb, Ybl, W_next, b_next, dW, db, codes, W_best, b_best, shared)
            own = {id(a): a.nbytes for a in _arrays(own_arrays) if a is not X}
            nbytes = sum(own.values())  # each array once: W_best is W_next without early stopping
            if (validation is None and copy and nbytes <= KEEP_FIT_BUFFERS_BYTES
                    and Xs.nbytes <= KEEP_EPOCH_BUFFER_BYTES):
                self._fit_buffers = (key, state, kept)
        perm = np.arange(m, dtype=np.int64)
        opt = options.optimizer
        beta1, beta2, epsilon = opt.hyper()
        eps, first_epoch = self._eps(), state["epochs"]
        # validation: its own forward buffers (A[0] = Xv), the best parameters
        # so far, and [best cost, epochs without improvement, best epoch]
        if validation is not None:
            Xv, Yv = validation
            Zv, Av = self._batch_buffers(Xv, Xv.shape[1], False)[:2]
        else:  # unused: the batch's own lists stand in
            (Zv, Av), Yv, val_costs = full[:2], Yb, costs
        track = np.array([np.inf, 0.0, -1.0])
        keep = np.array(list(options.keep_prob) + [1.0])  # per layer; the output keeps every unit
        self._early_stopping_track = track
        self._early_stopping_best = (W_best, b_best)

        results = []  # (done, status, steps[, traded]) of each chunk run (call_recorded)

        def chunk(start, count):
            traded = True  # whether W, b may hold other arrays than _W, _b now
            ran = len(results)
            try:
                steps_so_far = state["steps"]
                settings = (learning_rate, options.decay_rate, options.decay_every, opt.code, beta1, beta2,
                            epsilon, options.l2, eps, ops.exact_math)
                ending = (Zv, Av, Yv, val_costs, W_best, b_best, track, validation is not None,
                          options.early_stopping, options.n_iter_no_change, options.tol)
                if parts:  # the team's own arrays; each part's rows of dW and Z in place of dW and Z
                    dAp, dApl, splits, jlog, dW_parts, Z_parts, Z_parts_last, sync = shared
                    V_W, V_b, S_W, S_b = moments
                    lists, nested = team_run.team_lists(p, memo, W, b, lambda: dict(
                        W=W, b=b, W_next=W_next, b_next=b_next, V_W=V_W, V_b=V_b, S_W=S_W, S_b=S_b, A=full[1],
                        dZ=full[2], dA=full[3], Al=tail[1], dZl=tail[2], dAl=tail[3], db=db, Zv=Zv, Av=Av,
                        W_best=W_best, b_best=b_best, Z=Z_parts, Zl=Z_parts_last, dAp=dAp, dApl=dApl, dW=dW_parts))
                    done, status, steps, traded = call_recorded(
                        results, p.fit_epochs_team,
                        sync, costs, lists, nested, W, b, W_next, b_next, Yb, Ybl, splits, jlog, X, Y, perm,
                        Xs, codes, start, count, cost_every, first_epoch, steps_so_far, *settings, options.shuffle,
                        options.seed, Yv, val_costs, track, validation is not None, options.early_stopping,
                        options.n_iter_no_change, options.tol, members)
                else:
                    done, status, steps = call_recorded(
                        results, p.fit_epochs,
                        costs, W, b, W_next, b_next, *moments, *full, *tail, dW, db, X, Y, Yb, Ybl, perm,
                        Xs, codes, start, count, cost_every, first_epoch, steps_so_far, *settings, copy,
                        options.shuffle and copy, options.seed, *ending, keep, dropping)
                return done, status
            finally:  # the lists may have traded arrays: W, b hold the current parameters
                if len(results) > ran:  # the steps the chunk made, whatever was raised after it returned
                    state["steps"] = results[-1][2]
                self._keep_parameter_lists(p, W, b, traded)

        chunk.results = results
        return chunk

    @staticmethod
    def _cost_records(epochs, cost_every, validating):
        """fit's arrays for the costs (and validation costs) it records,
        ceil(epochs / cost_every) each: not filled, since only the cells of
        the epochs done are read, so an epochs cap far above what early
        stopping runs takes only the pages it writes."""
        n = -(-epochs // cost_every)
        try:
            return np.empty(n), (np.empty(n) if validating else None)
        except MemoryError:
            raise MemoryError(
                f"fit(epochs={epochs}, cost_every={cost_every}) records {n} costs ({n * 8 / 2**30:.3g} GiB), "
                f"more than this machine can hold; record fewer (a larger cost_every) or fit in several calls "
                f"(each continues where the last stopped)") from None

    def _restore_best(self, W_best, b_best):
        """The parameters of the best epoch (early stopping's copy) made current."""
        for l in range(self.n_layers):
            self._ops.copy(self._W[l], W_best[l])
            self._ops.copy(self._b[l], b_best[l])

    def _fit_tests_X(self, X, options):
        """Whether this fit's own passes find NaN and infinity in X (the
        chunks then return X_NOT_FINITE before any step with them), so that
        fit's check of X need not test them first: an X of at least
        GATHER_TESTS_X_BYTES that a mini-batch fit gathers once an epoch
        (_gathers), on a backend that trains with mini-batches."""
        if options.plain or options.needs_kernels(self._ops) or not self._gathers(X, options.batch_size):
            return False
        return self._x_bytes(X) >= GATHER_TESTS_X_BYTES

    def _gathers(self, X, batch_size):
        """Whether a mini-batch fit gathers X once an epoch (see
        EPOCH_GATHER_BYTES): batches smaller than m, X of at least that many
        bytes in the network's dtype. That gather tests X for NaN and infinity
        (fit_epochs' X_NOT_FINITE), so fit's check of a large X does not
        (_fit_tests_X)."""
        shape = getattr(X, "shape", ())
        if batch_size is None or len(shape) != 2 or batch_size >= shape[1]:
            return False
        return self._x_bytes(X) >= EPOCH_GATHER_BYTES

    def _x_bytes(self, X):
        """The bytes of X (n_x, m) in the network's dtype."""
        return X.shape[0] * X.shape[1] * self.dtype.itemsize

    def _batch_buffers(self, X, size, copy):
        """Z, A, dZ, dA for batches of ``size`` examples as program lists;
        A[0] is a (n_x, size) buffer for the batch's columns of X (X itself
        when not ``copy``)."""
        p, dt, empty = self.program, self.dtype, self._ops.empty
        dims = self.layer_dims[1:]
        first = empty((self.layer_dims[0], size), dt) if copy else X
        return (p.list([empty((n, size), dt) for n in dims]), p.list([first] + [empty((n, size), dt) for n in dims]),
                p.list([empty((n, size), dt) for n in dims]), p.list([empty((n, size), dt) for n in dims]))

    def _optimizer_state_for(self, options):
        """The optimizer's state (moments V, S per parameter, steps, epochs):
        the last fit's while the optimizer, its decay and the dtype are the
        same, else new (zero moments: the course's initialize_velocity / adam)."""
        key = (options.optimizer, options.decay_rate, options.decay_every, self.dtype, self.backend)
        state = self._optimizer_state
        if state is not None and state["key"] == key:
            return state
        dt, ops = self.dtype, self._ops
        none = ops.asarray(np.zeros((0, 0), dtype=dt))

        def zeros_like(params, used):
            return [ops.asarray(np.zeros(x.shape, dtype=dt)) if used else none for x in params]

        v, s = options.optimizer.uses_v, options.optimizer.uses_s
        state = dict(key=key, steps=0, epochs=0, V_W=zeros_like(self._W, v), V_b=zeros_like(self._b, v),
                     S_W=zeros_like(self._W, s), S_b=zeros_like(self._b, s))
        self._optimizer_state = state
        return state

    def _spare_parameters(self):
        """Arrays like W and b for the step to be written into (the guard
        keeps the current ones until the step is finite)."""
        dt, ops = self.dtype, self._ops
        return [ops.empty(w.shape, dt) for w in self._W], [ops.empty(v.shape, dt) for v in self._b]

    def _finiteness_zeros(self):
        """Zeros as long as the largest parameter: the full-batch loop's
        finiteness test takes them (all_finite; kernels.cuda tests with a
        dot against them). The mini-batch step tests its cells itself."""
        biggest = max(w.size for w in list(self._W) + list(self._b))
        return self._ops.asarray(np.zeros(biggest, dtype=self.dtype))

    def _fit_scratch(self, X):
        """fit's buffers for X (n_x, m) as program lists: (buf, W_next, b_next,
        zeros, codes, kept); buf as _buffers(X, backward=True), but A[0] an
        empty stand-in of X's type (fit_chunk takes X there in its own list
        of borrowed views: X is not kept). Kept for the next fit with as many
        examples when they are small; ``kept``, a dict kept with them (None
        when they are not), for what else the next fit may take over."""
        p = self.program
        key = ("plain", self.backend, X.shape[1])
        if self._fit_buffers is not None and self._fit_buffers[0] == key:
            _, (buf, *rest), kept = self._fit_buffers
        else:
            self._fit_buffers = None
            raw = self._buffers(X, backward=True)
            raw["A"] = [self._ops.empty((0, 0), self.dtype)] + list(raw["A"][1:])
            (spare_W, spare_b), zeros = self._spare_parameters(), self._finiteness_zeros()
            buf = {k: p.list(v) for k, v in raw.items()}
            rest = [p.list(spare_W), p.list(spare_b), zeros, p.codes(self._codes())]
            kept = [spare_W, spare_b, [zeros]] + list(raw.values())
            if sum(a.nbytes for arrays in kept for a in arrays) <= KEEP_FIT_BUFFERS_BYTES:
                self._fit_buffers = (key, (buf, *rest), {})
        return (buf, *rest, self._fit_buffers[2] if self._fit_buffers is not None else None)

    def _fit_lists(self, p, lists, kept):
        """fit_chunk's ten lists as one list of program ``p`` (Numba's
        dispatch takes ten typed lists in ~16 us, a typed list of them in
        ~3), kept in ``kept`` (_fit_scratch's: with the fit's kept buffers)
        for the next fit while the same ten lists come back (those buffers'
        and the parameter lists): making it costs more than the dispatch
        saves. Where the buffers are not kept (kept None), neither is it."""
        last = kept.get("lists") if kept is not None else None
        if last is not None and all(a is b for a, b in zip(last[0], lists)):
            return last[1]
        joined = p.lists(lists)
        if kept is not None:
            kept["lists"] = (tuple(lists), joined)
        return joined

