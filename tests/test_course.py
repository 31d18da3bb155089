"""kernels/loops/course.py is the reference of the loop kernels: every engine
plan, interpreted ("python") and compiled ("numba", "parallel"), agrees with
the course's loops, float64 and float32; and the course's loops agree with
the vectorized formulas (numpy).

Tolerances (tests/conftest.py): the products are sums of k terms in another
order, so within conftest.matmul_bound (2 (k + 2) eps times the sum of the
terms' magnitudes); activations within act_bound (the engine's vectorizable
tanh/sigmoid are within 2.5 ulp, the course uses the C library's), and
derivatives within a few eps absolute (1 - tanh^2 cancels where it is small); the cost,
accumulated in float64 from values each within a few ulp, within 8 eps of
the dtype times the sum of the terms' magnitudes.
"""

import numpy as np
import pytest
from conftest import DTYPES, act_bound, assert_within, eps, layer_arrays, matmul_bound

import kernels
from kernels.loops import course, plans
from kernels.options import MICRO_BYTES

# One shape (n, k, m) per plan of each product; checked below to hit it.
FORWARD_SHAPES = {
    "COURSE": (2, 3, 5),
    "SIMPLE": (4, 2, 100),
    "BLOCKED_ROWS": (8, 16, 64),
    "BLOCKED_DOT": (4, 300, 40),
    "PACKED": (40, 20, 50),
}
BACKWARD_SHAPES = [(2, 3, 5), (1, 4, 400), (8, 16, 64), (4, 300, 40), (40, 20, 50), (20, 40, 50)]
ENGINES = ("python", "numba", "parallel")


def test_the_shapes_cover_every_plan():
    for name, (n, k, m) in FORWARD_SHAPES.items():
        for dtype in DTYPES:
            plan = plans.forward_plan(n, k, m, MICRO_BYTES // np.dtype(dtype).itemsize)[0]
            assert plans.PLAN_NAMES[plan] == name, (name, n, k, m)
    wg = {plans.PLAN_NAMES[plans.weight_gradients_plan(*s)] for s in BACKWARD_SHAPES}
    ig = {plans.PLAN_NAMES[plans.input_gradient_plan(*s)] for s in BACKWARD_SHAPES}
    assert wg == {"COURSE", "SIMPLE", "BLOCKED_DOT", "PACKED"}
    assert ig == {"COURSE", "SIMPLE", "BLOCKED_ROWS", "PACKED"}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("plan", list(FORWARD_SHAPES))
def test_forward_plans_agree_with_the_course(plan, dtype, engine):
    n, k, m = FORWARD_SHAPES[plan]
    A_prev, W, b, _ = layer_arrays(n, k, m, dtype, seed=n + k + m)
    Zc, Ac = np.empty((n, m), dtype), np.empty((n, m), dtype)
    course.linear_activation_forward(Zc, Ac, A_prev, W, b, kernels.ACTIVATIONS.index("tanh"))
    ops = kernels.get_backend(engine)
    Z, A = ops.linear_activation_forward(A_prev, W, b, "tanh")
    assert Z.dtype == dtype and A.dtype == dtype
    bound = matmul_bound(np.abs(W), np.abs(A_prev), np.abs(b), k, dtype)
    assert_within(Z, Zc, bound, f"{engine} {plan} Z")
    # |tanh'| <= 1: Z's difference carries over at most as is, plus tanh's own error
    assert_within(A, Ac, bound + act_bound(Ac, dtype) * 2, f"{engine} {plan} A")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BACKWARD_SHAPES, ids=str)
def test_backward_plans_agree_with_the_course(shape, dtype, engine):
    n, k, m = shape
    A_prev, W, _, dZ = layer_arrays(n, k, m, dtype, seed=7 * n + k + m)
    dWc, dbc, dAc = np.empty((n, k), dtype), np.empty((n, 1), dtype), np.empty((k, m), dtype)
    course.weight_gradients(dWc, dbc, dZ, A_prev)
    course.input_gradient(dAc, dZ, W)
    dA_prev, dW, db = kernels.get_backend(engine).linear_backward(dZ, A_prev, W)
    assert dW.dtype == dtype and dA_prev.dtype == dtype
    assert_within(dW, dWc, matmul_bound(np.abs(dZ), np.abs(A_prev).T, 0, m, dtype) / m, f"{engine} dW")
    assert_within(db, dbc, matmul_bound(np.abs(dZ), np.ones((m, 1)), 0, m, dtype) / m, f"{engine} db")
    assert_within(dA_prev, dAc, matmul_bound(np.abs(W).T, np.abs(dZ), 0, n, dtype), f"{engine} dA_prev")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", kernels.ACTIVATIONS)
def test_the_course_agrees_with_numpy(activation, dtype):
    """The course's loops, interpreted, against the vectorized formulas."""
    n, k, m = 3, 4, 6
    A_prev, W, b, dA = layer_arrays(n, k, m, dtype, seed=3)
    act = kernels.ACTIVATIONS.index(activation)
    Z, A = np.empty((n, m), dtype), np.empty((n, m), dtype)
    course.linear_activation_forward(Z, A, A_prev, W, b, act)
    ref = kernels.get_backend("numpy")
    Zr, Ar = ref.linear_activation_forward(A_prev, W, b, activation)
    bound = matmul_bound(np.abs(W), np.abs(A_prev), np.abs(b), k, dtype)
    assert_within(Z, Zr, bound, "Z")
    assert_within(A, Ar, 4 * bound + act_bound(Ar, dtype), "A")

    dA_prev, dW, db, dZ = (np.empty((k, m), dtype), np.empty((n, k), dtype), np.empty((n, 1), dtype),
                           np.empty((n, m), dtype))
    course.linear_activation_backward(dA_prev, dW, db, dZ, dA, Zr, A_prev, W, act)
    dA_ref, dW_ref, db_ref = ref.linear_activation_backward(dA, Zr, A_prev, W, activation)
    dZ_ref = ref.activation_backward(dA, Zr, activation)
    # g'(z) = 1 - tanh(z)^2 (or s (1 - s)) loses its relative accuracy where
    # g' is small, in float32 most: an absolute error of a few eps in g'
    assert_within(dZ, dZ_ref, 4 * eps(dtype) * np.abs(dA) + act_bound(dZ_ref, dtype), "dZ")
    tol = 8 * (m + k + n) * eps(dtype) * (1 + np.abs(dZ_ref).max() * max(np.abs(A_prev).max(), np.abs(W).max()))
    assert_within(dW, dW_ref, tol, "dW")
    assert_within(db, db_ref, tol, "db")
    assert_within(dA_prev, dA_ref, tol, "dA_prev")


@pytest.mark.parametrize("engine", ("numpy",) + ENGINES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_cost_update_and_dot_agree_with_the_course(dtype, engine):
    rng = np.random.default_rng(5)
    m = 300
    AL = rng.uniform(0, 1, (1, m)).astype(dtype)
    AL[0, ::37] = 0.0  # clipped, never log(0)
    AL[0, 5::41] = 1.0
    Y = (rng.random((1, m)) > 0.5).astype(dtype)
    e = eps(dtype)
    ops = kernels.get_backend(engine)
    J, Jc = ops.cross_entropy(AL, Y), course.cross_entropy(AL, Y, e)
    terms = np.abs(np.log(np.clip(AL.astype(np.float64), e, 1 - e))).sum() + m
    assert np.isfinite(Jc) and abs(J - Jc) <= 8 * e * terms / m

    dAL, dALc = ops.cross_entropy_backward(AL, Y), np.empty_like(AL)
    course.cross_entropy_backward(dALc, AL, Y, e)
    assert_within(dAL, dALc, 4 * e * np.abs(dALc), f"{engine} dAL")

    W, G = rng.standard_normal((7, 5)).astype(dtype), rng.standard_normal((7, 5)).astype(dtype)
    Wc = W.copy()
    course.gradient_step(Wc, W, G, 0.1)
    stepped = W.copy()
    ops.gradient_step(stepped, G, 0.1)
    assert_within(stepped, Wc, 2 * e * (np.abs(W) + 0.1 * np.abs(G)), f"{engine} update")

    a, b = rng.standard_normal(1000).astype(dtype), rng.standard_normal(1000).astype(dtype)
    s, sc = ops.dot(a, b), course.dot(a, b)
    assert abs(float(s) - float(sc)) <= 2 * 1002 * e * float(np.abs(a.astype(np.float64) * b).sum())
