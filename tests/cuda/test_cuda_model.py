"""A network trained on "cuda" follows the numpy backend's cost curve, its
arrays stay on the device for the whole fit, nothing comes back to the host per
iteration but the recorded costs, and its divergence guard stops exactly where
the numpy backend's does.

The model runs a cuda fit in chunks (model.fit): each chunk without the
per-iteration finiteness test, the parameters tested once at its end, and a
chunk that diverged run again, guarded, from its starting parameters. The tests
set CHUNK_SECONDS high so that a fit is two chunks, the first iteration (the
first chunk is always one iteration) and all the others: the several-iteration
chunk is the case to test, and the simulator is too slow to reach one otherwise.
"""

import numpy as np
import pytest

from conftest import DTYPES, eps
from cudatests import cuda_ops

cuda_ops()
model = pytest.importorskip("model")
if not hasattr(model, "NeuralNetwork"):
    pytest.skip("model.NeuralNetwork is not there yet", allow_module_level=True)

from model import DivergenceError, NeuralNetwork, fit
from model.training import DIVERGED, FINISHED

ITERATIONS = 6


@pytest.fixture
def two_chunks(monkeypatch):
    """Every fit runs as two chunks: iteration 0, then all the others."""
    monkeypatch.setattr(fit, "CHUNK_SECONDS", 1e9)


def spy_chunks(monkeypatch, net):
    """Log (kind, start, count, done, status) of every fit_chunk call of net's program."""
    calls = []
    p = net.program
    for kind, name in (("guarded", "fit_chunk"), ("unguarded", "fit_chunk_unguarded")):
        def spied(*args, _run=getattr(p, name), _kind=kind):
            done, status = _run(*args)
            calls.append((_kind, args[6], args[7], done, status))  # start, count
            return done, status
        monkeypatch.setattr(p, name, spied)
    return calls


def planar_like(m=9, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((2, m))
    Y = (X[0:1] * X[1:2] > 0).astype(np.float64)
    return X, Y


@pytest.mark.parametrize("dtype", DTYPES)
def test_cost_curve_follows_numpy(dtype, two_chunks):
    """Same seed, same data: every recorded cost and the final parameters agree
    (iterations 1 to 5 run as one unguarded chunk).

    Each op agrees with numpy to a few eps relative (test_cuda_agree.py), so one
    iteration moves the parameters apart by a few eps; a few steps of gradient
    descent at a moderate learning rate add those up at most linearly, hence
    100 eps per iteration (float64 ~1.3e-13, float32 ~7e-5 after 6 iterations;
    the measured differences are ~1e-16 and ~1e-7).
    """
    X, Y = planar_like()
    name = np.dtype(dtype).name
    kw = dict(activations="tanh", seed=3, dtype=name)
    ref = NeuralNetwork([2, 3, 1], backend="numpy", **kw).fit(X, Y, ITERATIONS, 0.5, cost_every=1)
    net = NeuralNetwork([2, 3, 1], backend="cuda", **kw).fit(X, Y, ITERATIONS, 0.5, cost_every=1)
    assert len(net.costs_) == len(ref.costs_) == ITERATIONS
    tol = 100 * ITERATIONS * eps(dtype)
    np.testing.assert_allclose(net.costs_, ref.costs_, rtol=tol, atol=0)
    assert net.costs_[-1] < net.costs_[0]  # it did learn
    got, want = net.parameters, ref.parameters
    assert set(got) == set(want)
    for key in want:
        assert isinstance(got[key], np.ndarray) and got[key].dtype == dtype
        np.testing.assert_allclose(got[key], want[key], rtol=tol, atol=tol * np.abs(want[key]).max(), err_msg=key)


class Transfers:
    """Counts the host <-> device copies of numba.cuda: to_device and
    copy_to_device from a host array (in), copy_to_host (out, with its size)."""

    def __init__(self, monkeypatch):
        from kernels import cuda

        self.copies_in, self.copies_out = [], []
        to_device = cuda.cuda.to_device
        copy_to_device = cuda._DeviceArray.copy_to_device
        copy_to_host = cuda._DeviceArray.copy_to_host

        inside = []  # on a GPU, to_device copies through copy_to_device: count the copy once

        def counting_to_device(ary, *args, **kwargs):
            self.copies_in.append(np.size(ary))
            inside.append(True)
            try:
                return to_device(ary, *args, **kwargs)
            finally:
                inside.pop()

        def counting_copy_to_device(dev, ary, *args, **kwargs):
            if not cuda.is_device_array(ary) and not inside:
                self.copies_in.append(np.size(ary))
            return copy_to_device(dev, ary, *args, **kwargs)

        def counting_copy_to_host(dev, *args, **kwargs):
            self.copies_out.append(dev.size)
            return copy_to_host(dev, *args, **kwargs)

        monkeypatch.setattr(cuda.cuda, "to_device", counting_to_device)
        monkeypatch.setattr(cuda._DeviceArray, "copy_to_device", counting_copy_to_device)
        monkeypatch.setattr(cuda._DeviceArray, "copy_to_host", counting_copy_to_host)

    def clear(self):
        self.copies_in.clear()
        self.copies_out.clear()


def test_fit_syncs_once_per_chunk_not_per_iteration(monkeypatch, two_chunks):
    """Nothing goes to the device during a fit but X, Y and a zeros buffer, and
    nothing comes back but one scalar per chunk (the parameters' finiteness
    flag) and one per recorded cost: the same count for 2 and 4 iterations.
    (Before the chunks ran unguarded, each iteration read back one dot product
    per parameter array: 2 L scalars.)"""
    transfers = Transfers(monkeypatch)
    X, Y = planar_like()
    counts = {}
    for iterations in (2, 4):
        net = NeuralNetwork([2, 3, 1], activations="relu", backend="cuda", seed=1)
        calls = spy_chunks(monkeypatch, net)
        transfers.clear()
        net.fit(X, Y, iterations, 0.1, cost_every=100)  # one recorded cost, at iteration 0
        assert net.n_iter_ == iterations
        assert [c[:3] for c in calls] == [("unguarded", 0, 1), ("unguarded", 1, iterations - 1)]
        assert all(size <= 1 for size in transfers.copies_out), transfers.copies_out
        assert len(transfers.copies_out) <= len(calls) + 1, transfers.copies_out
        counts[iterations] = (len(transfers.copies_in), len(transfers.copies_out))
    assert counts[2] == counts[4], f"host transfers (in, out) grew with the iterations: {counts}"
    assert counts[4][0] == 3  # X, Y, zeros

    # every recorded cost is one more scalar, and nothing else grows
    net = NeuralNetwork([2, 3, 1], activations="relu", backend="cuda", seed=1)
    transfers.clear()
    net.fit(X, Y, 4, 0.1, cost_every=1)
    assert len(transfers.copies_out) == counts[4][1] + 3, transfers.copies_out


def diverging_start():
    """[2, 4, 1] relu parameters (seed 2, scaled by 1e50) that at learning rate
    1e60 on planar(m=8) overflow in the update of iteration 4 (0-based): the
    parameters grow ~1e50-fold per step. (The course's lesson, relu at 1e6 on
    the full planar data, takes hundreds of iterations: too slow to simulate.)"""
    base = NeuralNetwork([2, 4, 1], activations="relu", backend="numpy", seed=2).parameters
    return {k: v * 1e50 for k, v in base.items()}


# The simulator runs each GPU thread's arithmetic on NumPy scalars in its own
# Python thread, outside the np.errstate of fit: the overflow warns there.
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning",
                            "ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("cost_every", [100, 1])
def test_divergence_stops_where_numpy_does(monkeypatch, two_chunks, cost_every):
    """The unguarded chunk (iterations 1..5) overflows at iteration 4; the model
    notices at the chunk's end (cost_every=100) or at the next recorded cost
    (cost_every=1), goes back to the chunk's start and runs it guarded: the
    same error, iteration and finite parameters as the numpy backend's."""
    from model import datasets

    X, Y = datasets.planar(m=8, seed=1)
    start = diverging_start()
    results = {}
    for backend in ("numpy", "cuda"):
        net = NeuralNetwork([2, 4, 1], activations="relu", backend=backend).set_parameters(start)
        calls = spy_chunks(monkeypatch, net) if backend == "cuda" else None
        with pytest.raises(DivergenceError, match=r"diverged at iteration 4 .*smaller learning rate") as info:
            net.fit(X, Y, 6, 1e60, cost_every=cost_every)
        results[backend] = (str(info.value), net)
    assert [c[:3] for c in calls] == [("unguarded", 0, 1), ("unguarded", 1, 5), ("guarded", 1, 5)]
    # caught by the test at the chunk's end, or by the NaN cost of iteration 5
    assert calls[1][3:] == ((5, FINISHED) if cost_every == 100 else (4, DIVERGED))
    assert calls[2][3:] == (3, DIVERGED)  # the guarded run stops at 1 + 3 = iteration 4
    (want_msg, ref), (got_msg, net) = results["numpy"], results["cuda"]
    assert got_msg == want_msg
    assert net.n_iter_ == ref.n_iter_ == 4
    np.testing.assert_allclose(net.costs_, ref.costs_, rtol=1e-12)
    got, want = net.parameters, ref.parameters
    for key in want:
        assert np.isfinite(got[key]).all(), key
        np.testing.assert_allclose(got[key], want[key], rtol=1e-12, err_msg=key)
