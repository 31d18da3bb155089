"""Every op on every CPU backend equals the numpy reference, float32 and float64.

Shapes are drawn by hypothesis (m = 1, n = 1 and odd sizes included, plus
sizes around the loops' tile width BLOCK); values come from a seeded NumPy
generator. Tolerances are the forward-error bounds of tests/conftest.py.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import kernels
from kernels.loops import BLOCK
from conftest import CPU_BACKENDS, DTYPES, act_bound, act_tol, assert_within, eps, matmul_bound

ACTS = kernels.ACTIVATIONS

# The interpreted backend runs ~1 us per multiply-add: keep its shapes small.
SMALL = st.integers(1, 9)
LARGE = st.one_of(st.integers(1, 40), st.sampled_from([BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 3]))


def dims(backend):
    if backend == "python":
        return st.tuples(SMALL, SMALL, st.one_of(SMALL, st.just(BLOCK + 1)))
    return st.tuples(st.integers(1, 40), st.integers(1, 40), LARGE)


def layer(rng, n, k, m, dtype, scale=1.0):
    A_prev = (rng.standard_normal((k, m)) * scale).astype(dtype)
    W = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(dtype)
    b = rng.standard_normal((n, 1)).astype(dtype)
    return A_prev, W, b


def wide_z(rng, shape, dtype):
    """Z mixing ordinary values with huge ones (sigmoid/tanh saturation, exp overflow range)."""
    Z = rng.standard_normal(shape) * 3
    mask = rng.random(shape) < 0.1
    Z[mask] = rng.choice([-1e4, -800.0, -90.0, -30.0, 30.0, 90.0, 800.0, 1e4], size=mask.sum())
    return Z.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@given(shape=st.data(), seed=st.integers(0, 2**32 - 1))
def test_linear_forward(backend, dtype, ref, shape, seed):
    n, k, m = shape.draw(dims(backend))
    rng = np.random.default_rng(seed)
    A_prev, W, b = layer(rng, n, k, m, dtype)
    Z = kernels.get_backend(backend).linear_forward(A_prev, W, b)
    assert Z.dtype == dtype and Z.shape == (n, m)
    bound = matmul_bound(np.abs(W), np.abs(A_prev), np.abs(b), k, dtype)
    assert_within(Z, ref.linear_forward(A_prev, W, b), bound, f"{backend} linear_forward")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("activation", ACTS)
@given(shape=st.data(), seed=st.integers(0, 2**32 - 1))
def test_activation_forward(backend, dtype, activation, ref, shape, seed):
    n, _, m = shape.draw(dims(backend))
    Z = wide_z(np.random.default_rng(seed), (n, m), dtype)
    A = kernels.get_backend(backend).activation_forward(Z, activation)
    assert A.dtype == dtype
    assert np.all(np.isfinite(A)), "an activation overflowed"
    expected = ref.activation_forward(Z, activation)
    assert_within(A, expected, act_bound(expected, dtype),
                  f"{backend} {activation}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("activation", ACTS)
@given(shape=st.data(), seed=st.integers(0, 2**32 - 1))
def test_linear_activation_forward(backend, dtype, activation, ref, shape, seed):
    n, k, m = shape.draw(dims(backend))
    rng = np.random.default_rng(seed)
    A_prev, W, b = layer(rng, n, k, m, dtype)
    Z, A = kernels.get_backend(backend).linear_activation_forward(A_prev, W, b, activation)
    bound = matmul_bound(np.abs(W), np.abs(A_prev), np.abs(b), k, dtype)
    assert_within(Z, ref.linear_forward(A_prev, W, b), bound, f"{backend} fused Z")
    # A is g of this backend's own Z: compare with the reference g of that same Z.
    expected = ref.activation_forward(Z, activation)
    assert_within(A, expected, act_bound(expected, dtype),
                  f"{backend} fused A ({activation})")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("activation", ACTS)
@given(shape=st.data(), seed=st.integers(0, 2**32 - 1))
def test_activation_backward(backend, dtype, activation, ref, shape, seed):
    n, _, m = shape.draw(dims(backend))
    rng = np.random.default_rng(seed)
    Z = wide_z(rng, (n, m), dtype)
    dA = rng.standard_normal((n, m)).astype(dtype)
    dZ = kernels.get_backend(backend).activation_backward(dA, Z, activation)
    expected = ref.activation_backward(dA, Z, activation)
    # g' = 1 - tanh^2 and s (1 - s) cancel near saturation: allow a few eps of
    # |dA| absolutely, as well as relative to the result.
    bound = act_tol(dtype) * (np.abs(expected) + np.abs(dA)) + np.finfo(dtype).tiny
    assert_within(dZ, expected, bound, f"{backend} activation_backward {activation}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@given(shape=st.data(), seed=st.integers(0, 2**32 - 1))
def test_linear_backward(backend, dtype, ref, shape, seed):
    n, k, m = shape.draw(dims(backend))
    rng = np.random.default_rng(seed)
    A_prev, W, _ = layer(rng, n, k, m, dtype)
    dZ = rng.standard_normal((n, m)).astype(dtype)
    dA_prev, dW, db = kernels.get_backend(backend).linear_backward(dZ, A_prev, W)
    r_dA, r_dW, r_db = ref.linear_backward(dZ, A_prev, W)
    aZ, aA, aW = np.abs(dZ), np.abs(A_prev), np.abs(W)
    # dW and db: sums over m, then one more rounding for the 1/m scale.
    assert_within(dW, r_dW, matmul_bound(aZ, aA.T, 0, m + 1, dtype) / m, f"{backend} dW")
    assert_within(db, r_db, matmul_bound(aZ, np.ones((m, 1)), 0, m + 1, dtype) / m, f"{backend} db")
    assert_within(dA_prev, r_dA, matmul_bound(aW.T, aZ, 0, n, dtype), f"{backend} dA_prev")
    for got, want in ((dA_prev, (k, m)), (dW, (n, k)), (db, (n, 1))):
        assert got.shape == want and got.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("activation", ACTS)
@given(shape=st.data(), seed=st.integers(0, 2**32 - 1))
def test_linear_activation_backward(backend, dtype, activation, ref, shape, seed):
    n, k, m = shape.draw(dims(backend))
    rng = np.random.default_rng(seed)
    A_prev, W, _ = layer(rng, n, k, m, dtype)
    Z = (rng.standard_normal((n, m)) * 2).astype(dtype)
    dA = rng.standard_normal((n, m)).astype(dtype)
    ops = kernels.get_backend(backend)
    dA_prev, dW, db = ops.linear_activation_backward(dA, Z, A_prev, W, activation)
    # The fused op must equal its two unfused steps on this same backend...
    dZ = ops.activation_backward(dA, Z, activation)
    u_dA, u_dW, u_db = ops.linear_backward(dZ, A_prev, W)
    np.testing.assert_array_equal(dA_prev, u_dA)
    np.testing.assert_array_equal(dW, u_dW)
    np.testing.assert_array_equal(db, u_db)
    # ...and the reference, through the reference's own dZ.
    r_dZ = ref.activation_backward(dA, Z, activation)
    r_dA, r_dW, r_db = ref.linear_backward(r_dZ, A_prev, W)
    dz_err = 8 * eps(dtype) * (np.abs(r_dZ) + np.abs(dA))  # per-cell error of dZ
    aZ = np.abs(r_dZ) + dz_err
    aA, aW = np.abs(A_prev), np.abs(W)
    assert_within(dW, r_dW, matmul_bound(aZ, aA.T, 0, m + 1, dtype) / m + dz_err @ aA.T / m, "dW")
    assert_within(db, r_db, matmul_bound(aZ, np.ones((m, 1)), 0, m + 1, dtype) / m
                  + dz_err.sum(axis=1, keepdims=True) / m, "db")
    assert_within(dA_prev, r_dA, matmul_bound(aW.T, aZ, 0, n, dtype) + aW.T @ dz_err, "dA_prev")


def cost_terms(AL, Y):
    a = np.clip(AL.astype(np.float64), np.finfo(AL.dtype).eps, 1 - np.finfo(AL.dtype).eps)
    y = Y.astype(np.float64)
    return np.abs(y * np.log(a)) + np.abs((1 - y) * np.log(1 - a))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@given(m=st.one_of(st.integers(1, 50), st.just(1001)), seed=st.integers(0, 2**32 - 1))
def test_cross_entropy(backend, dtype, ref, m, seed):
    rng = np.random.default_rng(seed)
    AL = rng.uniform(0, 1, (1, m)).astype(dtype)
    AL[0, :: 7] = 0.0  # exact 0 and 1 must give a finite cost (clipped)
    AL[0, 3 :: 7] = 1.0
    Y = (rng.random((1, m)) < 0.5).astype(dtype)
    J = kernels.get_backend(backend).cross_entropy(AL, Y)
    assert isinstance(J, float) and np.isfinite(J)
    # Per term: a log (<= 2 ulp), a product and a sum (~4 eps in all); the numpy
    # reference sums pairwise in the dtype (log2(m) eps), ours in float64.
    bound = (np.log2(m) + 8) * eps(dtype) * cost_terms(AL, Y).sum() / m
    assert abs(J - ref.cross_entropy(AL, Y)) <= bound


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@given(m=st.integers(1, 300), seed=st.integers(0, 2**32 - 1))
def test_cross_entropy_backward(backend, dtype, ref, m, seed):
    rng = np.random.default_rng(seed)
    AL = rng.uniform(0, 1, (1, m)).astype(dtype)
    AL[0, :: 5] = 0.0
    AL[0, 2 :: 5] = 1.0
    Y = (rng.random((1, m)) < 0.5).astype(dtype)
    dAL = kernels.get_backend(backend).cross_entropy_backward(AL, Y)
    assert np.all(np.isfinite(dAL)), "a division by zero in cross_entropy_backward"
    a = np.clip(AL.astype(np.float64), eps(dtype), 1 - eps(dtype))
    scale = np.abs(Y / a) + np.abs((1 - Y) / (1 - a))
    assert_within(dAL, ref.cross_entropy_backward(AL, Y), 4 * eps(dtype) * scale, f"{backend} dAL")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@given(shape=st.data(), lr=st.floats(-10, 10), seed=st.integers(0, 2**32 - 1))
def test_gradient_step(backend, dtype, ref, shape, lr, seed):
    n, k, _ = shape.draw(dims(backend))
    rng = np.random.default_rng(seed)
    param = rng.standard_normal((n, k)).astype(dtype)
    grad = rng.standard_normal((n, k)).astype(dtype)
    expected = ref.gradient_step(param.copy(), grad, lr)
    got = param.copy()
    returned = kernels.get_backend(backend).gradient_step(got, grad, lr)
    assert returned is got
    # lr is rounded to the dtype in both; FMA may skip one rounding of lr * grad.
    lr_d = abs(float(dtype(lr)))
    assert_within(got, expected, 2 * eps(dtype) * (np.abs(param) + lr_d * np.abs(grad)), "step")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@given(n=st.one_of(st.integers(0, 100), st.just(10_001)), seed=st.integers(0, 2**32 - 1))
def test_dot(backend, dtype, ref, n, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(n).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    s = kernels.get_backend(backend).dot(a, b)
    assert isinstance(s, np.generic) and s.dtype == dtype
    bound = 2 * (n + 2) * eps(dtype) * np.abs(a.astype(np.float64) * b).sum()
    assert abs(float(s) - float(ref.dot(a, b))) <= bound


def test_float32_loops_stay_float32():
    """No float64 literal or accumulator promotes a float32 loop: the LLVM IR of
    every float32 kernel has no float -> double conversion, except the cost,
    whose float64 accumulator is deliberate (documented in loops.cross_entropy).
    Compiled fresh without the cache, since cached code cannot be inspected."""
    from kernels import cpu
    options = dict(cpu.SERIAL_OPTIONS, cache=False)
    tiles = cpu.compile_tiles("__f32check", options)  # the products' tiles, fresh too
    fresh = cpu.compile_loops("__f32check", options, tiles=cpu.callees(tiles))
    ops = kernels.Ops("f32check", fresh)
    f = np.float32
    rng = np.random.default_rng(0)
    A_prev, W, b = layer(rng, 3, 4, 5, f)
    Z, A = ops.linear_activation_forward(A_prev, W, b, "tanh")
    ops.activation_forward(Z, "sigmoid")
    ops.linear_forward(A_prev, W, b)
    ops.linear_activation_backward(A, Z, A_prev, W, "sigmoid")
    ops.cross_entropy_backward(np.full((1, 5), 0.5, f), np.ones((1, 5), f))
    ops.gradient_step(W.copy(), W, 0.1)
    ops.dot(A_prev[0], A_prev[1])
    reached = set()
    for n, k, m in ((4, 256, 32), (8, 8, 1024), (64, 64, 256)):  # every blocked and packed tile
        A_prev, W, b = layer(rng, n, k, m, f)
        Z, A = ops.linear_activation_forward(A_prev, W, b, "tanh")
        ops.linear_activation_backward(A, Z, A_prev, W, "tanh")
        reached |= {name for name in vars(tiles) if getattr(tiles, name).signatures}
    # the sparse tiles: a relu layer's input and its dZ, a third of their cells nonzero
    A_prev, W, b = layer(rng, 64, 64, 64, f)
    A_prev, b = np.maximum(A_prev - 0.5, 0), b - 1
    Z, A = ops.linear_activation_forward(A_prev, W, b, "relu")
    ops.linear_activation_backward(A, Z, A_prev, W, "relu")
    X, W1, b1 = layer(rng, 6, 9, 7, f)  # the fused first layer (model.training's) and its tiles
    dZ = rng.standard_normal((6, 7)).astype(f)
    fresh.first_layer_step(np.empty((6, 7), f), np.empty((6, 7), f), np.empty_like(W1), np.empty_like(b1),
                           W1, b1, dZ, X, 0.1, kernels.loops.TANH)
    for kind in (kernels.loops.update.MOMENTUM, kernels.loops.update.RMSPROP, kernels.loops.update.ADAM):
        v, s = np.zeros_like(W1), np.ones_like(W1)  # the optimizers' block, a tile too
        fresh.optimizer_step(np.empty_like(W1), v, s, W1, W1, 0.1, kind, 0.9, 0.999, 1e-8, 2)
    reached |= {name for name in vars(tiles) if getattr(tiles, name).signatures}
    assert reached == set(vars(tiles))
    promoted = []
    for name in cpu.KERNEL_NAMES + tuple(vars(tiles)):
        if name == "cross_entropy":
            continue
        for sig, ir in getattr(fresh if hasattr(fresh, name) else tiles, name).inspect_llvm().items():
            if "float32" not in str(sig):
                continue
            function = ""
            for line in ir.splitlines():
                if line.startswith("define"):
                    function = line
                # The CPython wrapper boxes a float32 result into a Python
                # float (a double): that conversion is not in the loop.
                if "fpext float" in line and "@_ZN7cpython" not in function:
                    promoted.append((name, line.strip()))
    assert promoted == [], f"float32 kernels promoted to float64: {promoted}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_long_reductions_give_the_same_bits_every_call_and_on_both_compiled_backends(dtype):
    # the parallel dot and cost were prange reductions: their partial sums followed the threads'
    # shares, which differ from call to call (two values in 200 calls of one float32 dot)
    rng = np.random.default_rng(0)
    v, w = rng.standard_normal((2, 100_003)).astype(dtype)
    AL = rng.uniform(0, 1, (1, 40_000)).astype(dtype)
    Y = (rng.random((1, 40_000)) < 0.5).astype(dtype)
    parallel, serial = kernels.get_backend("parallel"), kernels.get_backend("numba")
    dots = {parallel.dot(v, w).tobytes() for _ in range(50)}
    costs = {parallel.cross_entropy(AL, Y) for _ in range(50)}
    assert dots == {serial.dot(v, w).tobytes()} and costs == {serial.cross_entropy(AL, Y)}


def test_a_long_float32_dot_is_summed_in_blocks():
    # one float32 running sum stops growing at 2**24 (s + 1 == s): the blocks' partial sums do not
    ones = np.ones(2**24 + 2**22, np.float32)
    for name in ("python", "numba", "parallel"):
        assert kernels.get_backend(name).dot(ones, ones) == 2**24 + 2**22, name
