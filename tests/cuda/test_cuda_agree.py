"""Every op on backend "cuda" equals the numpy reference, float32 and float64,
with NumPy arrays in and out, and with device arrays in and out.

Tolerances are tests/conftest.py's forward-error bounds, the same the CPU
backends are held to: the tiled products sum in another order than BLAS (and
the GPU fuses multiply-adds), which those bounds allow for any order with or
without FMA; the tree reductions of db, the cost and dot likewise; the GPU's
libdevice exp/tanh are within a few ulp, as libm is, hence act_tol.
"""

import numpy as np
import pytest

import kernels
from conftest import DTYPES, act_bound, act_tol, assert_within, eps, matmul_bound
from cudatests import cuda_ops, is_device, layer, long_reduction, shapes

ops = cuda_ops()
ACTS = kernels.ACTIVATIONS
SHAPES = shapes()
ODD = SHAPES[1]


@pytest.fixture(scope="module")
def ref():
    return kernels.get_backend("numpy")


def wide_z(rng, dtype):
    """Z (3, 7): ordinary values, and in every third cell a huge one or 0
    (saturation, the exp overflow range, relu's g'(0) = 0)."""
    Z = rng.standard_normal((3, 7)) * 3
    Z.reshape(-1)[::3] = [-1e4, -800.0, -30.0, 0.0, 30.0, 800.0, 1e4]
    return Z.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_linear_forward(ref, dtype, shape):
    n, k, m = shape
    A_prev, W, b = layer(np.random.default_rng(1), n, k, m, dtype)
    Z = ops.linear_forward(A_prev, W, b)
    assert isinstance(Z, np.ndarray) and Z.dtype == dtype and Z.shape == (n, m)
    bound = matmul_bound(np.abs(W), np.abs(A_prev), np.abs(b), k, dtype)
    assert_within(Z, ref.linear_forward(A_prev, W, b), bound, "cuda linear_forward")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTS)
def test_linear_activation_forward(ref, dtype, activation):
    n, k, m = ODD
    A_prev, W, b = layer(np.random.default_rng(2), n, k, m, dtype)
    Z, A = ops.linear_activation_forward(A_prev, W, b, activation)
    bound = matmul_bound(np.abs(W), np.abs(A_prev), np.abs(b), k, dtype)
    assert_within(Z, ref.linear_forward(A_prev, W, b), bound, "cuda fused Z")
    expected = ref.activation_forward(Z, activation)  # g of this backend's own Z
    assert_within(A, expected, act_bound(expected, dtype),
                  f"cuda fused A ({activation})")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTS)
def test_activation_forward(ref, dtype, activation):
    Z = wide_z(np.random.default_rng(3), dtype)
    A = ops.activation_forward(Z, activation)
    assert A.dtype == dtype and np.all(np.isfinite(A)), "an activation overflowed"
    expected = ref.activation_forward(Z, activation)
    assert_within(A, expected, act_bound(expected, dtype),
                  f"cuda {activation}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTS)
def test_activation_backward(ref, dtype, activation):
    rng = np.random.default_rng(4)
    Z = wide_z(rng, dtype)
    dA = rng.standard_normal((3, 7)).astype(dtype)
    dZ = ops.activation_backward(dA, Z, activation)
    expected = ref.activation_backward(dA, Z, activation)
    # 1 - tanh^2 and s (1 - s) cancel near saturation: a few eps of |dA| too
    bound = act_tol(dtype) * (np.abs(expected) + np.abs(dA)) + np.finfo(dtype).tiny
    assert_within(dZ, expected, bound, f"cuda activation_backward {activation}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTS)
def test_activation_backward_from_output(ref, dtype, activation):
    """The raw kernel model.program uses: g' read from A = g(Z) for tanh/sigmoid."""
    rng = np.random.default_rng(4)
    Z = wide_z(rng, dtype)
    dA = rng.standard_normal((3, 7)).astype(dtype)
    A = ref.activation_forward(Z, activation)
    dZ = ops.empty(Z.shape, dtype)
    ops.kernels.activation_backward_from_output(dZ, ops.asarray(dA), ops.asarray(Z), ops.asarray(A),
                                                kernels.ACTIVATION_CODES[activation])
    expected = ref.activation_backward(dA, Z, activation)
    bound = act_tol(dtype) * (np.abs(expected) + np.abs(dA)) + np.finfo(dtype).tiny
    assert_within(ops.to_host(dZ), expected, bound, f"cuda from output {activation}")


def backward_bounds(dZ, A_prev, W, dtype):
    n, m = dZ.shape
    aZ, aA, aW = np.abs(dZ), np.abs(A_prev), np.abs(W)
    return (matmul_bound(aW.T, aZ, 0, n, dtype),                          # dA_prev
            matmul_bound(aZ, aA.T, 0, m + 1, dtype) / m,                  # dW (then 1/m)
            matmul_bound(aZ, np.ones((m, 1)), 0, m + 1, dtype) / m)       # db


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + [(2, 3, long_reduction())], ids=str)
def test_linear_backward(ref, dtype, shape):
    """The last shape's rows are long: each thread of db's block sums several cells."""
    n, k, m = shape
    rng = np.random.default_rng(5)
    A_prev, W, _ = layer(rng, n, k, m, dtype)
    dZ = rng.standard_normal((n, m)).astype(dtype)
    got = ops.linear_backward(dZ, A_prev, W)
    for g, r, bound, what in zip(got, ref.linear_backward(dZ, A_prev, W),
                                 backward_bounds(dZ, A_prev, W, dtype), ("dA_prev", "dW", "db")):
        assert isinstance(g, np.ndarray) and g.dtype == dtype
        assert_within(g, r, bound, f"cuda {what}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTS)
def test_linear_activation_backward(ref, dtype, activation):
    n, k, m = ODD
    rng = np.random.default_rng(6)
    A_prev, W, _ = layer(rng, n, k, m, dtype)
    Z = (rng.standard_normal((n, m)) * 2).astype(dtype)
    dA = rng.standard_normal((n, m)).astype(dtype)
    dZ = np.empty((n, m), dtype)
    got = ops.linear_activation_backward(dA, Z, A_prev, W, activation,
                                         out=(np.empty((k, m), dtype), np.empty((n, k), dtype),
                                              np.empty((n, 1), dtype), dZ))
    # the fused op equals its two steps on this backend...
    np.testing.assert_array_equal(dZ, ops.activation_backward(dA, Z, activation))
    for g, u in zip(got, ops.linear_backward(dZ, A_prev, W)):
        np.testing.assert_array_equal(g, u)
    # ...and the reference, given the same dZ (dZ itself is held to the
    # reference by test_activation_backward)
    for g, r, bound, what in zip(got, ref.linear_backward(dZ, A_prev, W),
                                 backward_bounds(dZ, A_prev, W, dtype), ("dA_prev", "dW", "db")):
        assert_within(g, r, bound, f"cuda fused {what}")


def cost_terms(AL, Y):
    a = np.clip(AL.astype(np.float64), np.finfo(AL.dtype).eps, 1 - np.finfo(AL.dtype).eps)
    y = Y.astype(np.float64)
    return np.abs(y * np.log(a)) + np.abs((1 - y) * np.log(1 - a))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [1, 7, long_reduction()])
def test_cross_entropy(ref, dtype, m):
    """The long m runs both passes of the reduction, every thread striding."""
    rng = np.random.default_rng(m)
    AL = rng.uniform(0, 1, (1, m)).astype(dtype)
    AL[0, ::7] = 0.0  # exact 0 and 1 are clipped: a finite cost
    AL[0, 3::7] = 1.0
    Y = (rng.random((1, m)) < 0.5).astype(dtype)
    J = ops.cross_entropy(AL, Y)
    assert isinstance(J, float) and np.isfinite(J)
    # per term a log, a product and a sum; numpy sums pairwise in the dtype
    bound = (np.log2(m) + 8) * eps(dtype) * cost_terms(AL, Y).sum() / m
    assert abs(J - ref.cross_entropy(AL, Y)) <= bound


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_backward(ref, dtype):
    rng = np.random.default_rng(8)
    AL = rng.uniform(0, 1, (1, 11)).astype(dtype)
    AL[0, ::5] = 0.0
    AL[0, 2::5] = 1.0
    Y = (rng.random((1, 11)) < 0.5).astype(dtype)
    dAL = ops.cross_entropy_backward(AL, Y)
    assert np.all(np.isfinite(dAL)), "a division by zero in cross_entropy_backward"
    a = np.clip(AL.astype(np.float64), eps(dtype), 1 - eps(dtype))
    scale = np.abs(Y / a) + np.abs((1 - Y) / (1 - a))
    assert_within(dAL, ref.cross_entropy_backward(AL, Y), 4 * eps(dtype) * scale, "cuda dAL")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lr", [0.75, -3.0])
def test_gradient_step(ref, dtype, lr):
    rng = np.random.default_rng(9)
    param = rng.standard_normal((5, 3)).astype(dtype)
    grad = rng.standard_normal((5, 3)).astype(dtype)
    expected = ref.gradient_step(param.copy(), grad, lr)
    got = param.copy()
    assert ops.gradient_step(got, grad, lr) is got  # in place, NumPy in -> the same array
    lr_d = abs(float(dtype(lr)))  # lr rounded to the dtype; an FMA may skip a rounding
    assert_within(got, expected, 2 * eps(dtype) * (np.abs(param) + lr_d * np.abs(grad)), "step")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 9, long_reduction()])
def test_dot(ref, dtype, n):
    rng = np.random.default_rng(n)
    a = rng.standard_normal(n).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    s = ops.dot(a, b)
    assert isinstance(s, np.generic) and s.dtype == dtype
    bound = 2 * (n + 2) * eps(dtype) * np.abs(a.astype(np.float64) * b).sum()
    assert abs(float(s) - float(ref.dot(a, b))) <= bound


# ------------------------------------------------------------------ device arrays


@pytest.mark.parametrize("dtype", DTYPES)
def test_device_in_device_out(dtype):
    """Device inputs give device results, equal to the NumPy path's (same kernels)."""
    n, k, m = ODD
    rng = np.random.default_rng(10)
    A_prev, W, b = layer(rng, n, k, m, dtype)
    dA = rng.standard_normal((n, m)).astype(dtype)
    d = {name: ops.asarray(x) for name, x in dict(A_prev=A_prev, W=W, b=b, dA=dA).items()}
    assert all(is_device(x) for x in d.values())

    def same(device_result, host_result):
        assert is_device(device_result), type(device_result)
        np.testing.assert_array_equal(ops.to_host(device_result), host_result)

    same(ops.linear_forward(d["A_prev"], d["W"], b), ops.linear_forward(A_prev, W, b))  # mixed: device
    Zd, Ad = ops.linear_activation_forward(d["A_prev"], d["W"], d["b"], "tanh")
    Z, A = ops.linear_activation_forward(A_prev, W, b, "tanh")
    same(Zd, Z)
    same(Ad, A)
    same(ops.activation_forward(Zd, "sigmoid"), ops.activation_forward(Z, "sigmoid"))
    same(ops.activation_backward(d["dA"], Zd, "relu"), ops.activation_backward(dA, Z, "relu"))
    for g, h in zip(ops.linear_backward(d["dA"], d["A_prev"], d["W"]), ops.linear_backward(dA, A_prev, W)):
        same(g, h)
    for g, h in zip(ops.linear_activation_backward(d["dA"], Zd, d["A_prev"], d["W"], "leaky_relu"),
                    ops.linear_activation_backward(dA, Z, A_prev, W, "leaky_relu")):
        same(g, h)
    AL = (A[:1] + 1) / 2  # in (0, 1)
    Y = (AL > 0.5).astype(dtype)
    ALd, Yd = ops.asarray(AL), ops.asarray(Y)
    same(ops.cross_entropy_backward(ALd, Yd), ops.cross_entropy_backward(AL, Y))
    J = ops.cross_entropy(ALd, Yd)
    assert isinstance(J, float) and J == ops.cross_entropy(AL, Y)
    a, c = A.ravel(), Z.ravel()
    s = ops.dot(ops.asarray(a), ops.asarray(c))
    assert isinstance(s, np.generic) and s == ops.dot(a, c)


@pytest.mark.parametrize("dtype", DTYPES)
def test_device_out(dtype):
    """out= takes device arrays (and then allocates nothing); the out array is returned."""
    n, k, m = ODD
    rng = np.random.default_rng(11)
    A_prev, W, b = layer(rng, n, k, m, dtype)
    Z = ops.empty((n, m), dtype)
    assert is_device(Z)
    assert ops.linear_forward(A_prev, W, b, out=Z) is Z  # NumPy inputs, device out
    np.testing.assert_array_equal(ops.to_host(Z), ops.linear_forward(A_prev, W, b))
    A = ops.empty((n, m), dtype)
    assert ops.linear_activation_forward(ops.asarray(A_prev), W, b, "relu", out=(Z, A))[1] is A
    assert ops.activation_forward(Z, "relu", out=Z) is Z  # in place, elementwise
    np.testing.assert_array_equal(ops.to_host(Z), ops.to_host(A))
    outs = (ops.empty((k, m), dtype), ops.empty((n, k), dtype), ops.empty((n, 1), dtype), ops.empty((n, m), dtype))
    got = ops.linear_activation_backward(A, Z, ops.asarray(A_prev), ops.asarray(W), "relu", out=outs)
    assert all(g is o for g, o in zip(got, outs[:3]))
    want = ops.linear_activation_backward(ops.to_host(A), ops.to_host(Z), A_prev, W, "relu")
    for g, w in zip(got, want):
        np.testing.assert_array_equal(ops.to_host(g), w)
    host_out = np.empty((n, m), dtype)  # device inputs, NumPy out: filled and returned
    assert ops.activation_backward(A, Z, "tanh", out=host_out) is host_out
    np.testing.assert_array_equal(host_out, ops.activation_backward(ops.to_host(A), ops.to_host(Z), "tanh"))
    J = ops.empty((), np.float64)
    AL, Y = np.full((1, m), 0.25, dtype), np.ones((1, m), dtype)
    assert ops.cross_entropy(ops.asarray(AL), ops.asarray(Y), out=J) is J
    assert float(ops.to_host(J)) == pytest.approx(-np.log(0.25), rel=10 * eps(dtype))
    s = ops.empty((), dtype)
    assert ops.dot(ops.asarray(np.ones(5, dtype)), np.ones(5, dtype), out=s) is s and float(ops.to_host(s)) == 5.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_device_gradient_step(dtype):
    """In place on a device param; with out= the param is left alone."""
    p = np.arange(6, dtype=dtype).reshape(2, 3)
    g = np.ones((2, 3), dtype)
    pd, gd = ops.asarray(p), ops.asarray(g)
    assert ops.gradient_step(pd, gd, 0.5) is pd
    np.testing.assert_array_equal(ops.to_host(pd), p - dtype(0.5))
    out = ops.empty((2, 3), dtype)
    assert ops.gradient_step(pd, gd, 0.5, out=out) is out
    np.testing.assert_array_equal(ops.to_host(out), p - dtype(1.0))
    np.testing.assert_array_equal(ops.to_host(pd), p - dtype(0.5))
    assert ops.gradient_step(pd, gd, 1.0, out=pd) is pd  # out=param: in place
    np.testing.assert_array_equal(ops.to_host(pd), p - dtype(1.5))


def test_hooks_round_trip():
    x = np.arange(6.0).reshape(2, 3)
    d = ops.asarray(x)
    assert is_device(d) and ops.asarray(d) is d
    np.testing.assert_array_equal(ops.to_host(d), x)
    e = ops.empty((4, 1), np.float32)
    assert is_device(e) and e.shape == (4, 1) and e.dtype == np.float32
    ops.synchronize()


def test_float32_stays_float32():
    """A float32 op never hands back float64 (the kernels' constants are typed)."""
    f = np.float32
    A_prev, W, b = layer(np.random.default_rng(12), 2, 3, 4, f)
    Z, A = ops.linear_activation_forward(A_prev, W, b, "sigmoid")
    assert Z.dtype == A.dtype == f
    assert all(g.dtype == f for g in ops.linear_activation_backward(A, Z, A_prev, W, "tanh"))
    assert ops.dot(A_prev[0], A_prev[1]).dtype == f
