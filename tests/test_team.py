"""The parallel backend's mini-batch epochs shared by a team of threads
(model.team, kernels.loops.team).

Tolerances: against the numpy backend as every compiled backend
(conftest.assert_trains_like_numpy: 1e-7 relative in float64, 5e-4 in
float32): the team sums dA of a hidden layer from its parts' shares
(W[rows]^T dZ[rows]), which rounds differently from one sum over all units,
by the few ulp a summation order makes, amplified by Adam's division by
sqrt(s) + eps where s is tiny. Between team runs of different numbers of
members, or of threads, nothing may differ: which member does an item
never changes what it writes (assert_array_equal).
"""

import os
import signal
import threading
import time

import numba
import numpy as np
import pytest
from conftest import assert_trains_like_numpy, in_forked_child

from kernels import loops
from kernels.loops import team as loops_team
from kernels.options import MICRO_ROWS
from model import DivergenceError, NeuralNetwork, fit, team, team_run
from model.program import Program


def data(m=300, n=12, seed=3, classes=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, m))
    if classes:
        return X, np.argmax(rng.standard_normal((classes, n)) @ X, axis=0).reshape(1, m)
    return X, (X[0:1] + X[1:2] * X[2:3] > 0).astype(float)


@pytest.fixture
def two_parts(monkeypatch):
    """Every mini-batch fit of the parallel backend in the team, in two parts
    (whatever the network's size and the machine's threads), its members as
    set in ``members`` (the default: Numba's threads); records the calls."""
    calls = []
    members = []
    monkeypatch.setattr(team_run, "team_parts", lambda dims, size, dropping, threads=None: 0 if dropping else 2)
    monkeypatch.setattr(team_run, "team_members", lambda: members[0] if members else numba.get_num_threads())
    original = Program.fit_epochs_team

    def spy(self, *args):
        calls.append(args[-1])
        return original(self, *args)
    monkeypatch.setattr(Program, "fit_epochs_team", spy)
    return calls, members


# Two hidden layers both split in two non-empty parts (24 and 16 units: rows
# in multiples of MICRO_ROWS), so the second one's dA is summed from shares;
# the softmax network's (16, 8) leaves the second part of its 8 units empty.
DIMS = (12, 24, 16, 1)


def net(backend, dtype="float64", dims=DIMS, seed=1):
    return NeuralNetwork(list(dims), activations="relu", init="he", seed=seed, backend=backend, dtype=dtype,
                         output="softmax" if dims[-1] > 1 else "sigmoid")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", ["gd", "momentum", "rmsprop", "adam"])
def test_the_team_trains_like_numpy(two_parts, optimizer, dtype):
    """Shuffled batches of 48 (a last one of 12), decay and L2, every optimizer."""
    X, Y = data()
    lr = {"gd": 0.05, "momentum": 0.05, "rmsprop": 0.005, "adam": 0.005}[optimizer]
    assert_trains_like_numpy("parallel", dtype, lambda name: net(name, dtype), lambda n: n.fit(
        X.astype(dtype), Y, 3, lr, batch_size=48, optimizer=optimizer, decay_rate=0.3, l2=0.7, seed=5,
        cost_every=1))
    assert two_parts[0], "the parallel backend's fit did not run in the team"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_softmax_network_and_unshuffled_batches_train_like_numpy(two_parts, dtype):
    X, Y = data(classes=4)
    for shuffle in (True, False):
        assert_trains_like_numpy("parallel", dtype, lambda name: net(name, dtype, (12, 16, 8, 4)), lambda n: n.fit(
            X.astype(dtype), Y, 3, 0.01, batch_size=64, optimizer="adam", seed=2, shuffle=shuffle, cost_every=1))
    assert two_parts[0]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_three_hidden_layers_of_uneven_parts_train_like_numpy(two_parts, dtype):
    """Shares of dA summed into two hidden layers, parts of unequal rows, a
    last batch of 12 and L2."""
    X, Y = data(classes=3)
    dims = (12, 40, 24, 16, 3)
    assert_trains_like_numpy("parallel", dtype, lambda name: net(name, dtype, dims), lambda n: n.fit(
        X.astype(dtype), Y, 3, 0.01, batch_size=48, optimizer="adam", l2=0.3, seed=7, cost_every=1))
    assert two_parts[0]


def run(members_list, members, threads, **options):
    """Parameters and costs of a team fit with ``members`` members on ``threads`` of Numba's threads."""
    X, Y = data(m=257)  # batches of 64 and a last one of 1: one part of it empty
    members_list[:] = [members]
    previous = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        n = net("parallel")
        kwargs = dict(batch_size=64, optimizer="adam", seed=4, cost_every=1)
        kwargs.update(options)
        try:
            n.fit(X, Y, kwargs.pop("epochs", 4), kwargs.pop("learning_rate", 0.01), **kwargs)
            error = None
        except DivergenceError as e:
            error = str(e)
        return n.parameters, n.costs_, n.n_iter_, error
    finally:
        numba.set_num_threads(previous)


def assert_same(a, b):
    for k, v in a[0].items():
        np.testing.assert_array_equal(b[0][k], v, err_msg=k)
    np.testing.assert_array_equal(b[1], a[1])
    assert a[2:] == b[2:]


@pytest.mark.parametrize("options", [
    {},
    dict(l2=0.3, decay_rate=0.5, optimizer="momentum"),
    dict(epochs=60, early_stopping=True, n_iter_no_change=2, tol=1e-2),
    dict(learning_rate=1e300, optimizer="gd"),  # diverges in the first epoch
], ids=["adam", "momentum-l2-decay", "early-stopping", "diverging"])
def test_members_and_threads_change_nothing(two_parts, options):
    """One member doing every item, two members on two threads, and two
    members run one after the other on one thread (the second finds each
    phase done, and must stop where the first stopped: early stopping,
    divergence) give the very same parameters, costs and epochs."""
    calls, members = two_parts
    if options.get("early_stopping"):
        options = dict(options, validation_data=data(m=100, seed=9))
    one = run(members, 1, 1, **options)
    assert_same(one, run(members, 2, 2, **options))
    assert_same(one, run(members, 2, 1, **options))
    assert set(calls) == {1, 2}  # the team ran, with one member and with two
    if "learning_rate" in options:
        assert "diverged at epoch" in one[3]
        assert all(np.isfinite(v).all() for v in one[0].values())
    if options.get("early_stopping"):
        assert one[2] < 60


def test_early_stopping_and_validation_costs_match_numpy(two_parts):
    X, Y = data()
    Xv, Yv = data(m=100, seed=9)
    kwargs = dict(batch_size=32, optimizer="adam", seed=1, validation_data=(Xv, Yv), early_stopping=True,
                  n_iter_no_change=3, tol=1e-3, cost_every=1)
    ref = net("numpy").fit(X, Y, 200, 0.05, **kwargs)
    got = net("parallel").fit(X, Y, 200, 0.05, **kwargs)
    assert got.best_epoch_ == ref.best_epoch_ and got.n_iter_ == ref.n_iter_ < 200
    np.testing.assert_allclose(got.val_costs_, ref.val_costs_, rtol=1e-7)
    for k, v in ref.parameters.items():
        np.testing.assert_allclose(got.parameters[k], v, rtol=1e-7, atol=1e-10)
    # the epochs run out before the patience: the team's network takes the best epoch's parameters too
    short = net("parallel").fit(X, Y, ref.best_epoch_ + 2, 0.05, **kwargs)
    assert short.best_epoch_ == ref.best_epoch_ and short.n_iter_ == ref.best_epoch_ + 2
    for k, v in ref.parameters.items():
        np.testing.assert_allclose(short.parameters[k], v, rtol=1e-7, atol=1e-10)


def test_one_epoch_n_times_equals_n_epochs_and_a_large_x(two_parts, monkeypatch):
    """The optimizer's state carries over between the team's fits; X gathered
    once an epoch (fit's way) gives the same batches as each batch gathered
    by the team's gather items (EPOCH_GATHER_BYTES past X's size)."""
    X, Y = data()
    kwargs = dict(batch_size=48, optimizer="adam", seed=2, decay_rate=0.5)
    monkeypatch.setattr(fit, "EPOCH_GATHER_BYTES", 1 << 60)
    once = net("parallel").fit(X, Y, 4, 0.01, **kwargs)
    steps = net("parallel")
    for _ in range(4):
        steps.fit(X, Y, 1, 0.01, **kwargs)
    monkeypatch.setattr(fit, "EPOCH_GATHER_BYTES", 0)
    gathered = net("parallel").fit(X, Y, 4, 0.01, **kwargs)
    for k, v in once.parameters.items():
        np.testing.assert_array_equal(steps.parameters[k], v)
        np.testing.assert_array_equal(gathered.parameters[k], v)


@pytest.mark.parametrize("members", [1, 2])
def test_a_gathered_x_with_nan_is_refused_by_the_team_before_any_step(two_parts, monkeypatch, members):
    """The team's gather items test X (a large X, past GATHER_TESTS_X_BYTES:
    fit does not test it first): a NaN in either part's rows halts the team
    in that phase, fit raises check_X's ValueError, no step made; then it
    trains on."""
    monkeypatch.setattr(fit, "GATHER_TESTS_X_BYTES", 0)
    two_parts[1].append(members)
    X, Y = data()
    kwargs = dict(batch_size=48, optimizer="adam", seed=2)
    got = net("parallel").fit(X, Y, 1, 0.01, **kwargs)
    before = {k: v.copy() for k, v in got.parameters.items()}
    for i in (0, X.shape[0] - 1):  # rows of the first and of the last part
        Xb = X.copy()
        Xb[i, 123] = np.nan
        calls = len(two_parts[0])
        with pytest.raises(ValueError, match="X contains NaN or infinity"):
            got.fit(Xb, Y, 2, 0.01, **kwargs)
        assert len(two_parts[0]) == calls + 1  # the team ran, and halted
        for k, v in before.items():
            np.testing.assert_array_equal(got.parameters[k], v)
        assert got.n_iter_ == 1
    got.fit(X, Y, 2, 0.01, **kwargs)
    straight = net("parallel").fit(X, Y, 1, 0.01, **kwargs).fit(X, Y, 2, 0.01, **kwargs)
    for k, v in straight.parameters.items():
        np.testing.assert_array_equal(got.parameters[k], v)


def test_dropout_runs_without_the_team(two_parts):
    """Dropout's masks are drawn per batch: fit_epochs runs it, still like numpy."""
    X, Y = data()
    assert_trains_like_numpy("parallel", "float64", lambda name: net(name), lambda n: n.fit(
        X, Y, 2, 0.01, batch_size=64, optimizer="adam", keep_prob=0.8, seed=3, cost_every=1))
    assert not two_parts[0]


def test_when_a_team_pays():
    digits, planar = [64, 128, 64, 10], [2, 4, 1]
    assert team_run.team_parts(digits, 64, False, threads=2) == 2
    assert team_run.team_parts(digits, 64, False, threads=16) == 128 // team_run.MIN_ROWS  # parts of MIN_ROWS units
    assert team_run.team_parts(digits, 64, False, threads=1) == 0      # one thread
    assert team_run.team_parts(digits, 64, True, threads=2) == 0       # dropout
    assert team_run.team_parts(planar, 64, False, threads=2) == 0      # too few units to share
    assert team_run.team_parts([64, 10], 64, False, threads=2) == 0    # no hidden layer
    assert team_run.team_parts([64, 128, 64, 10], 2, False, threads=2) == 0  # too little work a batch
    assert team_run.team_parts([784, 128, 64, 10], 32, False, threads=2) == 2


@pytest.mark.parametrize("block", [MICRO_ROWS, 3, 8])  # this target's row block, AVX2's, AVX-512's
@pytest.mark.parametrize("parts", [2, 3, 8])
def test_row_splits_cover_each_layer_in_micro_kernel_blocks(parts, block, monkeypatch):
    """Whole micro-kernel row blocks but the last, as even as the blocks
    allow; or, where that would leave a part under MICRO_MIN_ROWS rows (the
    packed plans' minimum: four blocks) and an even split would not, the
    even split."""
    monkeypatch.setattr(team_run, "MICRO_ROWS", block)
    monkeypatch.setattr(team_run, "MICRO_MIN_ROWS", 4 * block)
    dims = [5, 128, 64, 24, 8, 26, 70, 3]
    splits = team_run.row_splits(dims, parts)
    assert splits.shape == (len(dims) - 2, parts + 1) and splits.dtype == np.int64
    for n, rows in zip(dims[1:-1], splits):
        assert rows[0] == 0 and rows[-1] == n and (np.diff(rows) >= 0).all()
        assert rows[1] > 0  # part 0 always has rows: dA's first share is written whole
        sizes = np.diff(rows)
        even = [q * n // parts for q in range(parts + 1)]
        if list(rows) == even and n // parts >= 4 * block:
            assert sizes.min() >= 4 * block
            continue
        inner = rows[1:-1][rows[1:-1] < n]
        assert (inner % block == 0).all()  # whole micro-kernel row blocks but the last
        assert sizes.max() <= -(-n // parts) + block  # as even as the blocks allow
        assert sizes.min() >= 4 * block or n // parts < 4 * block


def test_row_splits_keep_each_part_packed_where_an_even_split_does(monkeypatch):
    """Whole blocks would split 70 rows 40 / 30 (8-row blocks) and 26 rows
    15 / 11 (3-row blocks), a part under the packed plans' four blocks, which
    35 / 35 and 13 / 13 are not; 64 rows split 64 / 64 and 33 / 31 (both
    packed) as before."""
    for block, dims, want in ((8, [5, 70, 1], [[0, 35, 70]]), (3, [5, 26, 1], [[0, 13, 26]]),
                              (8, [5, 128, 64, 1], [[0, 64, 128], [0, 32, 64]]),
                              (3, [5, 128, 64, 1], [[0, 66, 128], [0, 33, 64]])):
        monkeypatch.setattr(team_run, "MICRO_ROWS", block)
        monkeypatch.setattr(team_run, "MICRO_MIN_ROWS", 4 * block)
        assert team_run.row_splits(dims, 2).tolist() == want, (block, dims)
    from kernels.loops import plans
    R = loops.MICRO_MIN_ROWS
    assert R == 4 * MICRO_ROWS  # four of this target's row blocks
    assert plans.forward_plan(R - 1, 128, 64, 16)[0] != plans.PACKED  # why: the packed plans' row minimum
    assert plans.forward_plan(R, 128, 64, 16)[0] == plans.PACKED


@pytest.mark.parametrize("parts", [2, 3])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("rows_of", ["dW", "Z"])
def test_each_parts_rows_lie_apart_from_the_others(parts, dtype, rows_of):
    """team_run.part_rows, as team_arrays makes them for dW and for Z: part
    q's rows of each hidden layer's array, C ordered, each followed by
    PAD_PARTS times its bytes in which no other part's rows (nor the output
    layer's array) lie: a prefetcher running on past a part's rows never
    reaches cells another part writes."""
    dims = [20, 48, 32, 3]
    network = net("parallel", dtype, dims)
    X = np.zeros((dims[0], 100), dtype)
    _, _, splits, _, dW, Z, Z_last, _ = team_run.team_arrays(network, X, 40, 20, parts)
    assert (splits == team_run.row_splits(dims, parts)).all()
    cases = {"dW": [(dW, dims[:-1])], "Z": [(Z, [40] * 3), (Z_last, [20] * 3)]}[rows_of]
    for arrays, widths in cases:
        assert len(arrays) == parts
        spans = []
        for q in range(parts):
            layers = list(arrays[q])
            assert len(layers) == len(dims) - 1
            for l, a in enumerate(layers[:-1]):
                assert a.shape == (splits[l, q + 1] - splits[l, q], widths[l])
                assert a.dtype == dtype and a.flags.c_contiguous
                if a.size:
                    start = a.ctypes.data
                    spans.append((start, start + a.nbytes, start + (1 + team_run.PAD_PARTS) * a.nbytes))
            out = layers[-1]
            assert out.shape == (dims[-1] if q == 0 else 0, widths[-1]) and out.dtype == dtype
            if out.size:
                spans.append((out.ctypes.data, out.ctypes.data + out.nbytes, out.ctypes.data + out.nbytes))
        for i, (a0, a1, pad_end) in enumerate(spans):
            for j, (b0, b1, _) in enumerate(spans):
                if i != j:
                    assert b1 <= a0 or b0 >= pad_end, (i, j)  # not in a's cells nor in the bytes after them


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-13), ("float32", 1e-5)])
def test_a_part_forms_its_rows_of_the_last_hidden_layers_da_itself(dtype, rtol):
    """model.team.output_rows: rows r0:r1 of dA = W^T dZ from the output
    layer's whole W and dZ (the part's own rows, not read from the output
    item's core), as NumPy's product of the column block; the sums of three
    products differ by rounding only (a few ulp of the terms)."""
    from model.team import output_rows
    rng = np.random.default_rng(5)
    W = rng.standard_normal((3, 10)).astype(dtype)
    dZ = rng.standard_normal((3, 7)).astype(dtype)
    for r0, r1 in ((0, 10), (4, 9), (9, 10)):
        dA = np.full((r1 - r0, 7), np.nan, dtype=dtype)  # every cell written
        output_rows(dA, dZ, W, r0)
        want = W[:, r0:r1].astype(np.float64).T @ dZ.astype(np.float64)
        np.testing.assert_allclose(dA, want, rtol=rtol, atol=rtol * np.abs(want).max())


def test_a_phase_item_is_taken_once_and_each_member_tries_its_own_first():
    """kernels.loops.team: take() gives an item of a phase to one member
    only, and again in the next phase; member j tries item j mod the items
    first."""
    sync = np.zeros(loops_team.SYNC_SIZE + 3, dtype=np.int64)
    loops_team.reset(sync)
    got = _take_twice(sync)
    assert list(got) == [1, 0, 1, 1, 0, 0, 0, 1]
    assert [loops_team.item_to_try(1, j, 3) for j in range(3)] == [1, 2, 0]
    assert [loops_team.item_to_try(4, j, 1) for j in range(1)] == [0]


@numba.njit
def _take_twice(sync):
    out = np.zeros(8, dtype=np.int64)
    out[0] = loops_team.take(sync, 0, 3)   # phase ending at 3: item 0 taken
    out[1] = loops_team.take(sync, 0, 3)   # ... not twice
    out[2] = loops_team.take(sync, 2, 3)   # another item of the phase
    out[3] = loops_team.take(sync, 0, 6)   # the next phase: item 0 again
    out[4] = loops_team.take(sync, 2, 3)   # a late member finds the old phase's item taken
    out[5] = loops_team.join(sync)         # members' numbers, in order
    out[6] = loops_team.join(sync) - 1
    out[7] = loops_team.take(sync, 1, 6)
    return out


@numba.njit(nogil=True)
def _wait_for(sync, end):
    loops_team.wait(sync, end)


def test_a_long_wait_yields_the_core_and_ends_when_the_phase_does():
    """A member waiting on a teammate spins, then (past SPINS_BEFORE_YIELD)
    yields its core at each look (POSIX sched_yield, in the compiled code),
    and returns once the phase's items are finished: here by another
    thread, 50 ms later, while the waiter has long been yielding."""
    import time
    sync = np.zeros(loops_team.SYNC_SIZE + 1, dtype=np.int64)
    loops_team.reset(sync)
    _wait_for(sync, 0)  # compiled; nothing to wait for
    done = threading.Event()
    waiter = threading.Thread(target=lambda: (_wait_for(sync, 1), done.set()))
    waiter.start()
    time.sleep(0.05)
    assert not done.is_set()
    sync[loops_team.FINISHED] = 1
    waiter.join(timeout=10)
    assert done.is_set() and not waiter.is_alive()
    if os.name == "posix":
        assert "sched_yield" in _wait_for.inspect_llvm(_wait_for.signatures[0])


def test_members_run_on_the_team_threads_idle_when_fit_returns(two_parts):
    """The members run on this thread and the team's own (two when Numba
    may run two), kept from one fit to the next (the same thread again) and
    idle when fit returns: no member runs after it."""
    seen = []
    original = team_run.run_members

    def spy(member, args, members, threads):
        def watched(*a):
            seen.append(threading.current_thread())
            return member(*a)
        return original(watched, args, members, threads)

    X, Y = data()
    previous = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(team_run, "run_members", spy)
            two_parts[1][:] = [2]
            n = net("parallel")
            n.fit(X, Y, 2, 0.01, batch_size=64, optimizer="adam")
            assert team_run.TEAM_THREADS.idle()
            first = set(seen)
            seen.clear()
            n.fit(X, Y, 2, 0.01, batch_size=64, optimizer="adam")
    finally:
        numba.set_num_threads(previous)
    assert len(seen) >= 2 and len(seen) % 2 == 0  # two members a chunk
    if numba.config.NUMBA_NUM_THREADS >= 2:
        assert {t.name for t in first} == {threading.current_thread().name, "jitloops-team-1"}
        assert set(seen) == first, "the second fit's members ran on other threads"
    assert team_run.TEAM_THREADS.idle()


def test_run_members_runs_each_member_and_raises_what_one_raised():
    """``members`` calls on ``threads`` threads (the extra ones one after the
    other on a thread), every one returned when it returns; a member's
    error is raised in the caller's thread after the others finished, and
    the thread it ran on runs the next team."""
    names = []
    team_run.run_members(lambda tag: names.append((tag, threading.current_thread().name)), ("x",), 3, 2)
    assert sorted(n for _, n in names) == sorted([threading.current_thread().name] * 2 + ["jitloops-team-1"])
    names.clear()
    team_run.run_members(lambda tag: names.append(threading.current_thread().name), ("x",), 2, 1)
    assert names == [threading.current_thread().name] * 2

    finished = []

    def member(tag):
        if threading.current_thread().name == "jitloops-team-1":
            raise RuntimeError("a member failed")
        time.sleep(0.05)  # still running when the other member raises
        finished.append(tag)
    with pytest.raises(RuntimeError, match="a member failed"):
        team_run.run_members(member, ("done",), 2, 2)
    assert finished == ["done"]
    assert team_run.TEAM_THREADS.idle()
    names.clear()
    team_run.run_members(lambda tag: names.append(threading.current_thread().name), ("x",), 2, 2)
    assert sorted(names) == sorted([threading.current_thread().name, "jitloops-team-1"])


def test_run_members_while_another_team_has_the_team_threads():
    """A team that finds the team's threads taken (another Python thread's
    fit) runs on threads started and joined for it: both teams finish, and
    the taken threads are not given a second task."""
    started, release = threading.Event(), threading.Event()
    names = []

    def slow(tag):
        if threading.current_thread().name == "jitloops-team-1":
            started.set()
            assert release.wait(10)
        names.append(tag)

    other = threading.Thread(target=team_run.run_members, args=(slow, ("first",), 2, 2))
    other.start()
    try:
        assert started.wait(10)
        assert not team_run.TEAM_THREADS.idle()
        team_run.run_members(lambda tag: names.append(threading.current_thread().name), ("second",), 2, 2)
        assert sorted(n for n in names if n != "first") == sorted([threading.current_thread().name,
                                                                   "jitloops-team-1"])
        # the threads started for the second team were joined: only the team's own is left
        assert sum(t.name == "jitloops-team-1" for t in threading.enumerate()) == 1
    finally:
        release.set()
        other.join(10)
    assert not other.is_alive() and names.count("first") == 2
    assert team_run.TEAM_THREADS.idle()


def test_the_members_lists_are_packed_once_while_the_buffers_are_kept(two_parts):
    """team_run.team_lists: the two typed lists the members take (team.LISTS,
    team.NESTED) are made by the first fit and taken over by the next fits
    of the same shapes, which keep their buffers, and made again where one
    of the lists changes (new parameters); the fits train as fits that make
    them afresh every time."""
    X, Y = data()
    kwargs = dict(batch_size=48, optimizer="adam", seed=2)
    new = net("parallel", seed=3).parameters

    def memo(n):  # the dict kept with the buffers (_epoch_runner's kept tuple holds one)
        return next(x for x in n._fit_buffers[2] if isinstance(x, dict))

    def fits(forget):
        n = net("parallel")
        packed = []
        for i in range(3):
            if i == 2:
                n.set_parameters(new)
            if forget and n._fit_buffers is not None:
                memo(n).clear()
            n.fit(X, Y, 2, 0.01, **kwargs)
            packed.append(memo(n)["team_lists"][1])
        return n, packed

    n, packed = fits(False)
    assert [len(x) for x in packed[0]] == [len(team.LISTS), len(team.NESTED)]
    assert packed[1] is packed[0] and packed[2] is not packed[0]
    again, repacked = fits(True)
    assert repacked[1] is not repacked[0]
    for k, v in again.parameters.items():
        np.testing.assert_array_equal(n.parameters[k], v, err_msg=k)
    assert two_parts[0]


def test_teams_in_two_threads_at_once_train_as_one_by_one(two_parts):
    """Two networks fit at once in two Python threads, each with its team (a
    member never waits for one that has not claimed an item, so teams
    sharing Numba's threads cannot hang each other): as trained one by one."""
    X, Y = data()
    kwargs = dict(batch_size=48, optimizer="adam", seed=2)
    alone = [net("parallel", seed=s).fit(X, Y, 20, 0.01, **kwargs).parameters for s in (1, 2)]
    together = [net("parallel", seed=s) for s in (1, 2)]
    threads = [threading.Thread(target=n.fit, args=(X, Y, 20, 0.01), kwargs=kwargs) for n in together]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), "a team hung"
    for want, n in zip(alone, together):
        for k, v in want.items():
            np.testing.assert_array_equal(n.parameters[k], v)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() does not exist on this platform")
def test_a_child_forked_after_a_team_ran_trains_like_its_parent(two_parts):
    """A child forked after the parent's team ran (its threads idle, kept:
    the child has their memory but not the threads) runs its own team on
    threads of its own, to the same parameters, bit for bit; a hang ends
    in the timeout."""
    X, Y = data()
    kwargs = dict(batch_size=48, optimizer="adam", seed=2)
    parent = net("parallel").fit(X, Y, 5, 0.01, **kwargs).parameters
    child = in_forked_child(lambda: net("parallel").fit(X, Y, 5, 0.01, **kwargs).parameters)
    assert two_parts[0], "the parent's fit did not run in the team"
    for k, v in parent.items():
        np.testing.assert_array_equal(child[k], v)


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or threading.current_thread() is not threading.main_thread(),
                    reason="signals need the main thread")
def test_ctrl_c_stops_the_team_after_a_completed_epoch(two_parts):
    """A Ctrl-C during a team's fit stops it between two chunks: no member
    runs after fit raises, the parameters are those of the epochs done, as
    a fit of that many epochs gives them."""
    X, Y = data()
    kwargs = dict(batch_size=64, optimizer="adam", seed=2)
    net("parallel").fit(X, Y, 1, 0.01, **kwargs)  # compiled outside the timer
    n = net("parallel")
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            n.fit(X, Y, 10**7, 0.01, **kwargs)
    finally:
        timer.cancel()
    assert two_parts[0], "the fit did not run in the team"
    assert 0 < n.n_iter_ < 10**7
    assert team_run.TEAM_THREADS.idle()
    again = net("parallel").fit(X, Y, n.n_iter_, 0.01, **kwargs)
    for k, v in again.parameters.items():
        np.testing.assert_array_equal(n.parameters[k], v, err_msg=k)
