"""The fused first layer (kernels/loops/first_layer.py): the step of a long,
thin first layer and the next forward pass's first layer in one pass over X.

- The kernel against the float64 NumPy formula on every loop variant (the
  loop code interpreted, "numba", "parallel"), float32 and float64, with
  rows of X and units left over by the 4 x 4 blocks, one part and several.
- Which networks fuse (plans.first_layer_fused, the FIRST_LAYER bit).
- fit_chunk's driver, interpreted with the kernel spied on: it fuses every
  step but a chunk's last, trains like the unfused loop, and a non-finite
  fused step keeps the last finite parameters.
- The compiled programs train a fusing network like the numpy backend.

Tolerances: forward-error bounds (tests/conftest.py). dW's cells are sums of
m products, so W_next = W - lr dW is within lr * 2 (m + 2) eps (|dZ| |X|^T) / m
plus a rounding of the step; Z sums n_x products of W_next and X: conftest's
matmul_bound, plus what W_next's own error carries (bound_W @ |X|); A = g(Z)
with |g'| <= 1 adds the activation's act_bound. A wrong index or a missed row
moves a cell by the size of a whole product, far outside these.
"""

import numpy as np
import pytest
from conftest import act_bound, assert_within, eps, layer_arrays, matmul_bound

from kernels import cpu, loops
from kernels.loops import first_layer, plans
from model import DivergenceError, NeuralNetwork
from model import training

LR = 0.05
SHAPES = [  # (n, n_x, m): units, inputs, examples
    (1, 1, 1), (3, 5, 7), (4, 8, 3), (7, 37, 29), (20, 61, 209),
    (5, 2050, 31), (7, 2050, 150),  # past PARALLEL_WORK: the parallel variant runs one part a thread
    (1, 38, 29), (2, 61, 9), (3, 2051, 40),  # units a block of 4 leaves: four rows of X at a time, one unit
    (1, 2050, 1100),  # one unit, past PARALLEL_WORK
]
ACTS = {"relu": (loops.RELU, lambda z: np.maximum(z, 0.0)), "tanh": (loops.TANH, np.tanh),
        "sigmoid": (loops.SIGMOID, lambda z: 1.0 / (1.0 + np.exp(-z)))}


def _reference(W, b, dZ, X, act):
    """W_next, b_next, Z, A in float64 from the same inputs, and their error bounds."""
    W, b, dZ, X = (np.asarray(a, np.float64) for a in (W, b, dZ, X))
    m = X.shape[1]
    Wn = W - LR * (dZ @ X.T / m)
    bn = b - LR * dZ.sum(axis=1, keepdims=True) / m
    Z = Wn @ X + bn
    return Wn, bn, Z, ACTS[act][1](Z)


def _bounds(W, b, dZ, X, Wn, bn, dtype):
    m, n_x = X.shape[1], X.shape[0]
    aW, adZ, aX = np.abs(W).astype(np.float64), np.abs(dZ).astype(np.float64), np.abs(X).astype(np.float64)
    bound_W = LR * 2.0 * (m + 2) * eps(dtype) * (adZ @ aX.T) / m + 2 * eps(dtype) * (aW + np.abs(Wn))
    bound_b = LR * 2.0 * (m + 2) * eps(dtype) * adZ.sum(axis=1, keepdims=True) / m + 2 * eps(dtype) * (
        np.abs(b) + np.abs(bn))
    bound_Z = matmul_bound(np.abs(Wn), aX, np.abs(bn), n_x, dtype) + bound_W @ aX + bound_b
    return bound_W, bound_b, bound_Z


def _run(kernel, W, b, dZ, X, act):
    n, m = dZ.shape
    dt = W.dtype
    Z, A = np.full((n, m), np.nan, dt), np.full((n, m), np.nan, dt)
    Wn, bn = np.full_like(W, np.nan), np.full_like(b, np.nan)
    kernel(Z, A, Wn, bn, W, b, dZ, X, LR, ACTS[act][0])
    return Wn, bn, Z, A


def _check(got, W, b, dZ, X, act, dtype):
    Wn, bn, Z, A = got
    for a in got:
        assert a.dtype == dtype  # a float32 step stays float32
    rWn, rbn, rZ, rA = _reference(W, b, dZ, X, act)
    bW, bb, bZ = _bounds(W, b, dZ, X, rWn, rbn, dtype)
    assert_within(Wn, rWn, bW, "W_next")
    assert_within(bn, rbn, bb, "b_next")
    assert_within(Z, rZ, bZ, "Z")
    assert_within(A, rA, bZ + act_bound(rA, dtype), "A")


# the interpreted loops (the same source) on the shapes they run in well under a second
VARIANT_SHAPES = [(v, s) for s in SHAPES for v in ("python", "numba", "parallel")
                  if v != "python" or s[0] * s[1] * s[2] <= 50_000]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("variant,shape", VARIANT_SHAPES, ids=str)
def test_first_layer_step_matches_the_formula(variant, shape, dtype):
    n, n_x, m = shape
    kernel = {"python": loops.first_layer_step, "numba": cpu.numba_kernels.first_layer_step,
              "parallel": cpu.parallel_kernels.first_layer_step}[variant]
    X, W, b, dZ = layer_arrays(n, n_x, m, dtype, seed=n * 100 + n_x + m)
    for act in ACTS:
        _check(_run(kernel, W, b, dZ, X, act), W, b, dZ, X, act, dtype)


@pytest.mark.parametrize("parts", [2, 3, 5])
def test_parts_of_the_rows_add_up(parts, monkeypatch):
    """The loop code with a pool of ``parts`` threads (interpreted: the
    compiled constant cannot change in a process): each part its rows of X
    in whole blocks of 4 but the last, its own partial sum, added at the end."""
    monkeypatch.setattr(first_layer, "POOL_THREADS", parts)
    monkeypatch.setattr(first_layer, "PARALLEL_WORK", 0)
    for n, n_x, m in [(5, 23, 6), (4, 13, 3), (2, 3, 4)]:
        X, W, b, dZ = layer_arrays(n, n_x, m, np.float64, seed=n_x)
        _check(_run(loops.first_layer_step, W, b, dZ, X, "tanh"), W, b, dZ, X, "tanh", np.float64)


def test_which_first_layers_fuse():
    """A long reduction (MICRO_LONG_K inputs on) and fewer than
    FUSED_FIRST_UNITS units (32: on every target, not the packed products'
    MICRO_MIN_ROWS): a hidden first layer, or the only layer of a one-layer
    network (logistic regression, a softmax over the inputs)."""
    long_k, rows = loops.MICRO_LONG_K, loops.FUSED_FIRST_UNITS
    assert rows == 32
    assert plans.first_layer_fused(20, 12288)
    assert plans.first_layer_fused(rows - 1, long_k)
    assert not plans.first_layer_fused(rows, long_k)
    assert not plans.first_layer_fused(20, long_k - 1)
    assert not plans.first_layer_fused(128, 784)  # MNIST's first layer: the packed products
    deep = plans.plans_needed([12288, 20, 7, 5, 1], [209], 8)
    assert deep & plans.FIRST_LAYER and plans.plan_tier(deep) == plans.ALL_PLANS
    assert plans.plans_needed([12288, 1], [209], 8) & plans.FIRST_LAYER  # the course's logistic regression
    assert plans.plans_needed([long_k, 10], [100], 4) & plans.FIRST_LAYER
    assert not plans.plans_needed([long_k - 1, 1], [100], 8) & plans.FIRST_LAYER
    assert not plans.plans_needed([784, 128, 64, 1], [1024], 8) & plans.FIRST_LAYER
    assert plans.plan_globals(deep)["FUSED_FIRST"]
    assert not plans.plan_globals(plans.SMALL_PLANS)["FUSED_FIRST"]
    assert "fused first layer" in plans.describe_plans(deep)


def _interpreted_fit_chunk(net, calls, fail_at=None):
    """fit_chunk interpreted over the numpy backend's kernels, fusing every
    shape, with first_layer_step spied on (and made to write NaN into
    W_next at call ``fail_at``)."""
    from kernels import cpu

    def step(Z, A, W_next, *rest):
        calls.append(1)
        loops.first_layer_step(Z, A, W_next, *rest)
        if fail_at is not None and len(calls) == fail_at + 1:
            W_next[0, 0] = np.nan

    ns = dict(net.program.fit_chunk.__globals__, FUSED_FIRST=True, first_layer_step=step,
              first_layer_fused=lambda n, n_x: True)
    return cpu.rebind(training.fit_chunk, ns)


def _chunk_args(net, X):
    buf, W_next, b_next, zeros, codes, _ = net._fit_scratch(X)
    W, b = list(net._W), list(net._b)
    lists = [W, b, W_next, b_next, buf["Z"], buf["A"], buf["dZ"], buf["dA"], buf["dW"], buf["db"]]
    return W, b, lists, zeros, codes


def _data(n_x=6, m=9, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n_x, m)), (rng.random((1, m)) > 0.5).astype(np.float64)


def test_fit_chunk_fuses_every_step_but_the_last():
    X, Y = _data()
    fused = NeuralNetwork([6, 5, 3, 1], activations="tanh", backend="numpy", seed=1)
    plain = NeuralNetwork([6, 5, 3, 1], activations="tanh", backend="numpy", seed=1)
    calls = []
    fit_chunk = _interpreted_fit_chunk(fused, calls)
    W, b, lists, zeros, codes = _chunk_args(fused, X)
    costs = np.full(7, np.nan)
    done, status = fit_chunk(costs, lists, X, zeros, Y, codes, 0, 7, 1, 0.5, 1e-16, False)
    assert (done, status, len(calls)) == (7, training.FINISHED, 6)
    plain.fit(X, Y, 7, 0.5, cost_every=1)
    np.testing.assert_allclose(costs, plain.costs_, rtol=1e-13)  # each forward pass's cost, fused or not
    for l in range(3):
        np.testing.assert_allclose(W[l], plain.parameters[f"W{l + 1}"], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(b[l], plain.parameters[f"b{l + 1}"], rtol=1e-12, atol=1e-14)
    calls.clear()  # a chunk of one step has no next forward pass to fuse
    assert fit_chunk(costs, lists, X, zeros, Y, codes, 7, 1, 1000, 0.5, 1e-16, False) == (1, training.FINISHED)
    assert calls == []


@pytest.mark.parametrize("fail_at", [0, 1, 2])
def test_a_non_finite_fused_step_keeps_the_last_finite_parameters(fail_at):
    X, Y = _data()
    net = NeuralNetwork([6, 4, 1], activations="relu", backend="numpy", seed=2)
    good = NeuralNetwork([6, 4, 1], activations="relu", backend="numpy", seed=2).fit(X, Y, fail_at, 0.5)
    calls = []
    fit_chunk = _interpreted_fit_chunk(net, calls, fail_at)
    W, b, lists, zeros, codes = _chunk_args(net, X)
    done, status = fit_chunk(np.full(1, np.nan), lists, X, zeros, Y, codes, 0, 6, 100, 0.5, 1e-16, False)
    assert (done, status) == (fail_at, training.DIVERGED)
    for l in range(2):
        np.testing.assert_allclose(W[l], good.parameters[f"W{l + 1}"], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(b[l], good.parameters[f"b{l + 1}"], rtol=1e-12, atol=1e-14)


# test_model_backends' tolerances: rounding-level differences carried by gradient descent
ATOL = {np.float64: 1e-10, np.float32: 1e-5}


@pytest.mark.parametrize("dims", [[2050, 6, 3, 1], [2050, 1], [2050, 3]])
@pytest.mark.parametrize("backend", ["numba", "parallel"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_fusing_network_trains_like_numpy(backend, dtype, dims):
    """A hidden first layer, and the only layer of a one-layer network (a
    sigmoid unit; a softmax of 3 classes, normalized after the fused pass):
    its program has FIRST_LAYER; fits of 1, 3 and 4 iterations (chunks with
    no fused step, and with some) end at numpy's parameters, with numpy's
    costs."""
    rng = np.random.default_rng(5)
    X = rng.random((2050, 40)).astype(dtype)
    Y = (rng.random((1, 40)) * dims[-1] if dims[-1] > 1 else rng.random((1, 40)) > 0.5).astype(int).astype(dtype)
    hidden = "tanh" if len(dims) > 2 else ()
    output = "softmax" if dims[-1] > 1 else "sigmoid"
    net = NeuralNetwork(dims, activations=hidden, output=output, backend=backend, seed=4, dtype=dtype)
    ref = NeuralNetwork(dims, activations=hidden, output=output, backend="numpy", seed=4, dtype=dtype)
    assert net._program_for(40).plans & plans.FIRST_LAYER
    for count in (1, 3, 4):
        net.fit(X, Y, count, 0.05, cost_every=1)
        ref.fit(X, Y, count, 0.05, cost_every=1)
        np.testing.assert_allclose(net.costs_, ref.costs_, rtol=0, atol=ATOL[dtype])
    for key, want in ref.parameters.items():
        np.testing.assert_allclose(net.parameters[key], want, rtol=0, atol=ATOL[dtype], err_msg=key)


# relu's units live through the first step and overflow in the second, a fused one
LR_DIVERGING = 1e200


@pytest.mark.parametrize("backend", ["numba", "parallel"])
def test_a_fusing_network_stops_where_numpy_diverges(backend):
    X = np.random.default_rng(6).random((2050, 30)) * 1e3
    Y = (np.arange(30) % 2).reshape(1, 30).astype(np.float64)
    dims = [2050, 5, 1]
    got = NeuralNetwork(dims, activations="relu", backend=backend, seed=1)
    want = NeuralNetwork(dims, activations="relu", backend="numpy", seed=1)
    with pytest.raises(DivergenceError):
        got.fit(X, Y, 20, LR_DIVERGING)
    with pytest.raises(DivergenceError):
        want.fit(X, Y, 20, LR_DIVERGING)
    assert got.n_iter_ == want.n_iter_ >= 1
    for key, value in want.parameters.items():
        assert np.isfinite(got.parameters[key]).all()
        np.testing.assert_allclose(got.parameters[key], value, rtol=1e-9, err_msg=key)
