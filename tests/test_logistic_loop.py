"""LogisticRegression's per-example loop (model/logistic_loop.py) on inputs
wider than the planar data's two features: X transposed once per fit
(examples_as_rows), four examples at a time and the rest one by one, in
blocks on "parallel"; and X's test for NaN and infinity, which the compiled
loop's first step makes (LogisticRegression._fit_tests_X).
"""

import numpy as np
import pytest

from model import DivergenceError, LogisticRegression

LOOP_BACKENDS = ("python", "numba", "parallel")
COMPILED = ("numba", "parallel")
# float64: the same sums in another order (four examples' updates of dw
# added together, the parallel blocks' partial sums) differ by rounding,
# ~1e-16 relative a step; float32: ~1e-7 relative a step, over 30 steps
ATOL = {"float64": 1e-10, "float32": 2e-5}


def wide_data(n_x, m, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_x, m)).astype(dtype)
    Y = (rng.random((1, m)) < 0.5).astype(dtype)
    return X, Y


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (8, 8), (37, 203), (300, 64), (5, 1000)])
def test_examples_as_rows_is_the_transpose(shape, backend, dtype):
    """Exact: a copy, cell by cell, in 8 x 8 blocks and the edges the blocks
    leave (m and n_x not multiples of 8), in parts of columns on threads."""
    X = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    XT = np.full(shape[::-1], np.nan, dtype=dtype)
    LogisticRegression(shape[0], backend=backend, dtype=dtype).program.examples_as_rows(XT, X)
    np.testing.assert_array_equal(XT, X.T)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", LOOP_BACKENDS)
@pytest.mark.parametrize("n_x, m", [(37, 203), (130, 9), (5, 3)])
def test_wide_logistic_regression_follows_numpy(n_x, m, backend, dtype):
    """m = 203: 50 blocks of four examples and three left over (in one block;
    on "parallel" each of the 8 blocks has its own remainder); m = 3: no
    block of four at all."""
    X, Y = wide_data(n_x, m, dtype)
    iterations = 30 if backend != "python" else 5
    ref = LogisticRegression(n_x, backend="numpy", dtype=dtype).fit(X, Y, iterations, 0.05, cost_every=1)
    net = LogisticRegression(n_x, backend=backend, dtype=dtype).fit(X, Y, iterations, 0.05, cost_every=1)
    atol = ATOL[dtype]
    np.testing.assert_allclose(net.costs_, ref.costs_[:iterations], rtol=0, atol=atol)
    assert ref.costs_[-1] < ref.costs_[0]
    np.testing.assert_allclose(net.parameters["w"], ref.parameters["w"], rtol=0, atol=atol)
    assert net.parameters["b"] == pytest.approx(ref.parameters["b"], abs=atol)
    g, g_ref = net.gradients(X, Y), ref.gradients(X, Y)
    np.testing.assert_allclose(g["dw"], g_ref["dw"], rtol=0, atol=atol)
    assert g["db"] == pytest.approx(g_ref["db"], abs=atol)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [(0, 0), (36, 202), (17, 101)])
@pytest.mark.parametrize("backend", LOOP_BACKENDS)
def test_X_not_finite_is_check_Xs_error_and_changes_nothing(backend, where, bad, monkeypatch):
    """The compiled loop tests X in its first step, not before the fit (the
    loop runs, once); the python backend's fit tests X first (the loop never
    runs). Either way the error is check_X's, and the parameters, the
    history and n_iter_ are those before the fit (one fit trained first, so
    they are not zeros)."""
    X, Y = wide_data(37, 203, "float64")
    net = LogisticRegression(37, backend=backend).fit(X, Y, 3, 0.05)
    before = net.parameters
    costs, n_iter = net.costs_.copy(), net.n_iter_
    Xb = X.copy()
    Xb[where] = bad
    chunks = []
    loop = net.program.logistic_fit_chunk
    monkeypatch.setattr(net.program, "logistic_fit_chunk", lambda *args: chunks.append(loop(*args)) or chunks[-1])
    with pytest.raises(ValueError, match="X contains NaN or infinity; remove or impute those values first"):
        net.fit(Xb, Y, 5, 0.05)
    assert len(chunks) == (backend != "python") and all(done == 0 for done, _ in chunks)
    monkeypatch.undo()
    np.testing.assert_array_equal(net.parameters["w"], before["w"])
    assert net.parameters["b"] == before["b"]
    np.testing.assert_array_equal(net.costs_, costs)
    assert net.n_iter_ == n_iter
    net.fit(X, Y, 2, 0.05)  # and it trains on
    assert net.n_iter_ == n_iter + 2


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("backend", COMPILED)
def test_X_not_finite_is_found_from_zero_weights_too(backend, bad):
    """w = 0 at the start: 0 * inf is NaN, so z (and the cost) is NaN at once."""
    X, Y = wide_data(37, 203, "float64")
    X[5, 7] = bad
    net = LogisticRegression(37, backend=backend)
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        net.fit(X, Y, 5, 0.05)
    assert net.n_iter_ == 0 and not net.parameters["w"].any() and net.costs_.size == 0


@pytest.mark.parametrize("backend", COMPILED)
def test_X_too_large_for_float32_is_explained(backend):
    X, Y = wide_data(37, 203, "float64")
    X[3, 5] = 1e300  # finite in float64, infinity in float32
    net = LogisticRegression(37, backend=backend, dtype="float32")
    with pytest.raises(ValueError, match="too large for float32"):
        net.fit(X, Y, 5, 0.05)
    assert net.n_iter_ == 0 and not net.parameters["w"].any()


@pytest.mark.parametrize("backend", COMPILED)
def test_a_finite_X_that_diverges_is_a_divergence(backend):
    """A first step that diverges on a finite X is the learning rate's fault:
    DivergenceError, not X's error."""
    X, Y = wide_data(37, 203, "float64")
    net = LogisticRegression(37, backend=backend).set_parameters({"w": np.full((37, 1), 1e300), "b": 0.0})
    with pytest.raises(DivergenceError, match="iteration 0"):
        net.fit(X * 1e10, Y, 10, 1e300)
    assert net.n_iter_ == 0 and (net.parameters["w"] == 1e300).all()
