"""One tiny example per op, worked by hand (the arithmetic is in the comments),
on every CPU backend and both dtypes; and every backward op against central
finite differences of its forward."""

import math

import numpy as np
import pytest

import kernels
from conftest import ALL_CPU, DTYPES, eps


def arr(x, dtype):
    return np.array(x, dtype=dtype)


def close(got, want, dtype, ulps=4):
    want = np.asarray(want, dtype=np.float64)
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=ulps * eps(dtype),
                               atol=ulps * eps(dtype) * np.max(np.abs(want), initial=0.0))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", ALL_CPU)
class TestByHand:
    def test_linear_forward(self, backend, dtype):
        # Z[0] = 1*A[0] + 2*A[1] + 0.5 = [1-2+.5, 0+2+.5, 2+1+.5] = [-0.5, 2.5, 3.5]
        # Z[1] = 3*A[0] - 1*A[1] - 1   = [3+1-1, 0-1-1, 6-.5-1]  = [3, -2, 4.5]
        W = arr([[1, 2], [3, -1]], dtype)
        A_prev = arr([[1, 0, 2], [-1, 1, 0.5]], dtype)
        b = arr([[0.5], [-1]], dtype)
        Z = kernels.get_backend(backend).linear_forward(A_prev, W, b)
        close(Z, [[-0.5, 2.5, 3.5], [3, -2, 4.5]], dtype)

    def test_activation_forward(self, backend, dtype):
        ops = kernels.get_backend(backend)
        Z = arr([[0, 2, -3]], dtype)
        close(ops.activation_forward(Z, "relu"), [[0, 2, 0]], dtype)
        close(ops.activation_forward(Z, "leaky_relu"), [[0, 2, -0.03]], dtype)  # 0.01 * -3
        close(ops.activation_forward(Z, "linear"), [[0, 2, -3]], dtype)
        # sigmoid(0) = 1/2; sigmoid(2) = 1/(1+e^-2) = 0.8807970779778823; sigmoid(-3) = e^-3/(1+e^-3)
        close(ops.activation_forward(Z, "sigmoid"), [[0.5, 0.8807970779778823, 0.04742587317756678]], dtype)
        # tanh(0) = 0; tanh(2) = (e^4-1)/(e^4+1) = 0.9640275800758169
        close(ops.activation_forward(Z, "tanh"), [[0, 0.9640275800758169, -0.9950547536867305]], dtype)
        # No overflow: sigmoid(-1000) = e^-1000/(1+...) underflows to 0, sigmoid(1000) = 1.
        close(ops.activation_forward(arr([[-1000, 1000]], dtype), "sigmoid"), [[0, 1]], dtype)

    def test_linear_activation_forward(self, backend, dtype):
        # Z = [1, -1] @ [[1, 2], [3, 1]] + 0 = [1-3, 2-1] = [-2, 1]; relu(Z) = [0, 1]
        Z, A = kernels.get_backend(backend).linear_activation_forward(
            arr([[1, 2], [3, 1]], dtype), arr([[1, -1]], dtype), arr([[0]], dtype), "relu")
        close(Z, [[-2, 1]], dtype)
        close(A, [[0, 1]], dtype)

    def test_activation_backward(self, backend, dtype):
        ops = kernels.get_backend(backend)
        dA = arr([[1, 2, 3]], dtype)
        Z = arr([[-1, 0, 5]], dtype)
        # relu: g' = [0, 0 (z = 0: the course code's dZ[Z <= 0] = 0), 1]
        close(ops.activation_backward(dA, Z, "relu"), [[0, 0, 3]], dtype)
        close(ops.activation_backward(dA, Z, "leaky_relu"), [[0.01, 0.02, 3]], dtype)
        close(ops.activation_backward(dA, Z, "linear"), [[1, 2, 3]], dtype)
        # sigmoid'(0) = 0.5 * 0.5 = 0.25; tanh'(0) = 1 - 0 = 1
        close(ops.activation_backward(arr([[4, 4]], dtype), arr([[0, 0]], dtype), "sigmoid"), [[1, 1]], dtype)
        close(ops.activation_backward(arr([[4, 4]], dtype), arr([[0, 0]], dtype), "tanh"), [[4, 4]], dtype)

    def test_linear_backward(self, backend, dtype):
        # dZ = [[1, 2]] (n = 1, m = 2), A_prev = [[3, 4], [5, 6]], W = [[7, 8]]
        # dW = (1/2) [1*3 + 2*4, 1*5 + 2*6] = [5.5, 8.5]; db = (1 + 2)/2 = 1.5
        # dA_prev = W^T dZ = [[7*1, 7*2], [8*1, 8*2]]
        dA_prev, dW, db = kernels.get_backend(backend).linear_backward(
            arr([[1, 2]], dtype), arr([[3, 4], [5, 6]], dtype), arr([[7, 8]], dtype))
        close(dW, [[5.5, 8.5]], dtype)
        close(db, [[1.5]], dtype)
        close(dA_prev, [[7, 14], [8, 16]], dtype)

    def test_linear_activation_backward(self, backend, dtype):
        # relu: dZ = dA * g'(Z) = [1*0, 2*1] = [0, 2] for Z = [-1, 3]
        # dW = (1/2) [0*3 + 2*4, 0*5 + 2*6] = [4, 6]; db = 2/2 = 1; dA_prev = [[0, 14], [0, 16]]
        dA_prev, dW, db = kernels.get_backend(backend).linear_activation_backward(
            arr([[1, 2]], dtype), arr([[-1, 3]], dtype), arr([[3, 4], [5, 6]], dtype),
            arr([[7, 8]], dtype), "relu")
        close(dW, [[4, 6]], dtype)
        close(db, [[1]], dtype)
        close(dA_prev, [[0, 14], [0, 16]], dtype)

    def test_cross_entropy(self, backend, dtype):
        ops = kernels.get_backend(backend)
        # J = -(1/2) (1*log 0.8 + 1*log(1 - 0.4)) = (1/2) log(1/(0.8*0.6)) = (1/2) log(1/0.48)
        J = ops.cross_entropy(arr([[0.8, 0.4]], dtype), arr([[1, 0]], dtype))
        assert J == pytest.approx(0.5 * math.log(1 / 0.48), rel=8 * eps(dtype))
        # AL exactly 0 with Y = 1: clipped to eps = 2^-52 (float64) or 2^-23 (float32),
        # so J = -log(eps) = 52 ln 2 = 36.04 (float64) or 23 ln 2 = 15.94 (float32), finite.
        bits = 52 if dtype == np.float64 else 23
        J0 = ops.cross_entropy(arr([[0.0]], dtype), arr([[1]], dtype))
        assert J0 == pytest.approx(bits * math.log(2), rel=8 * eps(dtype))

    def test_cross_entropy_backward(self, backend, dtype):
        # dAL = -(y/a - (1-y)/(1-a)) = [-(1/0.8), 1/(1-0.4)] = [-1.25, 1.6666...]
        dAL = kernels.get_backend(backend).cross_entropy_backward(arr([[0.8, 0.4]], dtype), arr([[1, 0]], dtype))
        close(dAL, [[-1.25, 1 / 0.6]], dtype)

    def test_gradient_step(self, backend, dtype):
        # [1, 2] - 0.1 * [0.5, -1] = [0.95, 2.1]
        p = arr([[1, 2]], dtype)
        out = kernels.get_backend(backend).gradient_step(p, arr([[0.5, -1]], dtype), 0.1)
        assert out is p
        close(p, [[0.95, 2.1]], dtype)

    def test_dot(self, backend, dtype):
        # 1*4 + 2*5 + 3*6 = 32
        assert kernels.get_backend(backend).dot(arr([1, 2, 3], dtype), arr([4, 5, 6], dtype)) == 32


# ---------------------------------------------------------------- finite differences
# float64 only: a central difference has truncation error O(h^2) and rounding
# error O(eps/h); h = 1e-6 balances them at ~1e-10 relative, far below the
# tolerance 1e-6 and far above float32's resolution, so float32 is covered by
# the agreement tests instead.
H = 1e-6


def numeric_grad(f, x):
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + H
        fp = f()
        x[i] = old - H
        fm = f()
        x[i] = old
        g[i] = (fp - fm) / (2 * H)
    return g


@pytest.mark.parametrize("backend", ALL_CPU)
@pytest.mark.parametrize("activation", kernels.ACTIVATIONS)
def test_activation_backward_is_derivative(backend, activation):
    ops = kernels.get_backend(backend)
    rng = np.random.default_rng(1)
    Z = rng.standard_normal((3, 5)) * 2
    Z[np.abs(Z) < 1e-3] = 0.5  # keep clear of the relu kink
    dA = rng.standard_normal((3, 5))
    # L(Z) = sum(dA * g(Z))  =>  dL/dZ = dA * g'(Z)
    numeric = numeric_grad(lambda: float(np.sum(dA * ops.activation_forward(Z, activation))), Z)
    np.testing.assert_allclose(ops.activation_backward(dA, Z, activation), numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("backend", ALL_CPU)
@pytest.mark.parametrize("activation", kernels.ACTIVATIONS)
def test_linear_activation_backward_is_derivative(backend, activation):
    ops = kernels.get_backend(backend)
    rng = np.random.default_rng(2)
    n, k, m = 3, 4, 5
    A_prev = rng.standard_normal((k, m))
    W = rng.standard_normal((n, k))
    b = rng.standard_normal((n, 1))
    dA = rng.standard_normal((n, m))

    def L():  # L = sum(dA * g(W A_prev + b))
        return float(np.sum(dA * ops.linear_activation_forward(A_prev, W, b, activation)[1]))

    Z = ops.linear_forward(A_prev, W, b)
    dA_prev, dW, db = ops.linear_activation_backward(dA, Z, A_prev, W, activation)
    # dW and db carry the course's 1/m (the cost is a mean over examples): undo it.
    for got, x in ((dA_prev, A_prev), (dW * m, W), (db * m, b)):
        np.testing.assert_allclose(got, numeric_grad(L, x), rtol=1e-6, atol=1e-7)
    # linear_backward is the same derivative with g the identity.
    dZ = ops.activation_backward(dA, Z, activation)
    lb = ops.linear_backward(dZ, A_prev, W)
    for got, want in zip(lb, (dA_prev, dW, db)):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("backend", ALL_CPU)
def test_cross_entropy_backward_is_derivative(backend):
    ops = kernels.get_backend(backend)
    rng = np.random.default_rng(3)
    m = 6
    AL = rng.uniform(0.05, 0.95, (1, m))
    Y = (rng.random((1, m)) < 0.5).astype(np.float64)
    # J = -(1/m) sum(...)  =>  dJ/dAL = dAL / m
    numeric = numeric_grad(lambda: ops.cross_entropy(AL, Y), AL)
    np.testing.assert_allclose(ops.cross_entropy_backward(AL, Y) / m, numeric, rtol=1e-6, atol=1e-9)
