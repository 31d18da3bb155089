"""jitloops as Python users run it: in forked children, in multiprocessing
pools, in threads, pickled to and from workers.

The parallel backend runs on Numba's tbb threading layer (kernels.threads),
which is fork- and thread-safe; with GNU OpenMP (Numba's default without
tbb) a forked child refuses the parallel backend with a clear error instead
of being killed. The network sizes here are large enough that the parallel
kernels run their prange loops (the planar network's do not), which is what
killed forked children under GNU OpenMP.
"""

import copy
import multiprocessing
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from conftest import in_forked_child

import kernels
from kernels import threads
from model import LogisticRegression, NeuralNetwork

DIMS = [64, 128, 64, 1]
ITERATIONS = 4

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() does not exist on this platform")


def _data(m=1024, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((DIMS[0], m))
    Y = (X[:1] + 0.5 * X[1:2] > 0).astype(np.float64)
    return X, Y


def _fit(backend, seed=1, iterations=ITERATIONS):
    X, Y = _data()
    net = NeuralNetwork(DIMS, activations="relu", backend=backend, seed=seed)
    net.fit(X, Y, iterations=iterations, learning_rate=0.05)
    return net.parameters


def _assert_same(p, q, rtol):
    assert p.keys() == q.keys()
    for k in p:
        np.testing.assert_allclose(p[k], q[k], rtol=rtol, atol=rtol * 1e-2, err_msg=k)


def test_layer_is_named():
    """The threading layer in use is one of Numba's, and with tbb installed
    (a dependency on Linux x86-64) and no user choice, it is tbb."""
    name = threads.layer()
    assert name in ("tbb", "omp", "workqueue")
    if threads._tbb_loaded and "NUMBA_THREADING_LAYER" not in os.environ:
        assert name == "tbb"
    assert name in threads.describe()


@needs_fork
@pytest.mark.parametrize("backend", ["numpy", "numba", "parallel"])
def test_forked_child_fits_like_its_parent(backend):
    """After a fit in the parent, a child made with os.fork() fits the same
    network to the same parameters, bit for bit (same code, same data)."""
    parent = _fit(backend)
    child = in_forked_child(lambda: _fit(backend))
    _assert_same(child, parent, rtol=0)


def _pool_fit(seed):
    return _fit("parallel", seed=seed)


@needs_fork
def test_fork_pool_of_parallel_fits_finishes_and_agrees_with_numpy():
    """A multiprocessing pool (fork) whose workers fit on "parallel" after the
    parent did finishes (a hang would end in the timeout) and agrees with numpy.
    Tolerance: 4 iterations of float64 products of length <= 128 in another
    summation order; 1e-9 relative is far above that rounding and far below
    any real difference."""
    _fit("parallel")  # the parent starts its thread pool first
    seeds = [1, 2, 3]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map_async(_pool_fit, seeds).get(timeout=240)
    for seed, got in zip(seeds, results):
        _assert_same(got, _fit("numpy", seed=seed), rtol=1e-9)


def test_network_pickles_and_deep_copies_with_its_history():
    """A pool sends networks to and from workers by pickle; copy.deepcopy
    works the same way. Parameters, history and backend survive; the copy
    trains on independently of the original."""
    X, Y = _data(m=256)
    for net in (NeuralNetwork(DIMS, backend="numba", seed=3), LogisticRegression(DIMS[0], backend="numba")):
        net.fit(X, Y, iterations=3, learning_rate=0.05)
        for twin in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net)):
            assert twin.backend == net.backend and twin.n_iter_ == net.n_iter_
            np.testing.assert_array_equal(twin.costs_, net.costs_)
            for k, v in net.parameters.items():
                np.testing.assert_array_equal(twin.parameters[k], v)
            twin.fit(X, Y, iterations=2, learning_rate=0.05)
            assert twin.n_iter_ == net.n_iter_ + 2
        assert net.n_iter_ == 3


def test_parallel_backend_refuses_in_a_child_forked_after_gnu_openmp():
    """Where only GNU OpenMP is to be had, a forked child gets a RuntimeError
    that says how to fix it, instead of being killed by OpenMP. Run in a
    fresh process with the omp layer asked for."""
    if not hasattr(os, "fork"):
        pytest.skip("os.fork() does not exist on this platform")
    script = textwrap.dedent(f"""
        import os, sys
        import numpy as np
        sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
        from test_processes_threads import _fit
        from kernels import threads
        _fit("parallel")
        if not (threads.layer() == "omp" and threads._gnu_openmp()):
            print("NOT-GNU-OMP"); sys.exit(0)
        pid = os.fork()
        if pid == 0:
            try:
                _fit("parallel")
            except RuntimeError as exc:
                os._exit(7 if "forked" in str(exc) and "tbb" in str(exc) else 8)
            os._exit(9)
        _, status = os.waitpid(pid, 0)
        print("CHILD", os.waitstatus_to_exitcode(status))
        """)
    env = dict(os.environ, NUMBA_THREADING_LAYER="omp")
    try:
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail("the omp-layer fork check hung")
    if "NOT-GNU-OMP" in out.stdout or "ValueError" in out.stderr and "omp" in out.stderr:
        pytest.skip("Numba has no GNU OpenMP layer here: nothing to refuse")
    assert "CHILD 7" in out.stdout, out.stdout + out.stderr


@pytest.mark.parametrize("backend", ["numpy", "numba", "parallel"])
def test_second_concurrent_fit_on_one_network_is_refused(backend):
    """While fit runs in one thread, fit in another raises RuntimeError at once
    and changes nothing; a predict in a third thread waits for the fit and
    sees its final parameters. The network ends exactly as after one fit."""
    X, Y = _data(m=256)
    net = NeuralNetwork(DIMS, backend=backend, seed=4)
    net.fit(X, Y, iterations=1, learning_rate=0.05)  # compile outside the race
    iterations = 1000 if backend == "numpy" else 3000  # about a second: long enough for the calls below
    errors, predicted = [], []
    trainer = threading.Thread(target=lambda: net.fit(X, Y, iterations=iterations, learning_rate=0.05))
    trainer.start()
    deadline = time.monotonic() + 60
    while net._guard._writer is None and trainer.is_alive() and time.monotonic() < deadline:
        time.sleep(0.0005)
    try:
        reader = threading.Thread(target=lambda: predicted.append(net.predict_proba(X)))
        reader.start()
        if trainer.is_alive():
            with pytest.raises(RuntimeError, match="another thread"):
                net.fit(X, Y, iterations=5, learning_rate=0.05)
            with pytest.raises(RuntimeError, match="another thread"):
                net.set_parameters({f"{k}{l}": v for l in range(1, 4) for k, v in (("W", 0), ("b", 0))})
            if not trainer.is_alive():  # pragma: no cover
                errors.append("fit ended before the second call")
        else:  # pragma: no cover - the machine was too fast for the race
            errors.append("fit ended before the second call")
    finally:
        trainer.join()
        reader.join()
    if errors:
        pytest.skip(errors[0])
    ref = NeuralNetwork(DIMS, backend=backend, seed=4)
    ref.fit(X, Y, iterations=1, learning_rate=0.05).fit(X, Y, iterations=iterations, learning_rate=0.05)
    assert net.n_iter_ == ref.n_iter_
    _assert_same(net.parameters, ref.parameters, rtol=0)
    np.testing.assert_array_equal(predicted[0], ref.predict_proba(X))


@pytest.mark.parametrize("backend", ["numba", "parallel"])
def test_different_networks_in_threads_agree_with_one_thread(backend):
    """Networks of their own, trained in threads at once, end where they end
    when trained one after the other (compiled code releases the GIL, so
    these really run at the same time)."""
    seeds = [5, 6, 7]
    alone = [_fit(backend, seed=s, iterations=20) for s in seeds]
    together = [None] * len(seeds)

    def work(i):
        together[i] = _fit(backend, seed=seeds[i], iterations=20)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(len(seeds))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for a, b in zip(alone, together):
        _assert_same(b, a, rtol=0)


def test_ops_check_ready_is_called_by_public_ops():
    """Every public op asks its backend whether it can run here first."""
    calls = []
    ops = kernels.Ops("probe", kernels.get_backend("numpy").kernels, ready=lambda: calls.append(1))
    ops.dot(np.ones(3), np.ones(3))
    ops.activation_forward(np.ones((2, 2)), "relu")
    assert len(calls) >= 2
