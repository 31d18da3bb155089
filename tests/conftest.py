"""Shared fixtures and tolerances for the kernel tests.

Tolerances are forward-error bounds, not guesses: a sum of k products computed
in floating point satisfies |fl(sum) - sum| <= gamma_k * sum |x_i y_i| with
gamma_k ~ k u (u = eps / 2, Higham, "Accuracy and Stability of Numerical
Algorithms", 3.1). Two implementations that each meet that bound (BLAS, our
loops in another summation order, with or without FMA) differ by at most twice
it, so ``matmul_bound`` allows 2 (k + 2) eps * (|W| |A| + |b|), elementwise.
Elementwise functions (libm vs NumPy's SIMD exp/tanh) are each within a few
ulp, so they get a few eps relative to the magnitudes involved.
"""

import os

import numpy as np
import pytest
from hypothesis import settings

import kernels

# Compilation happens inside the first example: no per-example deadline.
settings.register_profile("jitloops", deadline=None, max_examples=25, derandomize=True)
settings.register_profile("thorough", deadline=None, max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "jitloops"))

CPU_BACKENDS = ("python", "numba", "parallel")  # held to the "numpy" reference
ALL_CPU = ("python", "numpy", "numba", "parallel")
DTYPES = (np.float64, np.float32)


@pytest.fixture(scope="session")
def ref():
    return kernels.get_backend("numpy")


def eps(dtype):
    return float(np.finfo(dtype).eps)


def act_tol(dtype):
    """Elementwise activations: libm (or libdevice) vs NumPy each within a few ulp -> 8 eps relative."""
    return 8 * eps(dtype)


def act_bound(expected, dtype):
    """Bound of an activation's error: act_tol relative, plus the smallest normal number near 0."""
    return act_tol(dtype) * np.abs(expected) + np.finfo(dtype).tiny


def layer_arrays(n, k, m, dtype, seed):
    """Random A_prev (k, m), W (n, k), b (n, 1) and a gradient dZ (n, m) of ``dtype``."""
    rng = np.random.default_rng(seed)
    A_prev = rng.standard_normal((k, m)).astype(dtype)
    W = rng.standard_normal((n, k)).astype(dtype)
    b = rng.standard_normal((n, 1)).astype(dtype)
    dZ = rng.standard_normal((n, m)).astype(dtype)
    return A_prev, W, b, dZ


def assert_gradients_like_numpy(K, dZ, A_prev, W, close):
    """K.weight_gradients and K.input_gradient (raw kernels, outputs filled
    with NaN first) against kernels.vectorized's, each compared by
    ``close(got, want, reduction_length, dtype)``."""
    from kernels import vectorized
    n, m = dZ.shape
    k, dtype = A_prev.shape[0], dZ.dtype.type
    dW, db = np.full((n, k), np.nan, dtype), np.full((n, 1), np.nan, dtype)
    K.weight_gradients(dW, db, dZ, A_prev)
    dWr, dbr = np.empty_like(dW), np.empty_like(db)
    vectorized.weight_gradients(dWr, dbr, dZ, A_prev)
    close(dW, dWr, m, dtype)
    close(db, dbr, m, dtype)
    dA = np.full((k, m), np.nan, dtype)
    K.input_gradient(dA, dZ, W)
    dAr = np.empty_like(dA)
    vectorized.input_gradient(dAr, dZ, W)
    close(dA, dAr, n, dtype)


def in_forked_child(work):
    """What ``work()`` returns when run in a child made with os.fork(),
    pickled back through a pipe; the child never returns into pytest, and
    the test fails if it ends with an error."""
    import pickle
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read)
            with os.fdopen(write, "wb") as f:
                pickle.dump(work(), f)
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        received = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"child ended with status {status}"
    return pickle.loads(received)


def assert_trains_like_numpy(backend, dtype, make, fit):
    """``make(backend)`` -> a network, ``fit(net)`` trains it: on numpy and on
    ``backend`` the parameters and recorded costs agree within 1e-7 (float64:
    a few Adam steps amplify summation-order differences where s is tiny) or
    5e-4 (float32) relative."""
    nets = {name: fit(make(name)) for name in ("numpy", backend)}
    rtol = 1e-7 if np.dtype(dtype) == np.float64 else 5e-4
    for k, v in nets["numpy"].parameters.items():
        np.testing.assert_allclose(nets[backend].parameters[k], v, rtol=rtol, atol=rtol * 1e-2, err_msg=k)
        assert nets[backend].parameters[k].dtype == np.dtype(dtype)
    np.testing.assert_allclose(nets[backend].costs_, nets["numpy"].costs_, rtol=rtol)


def matmul_bound(absW, absA, absb, k, dtype):
    """Allowed |difference| between two computations of W @ A + b (elementwise)."""
    return 2.0 * (k + 2) * eps(dtype) * (absW @ absA + absb) + np.finfo(dtype).tiny


def assert_within(actual, expected, bound, what):
    """Every |actual - expected| <= bound; on failure report the first bad index
    with both values (llm.c's validation habit)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    bound = np.broadcast_to(np.asarray(bound, dtype=np.float64), expected.shape)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    diff = np.abs(actual - expected)
    bad = ~(diff <= bound)  # NaN counts as bad
    same_nan = np.isnan(actual) & np.isnan(expected)
    bad &= ~same_nan
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(
            f"{what}: {int(bad.sum())} cell(s) out of tolerance; first at {idx}: "
            f"got {actual[idx]!r}, expected {expected[idx]!r}, |diff| {diff[idx]:.3e} > bound {bound[idx]:.3e}"
        )
