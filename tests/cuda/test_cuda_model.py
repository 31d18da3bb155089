"""A network trained on "cuda" follows the numpy backend's cost curve, and its
arrays stay on the device for the whole fit."""

import numpy as np
import pytest

from conftest import DTYPES, eps
from cudatests import cuda_ops

cuda_ops()
model = pytest.importorskip("model")
if not hasattr(model, "NeuralNetwork"):
    pytest.skip("model.NeuralNetwork is not there yet", allow_module_level=True)

ITERATIONS = 6


def planar_like(m=9, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((2, m))
    Y = (X[0:1] * X[1:2] > 0).astype(np.float64)
    return X, Y


@pytest.mark.parametrize("dtype", DTYPES)
def test_cost_curve_follows_numpy(dtype):
    """Same seed, same data: every recorded cost and the final parameters agree.

    Each op agrees with numpy to a few eps relative (test_cuda_agree.py), so one
    iteration moves the parameters apart by a few eps; a few steps of gradient
    descent at a moderate learning rate add those up at most linearly, hence
    100 eps per iteration (float64 ~1.3e-13, float32 ~7e-5 after 6 iterations;
    the measured differences are ~1e-16 and ~1e-7).
    """
    X, Y = planar_like()
    name = np.dtype(dtype).name
    kw = dict(activations="tanh", seed=3, dtype=name)
    ref = model.NeuralNetwork([2, 3, 1], backend="numpy", **kw).fit(X, Y, ITERATIONS, 0.5, cost_every=1)
    net = model.NeuralNetwork([2, 3, 1], backend="cuda", **kw).fit(X, Y, ITERATIONS, 0.5, cost_every=1)
    assert len(net.costs_) == len(ref.costs_) == ITERATIONS
    tol = 100 * ITERATIONS * eps(dtype)
    np.testing.assert_allclose(net.costs_, ref.costs_, rtol=tol, atol=0)
    assert net.costs_[-1] < net.costs_[0]  # it did learn
    got, want = net.parameters, ref.parameters
    assert set(got) == set(want)
    for key in want:
        assert isinstance(got[key], np.ndarray) and got[key].dtype == dtype
        np.testing.assert_allclose(got[key], want[key], rtol=tol, atol=tol * np.abs(want[key]).max(), err_msg=key)


def test_fit_keeps_arrays_on_the_device(monkeypatch):
    """Per iteration nothing but scalars comes back to the host (the recorded
    cost; the model's divergence guard reads one dot product per parameter),
    and nothing goes to the device: X, Y and the buffers go in once per fit."""
    from kernels import cuda

    copies_in, copies_out = [], []
    to_device = cuda.cuda.to_device
    copy_to_host = cuda._DeviceArray.copy_to_host

    def counting_to_device(ary, *args, **kwargs):
        copies_in.append(np.size(ary))
        return to_device(ary, *args, **kwargs)

    def counting_copy_to_host(self, *args, **kwargs):
        copies_out.append(self.size)
        return copy_to_host(self, *args, **kwargs)

    monkeypatch.setattr(cuda.cuda, "to_device", counting_to_device)
    monkeypatch.setattr(cuda._DeviceArray, "copy_to_host", counting_copy_to_host)
    X, Y = planar_like()
    counts = {}
    for iterations in (1, 3):
        net = model.NeuralNetwork([2, 3, 1], activations="relu", backend="cuda", seed=1)
        copies_in.clear()
        copies_out.clear()
        net.fit(X, Y, iterations, 0.1, cost_every=1)
        assert all(size <= 1 for size in copies_out), copies_out
        counts[iterations] = len(copies_in)
    assert counts[1] == counts[3], f"host-to-device copies grew with the iterations: {counts}"
