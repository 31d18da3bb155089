"""fit among the program's own signal handlers, threads and BLAS settings:
an interrupted wait leaves the network usable, a handler's exception never
leaves a team thread running, the program's SIGINT handler is its own, and
the BLAS limit is restored once, whatever order concurrent fits end in."""

import gc
import signal
import threading
import time
import weakref

import numba
import numpy as np
import pytest

from model import LogisticRegression, NeuralNetwork, _fit_env, _guard, team_run

needs_alarm = pytest.mark.skipif(not hasattr(signal, "setitimer") or
                                 threading.current_thread() is not threading.main_thread(),
                                 reason="needs POSIX interval timers and the main thread (signal handlers run there)")


class Alarm(Exception):
    """What a timeout's SIGALRM handler raises."""


@pytest.fixture
def alarm_in():
    """alarm_in(seconds): SIGALRM raises Alarm after that long (once)."""
    def handler(signum, frame):
        raise Alarm()
    previous = signal.signal(signal.SIGALRM, handler)
    yield lambda seconds: signal.setitimer(signal.ITIMER_REAL, seconds)
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def _held(net, kind):
    """A thread running a call of ``kind`` (_guard.shared: a reader; _guard.exclusive:
    a writer) on ``net`` until the event returned with it is set."""
    holding, release = threading.Event(), threading.Event()

    @kind
    def hold(net):
        holding.set()
        release.wait(10)
    t = threading.Thread(target=hold, args=(net,))
    t.start()
    holding.wait(10)
    return t, release


def _in_thread(call, seconds=10):
    """call() in another thread; its result, or the thread still running after seconds."""
    out = []
    t = threading.Thread(target=lambda: out.append(call()), daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "the call in another thread still waits: a left-behind mark holds the network"
    return out[0]


@needs_alarm
def test_an_exception_while_fit_waits_for_readers_leaves_the_network_free(alarm_in):
    # the writer's mark stayed set: every later predict in another thread blocked for good
    X = np.random.RandomState(0).randn(2, 20)
    Y = (X[:1] > 0).astype(float)
    net = NeuralNetwork([2, 3, 1], seed=0)
    t, release = _held(net, _guard.shared)
    alarm_in(0.05)
    with pytest.raises(Alarm):
        net.fit(X, Y, 1, 0.1)  # waits for the reader until the alarm
    release.set()
    t.join(10)
    assert net._guard._writer is None
    done = []
    other = threading.Thread(target=lambda: done.append(net.predict(X).shape))
    other.start()
    other.join(10)
    assert done == [(1, 20)]
    assert net.fit(X, Y, 1, 0.1).n_iter_ == 1


def test_a_read_mark_left_behind_does_not_hold_the_network():
    # a signal handler's exception between begin_read and the wrapper's try leaves the mark set;
    # fit in another thread then waited for that reader for ever
    X = np.random.RandomState(0).randn(2, 20)
    Y = (X[:1] > 0).astype(float)
    net = NeuralNetwork([2, 3, 1], seed=0).fit(X, Y, 1, 0.1)
    net._guard.begin_read()  # the mark, as an interrupted predict leaves it
    net._guard.begin_read()  # twice: a nested read's mark too
    assert _in_thread(lambda: net.fit(X, Y, 2, 0.1).n_iter_) == 3
    assert net._guard._reads == {}
    assert net.predict(X).shape == (1, 20)
    # this thread's own stale depth must not let it read while another thread writes
    net._guard.begin_read()
    t, release = _held(net, _guard.exclusive)
    threading.Timer(3 * _guard.RECHECK_S, release.set).start()
    before = time.monotonic()
    net.predict(X)
    assert release.is_set() and time.monotonic() - before >= 2 * _guard.RECHECK_S
    t.join(10)
    assert net._guard._writer is None and net._guard._reads == {}


def test_a_read_mark_left_behind_and_a_new_read_do_not_wait_for_each_other():
    # the read saw its thread's mark was left behind but kept it while it waited for the writer,
    # and the writer's recheck counted that waiting read as running: both waited for good
    X = np.random.RandomState(0).randn(2, 20)
    Y = (X[:1] > 0).astype(float)
    net = NeuralNetwork([2, 3, 1], seed=0).fit(X, Y, 1, 0.1)
    marked, done = threading.Event(), []

    def reader():  # its own mark left behind, then a read while the other thread's fit waits on it
        net._guard.begin_read()
        marked.set()
        deadline = time.monotonic() + 10
        while net._guard._writer is None and time.monotonic() < deadline:
            time.sleep(0.001)
        done.append(net.predict(X).shape)
    r = threading.Thread(target=reader, daemon=True)
    r.start()
    marked.wait(10)
    fitted = _in_thread(lambda: net.fit(X, Y, 2, 0.1).n_iter_)
    r.join(10)
    assert not r.is_alive() and done == [(1, 20)] and fitted == 3
    assert net._guard._reads == {} and net._guard._writer is None


def test_a_write_mark_left_behind_does_not_hold_the_network():
    X = np.random.RandomState(0).randn(2, 20)
    Y = (X[:1] > 0).astype(float)
    net = NeuralNetwork([2, 3, 1], seed=0).fit(X, Y, 1, 0.1)
    want = net.predict_proba(X)
    net._guard.begin_write("fit", "NeuralNetwork")  # the mark, as an interrupted fit leaves it
    np.testing.assert_array_equal(_in_thread(lambda: net.predict_proba(X)), want)
    assert net._guard._writer is None
    net._guard.begin_write("fit", "NeuralNetwork")
    assert _in_thread(lambda: net.fit(X, Y, 2, 0.1).n_iter_) == 3
    net._guard.begin_write("fit", "NeuralNetwork")  # this thread's own: its next fit is not a nested one
    assert net.fit(X, Y, 1, 0.1).n_iter_ == 4
    assert net._guard._writer is None


def test_a_waiting_writer_still_waits_for_a_reader_that_runs():
    # the recheck drops only marks whose thread runs no guarded call
    X = np.random.RandomState(0).randn(2, 20)
    Y = (X[:1] > 0).astype(float)
    net = NeuralNetwork([2, 3, 1], seed=0).fit(X, Y, 1, 0.1)
    t, release = _held(net, _guard.shared)
    threading.Timer(5 * _guard.RECHECK_S, release.set).start()
    net.fit(X, Y, 1, 0.1)
    assert release.is_set()
    t.join(10)


@needs_alarm
def test_alarms_during_predict_calls_never_leave_the_network_held():
    # SIGALRM every 20 us raising in the main thread, wherever it is in predict's calls
    X = np.random.RandomState(0).randn(2, 8)
    Y = (X[:1] > 0).astype(float)
    net = NeuralNetwork([2, 3, 1], seed=0).fit(X, Y, 1, 0.1)
    armed = [False]

    def handler(signum, frame):
        if armed[0]:
            armed[0] = False
            raise Alarm()
    previous = signal.signal(signal.SIGALRM, handler)
    interrupted = 0
    try:
        signal.setitimer(signal.ITIMER_REAL, 2e-5, 2e-5)
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            try:
                armed[0] = True
                for _ in range(1000):
                    net.predict(X)
            except Alarm:
                interrupted += 1
            armed[0] = False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert interrupted > 0
    assert _in_thread(lambda: net.fit(X, Y, 1, 0.1).n_iter_) == 2
    assert net.predict(X).shape == (1, 8)


@needs_alarm
def test_a_handlers_exception_waits_for_the_team_thread_and_is_returned(alarm_in):
    # wait() let it through while the team thread still ran its member; the next run then hung
    finished = []

    def member(sync):
        if threading.current_thread().name.startswith("jitloops-team"):
            time.sleep(0.3)  # the team thread's member outlasts the alarm
        sync[0] += 1
        finished.append(threading.current_thread().name)

    sync = np.zeros(1, dtype=np.int64)
    alarm_in(0.05)
    pending = team_run.run_members(member, (sync,), 2, 2)
    assert isinstance(pending, Alarm)
    assert len(finished) == 2 and team_run.TEAM_THREADS.idle()
    finished.clear()
    assert team_run.run_members(member, (sync,), 2, 2) is None and len(finished) == 2


def test_a_members_own_error_is_raised_not_returned():
    @numba.njit(nogil=True)
    def member(sync):  # compiled, as team_member is: its errors come with no Python frame
        if sync[0] > 0:
            raise ZeroDivisionError("the member's own")
    with pytest.raises(ZeroDivisionError, match="the member's own"):
        team_run.run_members(member, (np.ones(1, dtype=np.int64),), 2, 2)
    assert team_run.TEAM_THREADS.idle()


@needs_alarm
def test_a_handlers_exception_during_a_team_fit_is_raised_after_the_epochs_are_recorded(alarm_in, monkeypatch):
    monkeypatch.setattr(team_run, "team_parts", lambda dims, size, dropping, threads=None: 0 if dropping else 2)
    X = np.random.RandomState(1).randn(12, 300)
    Y = (X[:1] > 0).astype(float)
    kwargs = dict(batch_size=64, optimizer="adam", seed=2)
    make = lambda: NeuralNetwork([12, 24, 16, 1], activations="relu", init="he", seed=1, backend="parallel")
    make().fit(X, Y, 1, 0.01, **kwargs)  # compiled before the alarm
    net = make()
    runs = []
    original = team_run.run_members

    def run_members(*args):  # the alarm rings while the third run's members work (a chunk of ~0.1 s)
        runs.append(1)
        if len(runs) == 3:
            alarm_in(0.01)
        return original(*args)
    monkeypatch.setattr(team_run, "run_members", run_members)
    with pytest.raises(Alarm):
        net.fit(X, Y, 10**7, 0.01, **kwargs)
    assert 0 < net.n_iter_ < 10**7 and team_run.TEAM_THREADS.idle()
    again = make().fit(X, Y, net.n_iter_, 0.01, **kwargs)
    for k, v in again.parameters.items():
        np.testing.assert_array_equal(net.parameters[k], v, err_msg=k)


@needs_alarm
@pytest.mark.parametrize("backend", ["numba", "parallel"])
@pytest.mark.parametrize("kind", ["full batch", "adam", "logistic"])
def test_a_handlers_exception_after_a_compiled_chunk_is_raised_after_its_epochs_are_recorded(alarm_in, backend,
                                                                                             kind):
    # it landed as the chunk's compiled call returned, and left fit unrecorded: the parameters had
    # moved on, n_iter_, costs_ and the optimizer's step count had not
    X = np.random.RandomState(1).randn(4, 300)
    Y = (X[:1] > 0).astype(float)
    kwargs = dict(batch_size=32, optimizer="adam", seed=2) if kind == "adam" else {}
    if kind == "logistic":
        make = lambda: LogisticRegression(4, backend=backend)
    else:
        make = lambda: NeuralNetwork([4, 8, 1], seed=1, backend=backend)
    make().fit(X, Y, 1, 0.01, **kwargs)  # compiled before the alarm
    for delay in (0.05, 0.17, 0.29):  # several chunks of about 0.1 s, the alarm inside one
        net = make()
        alarm_in(delay)
        with pytest.raises(Alarm):
            net.fit(X, Y, 10**9, 0.01, cost_every=1, **kwargs)
        assert 0 < net.n_iter_ == len(net.costs_) < 10**9
        again = make().fit(X, Y, net.n_iter_, 0.01, cost_every=1, **kwargs)
        np.testing.assert_array_equal(net.costs_, again.costs_)
        for k, v in again.parameters.items():
            np.testing.assert_array_equal(net.parameters[k], v, err_msg=k)
        # the optimizer's state too: both go on alike
        net.fit(X, Y, 3, 0.01, **kwargs)
        again.fit(X, Y, 3, 0.01, **kwargs)
        for k, v in again.parameters.items():
            np.testing.assert_array_equal(net.parameters[k], v, err_msg=k)


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals need the main thread")
@pytest.mark.parametrize("handler", [signal.SIG_IGN, "own"])
def test_fit_leaves_the_programs_own_sigint_handler_alone(handler):
    # fit replaced it: an ignored Ctrl-C (a pool's workers) stopped fit, a handler of its own never ran
    calls = []
    handler = (lambda signum, frame: calls.append(signum)) if handler == "own" else handler
    previous = signal.signal(signal.SIGINT, handler)
    try:
        with _fit_env.DeferredInterrupt() as received:
            assert signal.getsignal(signal.SIGINT) is handler
            signal.raise_signal(signal.SIGINT)
        assert received == [] and calls == ([signal.SIGINT] if callable(handler) else [])
    finally:
        signal.signal(signal.SIGINT, previous)
    with _fit_env.DeferredInterrupt() as received:  # the default handler: deferred as before
        signal.raise_signal(signal.SIGINT)
    assert received == [signal.SIGINT]


def test_blas_limit_is_restored_once_whatever_order_concurrent_fits_end_in():
    from threadpoolctl import ThreadpoolController, threadpool_limits
    libs = [lib for lib in ThreadpoolController().select(user_api="blas").lib_controllers
            if _fit_env.is_numpy_library(lib.filepath)]
    if not libs or libs[0].num_threads < 2:
        pytest.skip("NumPy's BLAS runs one thread here: nothing to limit")
    before = libs[0].num_threads
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = []

    def first():
        with _fit_env.BlasLimit(True):
            first_in.set()
            second_in.wait(10)
            seen.append(libs[0].num_threads)
        first_out.set()

    def second():
        first_in.wait(10)
        with _fit_env.BlasLimit(True):
            second_in.set()
            first_out.wait(10)  # the first fit ends while this one runs
            seen.append(libs[0].num_threads)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == [1, 1] and libs[0].num_threads == before
    with threadpool_limits(limits=1, user_api="blas"):  # the program's own limit still takes, in any thread
        assert libs[0].num_threads == 1
    assert libs[0].num_threads == before


def test_the_team_thread_keeps_nothing_of_the_last_fit(monkeypatch):
    # its loop's locals held the run's closure: X, Y and the epoch's buffers stayed alive
    monkeypatch.setattr(team_run, "team_parts", lambda dims, size, dropping, threads=None: 0 if dropping else 2)
    X = np.random.RandomState(1).randn(12, 300)
    Y = (X[:1] > 0).astype(float)
    net = NeuralNetwork([12, 24, 16, 1], activations="relu", init="he", seed=1, backend="parallel")
    net.fit(X, Y, 1, 0.01, batch_size=64, optimizer="adam")
    gone = weakref.ref(X)
    del X, Y, net
    gc.collect()
    assert gone() is None


def test_a_claim_left_on_the_team_threads_is_taken_up_or_dropped():
    # a handler's exception right after the claim's lock was taken once left it taken for good
    names = []
    member = lambda tag: names.append(threading.current_thread().name)
    team_run.TEAM_THREADS._holders.append(threading.get_ident())  # this thread's claim, left behind
    team_run.run_members(member, ("x",), 2, 2)
    assert "jitloops-team-1" in names and team_run.TEAM_THREADS.idle()
    gone = threading.Thread(target=lambda: team_run.TEAM_THREADS._holders.append(threading.get_ident()))
    gone.start()
    gone.join()  # a claim of a thread that has ended
    names.clear()
    team_run.run_members(member, ("x",), 2, 2)  # runs on threads of its own, and drops the dead claim
    names.clear()
    team_run.run_members(member, ("x",), 2, 2)
    assert "jitloops-team-1" in names and team_run.TEAM_THREADS.idle()


def test_call_recorded_refuses_a_stop_iteration():
    # list.extend(map(...)) ends quietly at a StopIteration: the last chunk's result came back twice
    from model.fit import call_recorded
    results = [(3, 0)]

    def chunk(start):
        raise StopIteration
    with pytest.raises(RuntimeError, match="raised StopIteration"):
        call_recorded(results, chunk, 3)
    assert results == [(3, 0)]
