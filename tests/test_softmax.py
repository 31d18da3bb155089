"""The softmax output (C >= 2 classes): numerically stable, categorical
cross-entropy, dZ = AL - Y; labels or one-hot Y; every CPU backend against
numpy, gradients against finite differences and PyTorch's autograd (skipped
without torch), and real data (scikit-learn's digits, skipped without it).

Tolerances: as in tests/test_minibatch.py (1e-7 relative after a few Adam
steps in float64: the division by sqrt(s) + 1e-8 amplifies the summation
order's differences where s is tiny; 5e-4 in float32)."""

import re

import numba
import numpy as np
import pytest
from conftest import assert_trains_like_numpy

import kernels
from kernels import cpu, loops, simd, target, vectorized
from kernels.loops.cost import _softmax_block
from model import NeuralNetwork, gradient_check

CPU = ("python", "numpy", "numba", "parallel")


def blobs(m=240, C=3, n_x=4, seed=0):
    """C Gaussian blobs: X (n_x, m), labels (1, m) of 0..C-1."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, C, m)
    centres = rng.normal(scale=2.0, size=(n_x, C))
    X = centres[:, labels] + rng.normal(size=(n_x, m))
    return X, labels.reshape(1, m)


def test_softmax_kernels_are_stable_and_agree():
    Z = np.array([[1000.0, -1000.0, 0.0, np.nan], [999.0, -1001.0, 0.0, 1.0], [0.0, -999.0, 0.0, 2.0]])
    for softmax in (loops.softmax, vectorized.softmax, cpu.numba_kernels.softmax, cpu.parallel_kernels.softmax):
        A = Z.copy()
        softmax(A)
        assert np.isfinite(A[:, :3]).all() and np.isnan(A[:, 3]).all()  # NaN stays NaN: divergence shows
        np.testing.assert_allclose(A[:, :3].sum(axis=0), 1.0, rtol=1e-15)
        np.testing.assert_allclose(A[:, 2], 1 / 3, rtol=1e-15)
    big = np.random.default_rng(1).normal(scale=30, size=(10, 20000))  # past the parallel threshold
    want = big.copy()
    vectorized.softmax(want)
    for softmax in (cpu.numba_kernels.softmax, cpu.parallel_kernels.softmax):
        got = big.copy()
        softmax(got)
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_exp_is_the_approximation_or_the_c_library(dtype):
    """Compiled, exp is kernels.approx.exp_approx (within 1 ulp: every
    probability within a few ulp of the C library's, which the exact path
    matches but for the sum's order) and its loop is SIMD; exact=True
    calls the C library (libm's exp is not vectorized)."""
    Z = np.random.default_rng(2).normal(scale=20, size=(10, 64)).astype(dtype)
    want = np.exp((Z - Z.max(axis=0)).astype(np.float64))  # the same differences (in dtype), exp in float64
    want /= want.sum(axis=0)
    ulp = np.finfo(dtype).eps
    for kernels in (cpu.numba_kernels, cpu.parallel_kernels):
        for exact in (False, True):
            got = Z.copy()
            kernels.softmax(got, exact)
            assert got.dtype == dtype
            # exp within 1 ulp, the sum of 10 and the quotient: a few ulp of each probability
            np.testing.assert_allclose(got, want, rtol=8 * ulp, atol=np.finfo(dtype).tiny)
    for exact in (False, True):  # interpreted (backend "python"), either exp
        interpreted = Z.copy()
        loops.softmax(interpreted, exact)
        np.testing.assert_allclose(interpreted, want, rtol=8 * ulp, atol=np.finfo(dtype).tiny)
    if target.is_x86():
        # a fresh, uncached copy of the kernel's loop (cached code cannot be inspected)
        kernel = numba.njit(**dict(cpu.SERIAL_OPTIONS, cache=False))(
            lambda A, exact: _softmax_block(A, 0, A.shape[1], exact))
        kernel(Z.copy(), False)
        asm = simd.kernel_asm(kernel)
        suffix = "pd" if dtype == np.float64 else "ps"
        registers = "[yz]mm" if "avx" in target.features() else "xmm"
        # the exp polynomial's FMAs (nothing else in the kernel multiplies and adds), packed
        assert re.search(rf"\bvfmadd\w*{suffix}\s+.*%{registers}", asm), target.describe()


@pytest.mark.parametrize("backend", ["python", "numba", "parallel"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_backends_train_softmax_like_numpy(backend, dtype):
    X, labels = blobs()
    assert_trains_like_numpy(
        backend, dtype,
        lambda name: NeuralNetwork([4, 8, 3], activations="relu", output="softmax", seed=2, backend=name, dtype=dtype),
        lambda net: net.fit(X, labels, 3, 0.01, batch_size=50, optimizer="adam", l2=0.1, cost_every=1))


def test_labels_and_one_hot_train_alike_and_predict_labels():
    X, labels = blobs()
    onehot = np.eye(3)[:, labels[0]]
    a = NeuralNetwork([4, 8, 3], output="softmax", seed=2).fit(X, labels, 20, 0.5)
    b = NeuralNetwork([4, 8, 3], output="softmax", seed=2).fit(X, onehot, 20, 0.5)
    np.testing.assert_array_equal(a.parameters["W1"], b.parameters["W1"])
    proba = a.predict_proba(X)
    assert proba.shape == (3, X.shape[1])
    np.testing.assert_allclose(proba.sum(axis=0), 1.0, rtol=1e-14)
    np.testing.assert_array_equal(a.predict(X), np.argmax(proba, axis=0).reshape(1, -1))
    assert a.accuracy(X, labels) == a.accuracy(X, onehot) > 0.8


def test_softmax_regression_has_no_hidden_layer():
    X, labels = blobs(C=4)
    net = NeuralNetwork([4, 4], output="softmax", seed=0).fit(X, labels, 200, 0.5)
    assert net.accuracy(X, labels) > 0.8
    assert gradient_check(NeuralNetwork([4, 4], output="softmax", seed=1), X[:, :30], labels[:, :30]) < 2e-7


@pytest.mark.parametrize("backend", CPU)
def test_gradient_check_softmax_with_l2(backend):
    X, labels = blobs(m=30)
    net = NeuralNetwork([4, 5, 3], activations="tanh", output="softmax", seed=3, backend=backend)
    net.fit(X, labels, 5, 0.3)
    assert gradient_check(net, X, labels, l2=0.4) < 2e-7


def test_softmax_and_l2_gradients_equal_autograd():
    torch = pytest.importorskip("torch")
    X, labels = blobs(m=40)
    net = NeuralNetwork([4, 6, 3], activations="tanh", output="softmax", seed=4).fit(X, labels, 3, 0.3)
    p = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in net.parameters.items()}
    A = torch.tanh(p["W1"] @ torch.tensor(X) + p["b1"])
    logits = p["W2"] @ A + p["b2"]
    m, l2 = X.shape[1], 0.4
    J = torch.nn.functional.cross_entropy(logits.T, torch.tensor(labels[0]), reduction="mean")
    J = J + l2 / (2 * m) * (p["W1"].pow(2).sum() + p["W2"].pow(2).sum())
    J.backward()
    assert net.cost(X, labels, l2=l2) == pytest.approx(float(J.detach()), rel=1e-13)
    grads = net.gradients(X, labels, l2=l2)
    for k, v in p.items():
        np.testing.assert_allclose(grads["d" + k], v.grad.numpy(), rtol=1e-10, atol=1e-14, err_msg=k)


def test_digits_reach_95_percent():
    """Real data no one here wrote: scikit-learn's handwritten digits, 10
    classes, softmax + Adam + mini-batches, held-out test accuracy."""
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    digits = sklearn_datasets.load_digits()
    X = (digits.data / 16.0).T
    y = digits.target.reshape(1, -1)
    order = np.random.default_rng(0).permutation(X.shape[1])
    train, test = order[:1347], order[1347:]
    net = NeuralNetwork([64, 64, 10], activations="relu", output="softmax", init="he", seed=0, backend="numba")
    net.fit(X[:, train], y[:, train], epochs=30, learning_rate=0.003, batch_size=64, optimizer="adam", seed=0)
    assert net.accuracy(X[:, test], y[:, test]) >= 0.95


def test_bad_softmax_inputs_say_how_to_fix_them():
    X, labels = blobs(m=20)
    net = NeuralNetwork([4, 3, 3], output="softmax")
    cases = [
        (lambda: net.fit(X, np.full((1, 20), 3), 1, 0.1), r"labels must be integers 0..2.*got 3"),
        (lambda: net.fit(X, np.ones((3, 20)), 1, 0.1), "must be one-hot"),
        (lambda: net.fit(X, np.zeros((2, 20)), 1, 0.1), r"\(1, m\) labels 0..2 or \(3, m\) one-hot"),
        (lambda: NeuralNetwork([4, 3, 1], output="softmax"), "softmax output needs C >= 2 units"),
        (lambda: NeuralNetwork([4, 3, 3]), "use output='softmax'"),
        (lambda: NeuralNetwork([4, 3, 3], output="relu"), "output must be 'sigmoid'"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    assert kernels.get_backend("numpy").kernels.softmax is vectorized.softmax
