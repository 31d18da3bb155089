"""model.datasets: the course's toy datasets.

moons and circles must be, bit for bit, what the course's notebooks got from
scikit-learn after ``np.random.seed(seed)``; they are compared with
scikit-learn where it is installed, and pinned to a few of its values where
it is not. Shapes (the course's): X (2, m), examples as columns; Y (1, m) of 0/1.
"""

import re

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from model import datasets

MAKERS = {"moons": datasets.moons, "circles": datasets.circles}


@pytest.fixture(params=sorted(MAKERS))
def make(request):
    return MAKERS[request.param]


# ------------------------------------------------------------ shape and labels


@pytest.mark.parametrize("m", [2, 3, 10, 101, 300])
def test_shapes_dtypes_and_balanced_labels(make, m):
    X, Y = make(m=m, seed=0)
    assert X.shape == (2, m) and X.dtype == np.float64 and X.flags.c_contiguous
    assert Y.shape == (1, m) and Y.dtype == np.int64
    assert np.isfinite(X).all()
    assert set(np.unique(Y)) == {0, 1}
    # class 0 gets m // 2 examples, class 1 the rest (one more when m is odd)
    assert (Y == 0).sum() == m // 2 and (Y == 1).sum() == m - m // 2


def test_defaults_are_the_course_sets():
    X, Y = datasets.moons()
    assert X.shape == (2, 300) and Y.sum() == 150
    X, Y = datasets.circles()
    assert X.shape == (2, 300) and Y.sum() == 150
    X, Y = datasets.circles(m=100, seed=2)
    assert X.shape == (2, 100) and Y.sum() == 50


def test_without_noise_the_points_lie_on_the_curves():
    X, Y = datasets.circles(m=40, noise=0, factor=0.3)
    r = np.hypot(X[0], X[1])
    assert_allclose(r[Y[0] == 0], 1.0, rtol=1e-15)
    assert_allclose(r[Y[0] == 1], 0.3, rtol=1e-15)
    X, Y = datasets.moons(m=40, noise=0)
    upper, lower = X[:, Y[0] == 0], X[:, Y[0] == 1]
    assert_allclose(np.hypot(upper[0], upper[1]), 1.0, rtol=1e-15)
    assert (upper[1] >= 0).all()
    assert_allclose(np.hypot(lower[0] - 1, lower[1] - 0.5), 1.0, rtol=1e-15)
    assert (lower[1] <= 0.5).all()


# ------------------------------------------------------------------ randomness


def test_same_seed_same_data_other_seed_other_data(make):
    X, Y = make(m=50, seed=7)
    X2, Y2 = make(m=50, seed=7)
    assert_array_equal(X, X2)
    assert_array_equal(Y, Y2)
    X3, Y3 = make(m=50, seed=8)
    assert not np.array_equal(X, X3)
    assert not np.array_equal(Y, Y3)  # the shuffle differs too


def test_numpy_integer_seed_and_m_are_accepted(make):
    X, Y = make(m=np.int64(20), seed=np.uint32(4))
    assert_array_equal(X, make(m=20, seed=4)[0])


def test_seed_none_gives_fresh_data(make):
    assert not np.array_equal(make(m=20, seed=None)[0], make(m=20, seed=None)[0])


@pytest.mark.parametrize("call", [
    lambda: datasets.moons(), lambda: datasets.circles(), lambda: datasets.planar(),
    lambda: datasets.moons(seed=None), lambda: datasets.circles(seed=None),
])
def test_numpy_global_random_state_is_untouched(call):
    np.random.seed(12345)
    before = np.random.get_state()
    call()
    after = np.random.get_state()
    assert before[0] == after[0] and before[2:] == after[2:]
    assert_array_equal(before[1], after[1])


# ----------------------------------------------------------- the course's data

# scikit-learn 1.9.1's values (np.random.seed(seed); make_...(n_samples=m, noise=...)),
# pinned so that the course's sets are checked where scikit-learn is not installed.
# Tolerance of a few ulp: sin/cos may round differently on other platforms.
PINNED = [
    (datasets.moons, {}, [-0.21687013460912397, 1.0154493742029873], [0.547725598273234, 0.3481746137071188],
     [0, 1, 1, 1, 0, 0, 1, 1]),
    (datasets.circles, {}, [-0.07741354010048114, 0.8526022642742742],
     [-0.061145412565262895, 0.9298264080659127], [1, 0, 1, 1, 0, 0, 1, 0]),
    (datasets.circles, dict(m=100, seed=2), [-0.5242373850862546, -0.6091036148461817],
     [0.3438483715909715, -0.9192735912720769], [1, 0, 1, 0, 0, 0, 0, 0]),
]


@pytest.mark.parametrize("make, kwargs, first, last, labels", PINNED)
def test_course_sets_pinned(make, kwargs, first, last, labels):
    X, Y = make(**kwargs)
    assert_allclose(X[:, 0], first, rtol=1e-14)
    assert_allclose(X[:, -1], last, rtol=1e-14)
    assert_array_equal(Y[0, :8], labels)


# (m, noise, seed): the course's first, then odd m, no noise, large noise, other seeds
MOONS_CASES = [(300, 0.2, 3), (2, 0.2, 3), (3, 0.1, 0), (101, 0.2, 3), (300, 0.0, 1), (64, 1.5, 42),
               (1000, 0.05, 2**32 - 1)]
CIRCLES_CASES = [(300, 0.05, 1, 0.8), (100, 0.05, 2, 0.8), (2, 0.05, 1, 0.8), (3, 0.05, 1, 0.8),
                 (301, 0.1, 0, 0.5), (300, 0.0, 5, 0.3), (50, 2.0, 9, 0.99)]


@pytest.mark.parametrize("m, noise, seed", MOONS_CASES)
def test_moons_equals_scikit_learn(m, noise, seed):
    sk = pytest.importorskip("sklearn.datasets")
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        X, y = sk.make_moons(n_samples=m, noise=noise)
    finally:
        np.random.set_state(state)
    X_ours, Y_ours = datasets.moons(m=m, noise=noise, seed=seed)
    assert_array_equal(X_ours, X.T)
    assert_array_equal(Y_ours, y.reshape(1, m))


@pytest.mark.parametrize("m, noise, seed, factor", CIRCLES_CASES)
def test_circles_equals_scikit_learn(m, noise, seed, factor):
    sk = pytest.importorskip("sklearn.datasets")
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        X, y = sk.make_circles(n_samples=m, noise=noise, factor=factor)
    finally:
        np.random.set_state(state)
    X_ours, Y_ours = datasets.circles(m=m, noise=noise, seed=seed, factor=factor)
    assert_array_equal(X_ours, X.T)
    assert_array_equal(Y_ours, y.reshape(1, m))


# ------------------------------------------------------------------ bad inputs

BAD_COMMON = [
    (dict(m=1), ValueError, "m (the number of examples) must be an int >= 2, got 1; pass a whole number"),
    (dict(m=300.0), ValueError, "m (the number of examples) must be an int >= 2, got 300.0"),
    (dict(m=True), ValueError, "m (the number of examples) must be an int >= 2, got True"),
    (dict(m="300"), ValueError, "m (the number of examples) must be an int >= 2, got '300'"),
    (dict(noise=-0.1), ValueError, "noise (the Gaussian noise's standard deviation) must be a finite number >= 0, "
                                   "got -0.1; pass e.g. noise=0.2"),
    (dict(noise=float("nan")), ValueError, "must be a finite number >= 0, got nan"),
    (dict(noise=float("inf")), ValueError, "must be a finite number >= 0, got inf"),
    (dict(noise=None), TypeError, "noise must be a real number, got NoneType None; "
                                  "pass e.g. noise=0.2 (0 for no noise)"),
    (dict(noise="0.2"), TypeError, "noise must be a real number, got str '0.2'"),
    (dict(noise=True), TypeError, "noise must be a real number, got bool True"),
    (dict(seed=1.0), TypeError, "seed must be an int or None, got float 1.0; pass e.g. seed=0"),
    (dict(seed="3"), TypeError, "seed must be an int or None, got str '3'"),
    (dict(seed=False), TypeError, "seed must be an int or None, got bool False"),
    (dict(seed=-1), ValueError, "seed must be in [0, 2**32 - 1] (NumPy's RandomState seeds), got -1"),
    (dict(seed=2**32), ValueError, "seed must be in [0, 2**32 - 1] (NumPy's RandomState seeds), got 4294967296"),
]


@pytest.mark.parametrize("kwargs, error, message", BAD_COMMON)
def test_bad_inputs(make, kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        make(**kwargs)


@pytest.mark.parametrize("factor, error, message", [
    (0, ValueError, "factor (inner radius / outer radius) must be in (0, 1), got 0.0; pass e.g. factor=0.8"),
    (1.0, ValueError, "must be in (0, 1), got 1.0"),
    (1.5, ValueError, "must be in (0, 1), got 1.5"),
    (-0.5, ValueError, "must be in (0, 1), got -0.5"),
    (float("nan"), ValueError, "must be in (0, 1), got nan"),
    (None, TypeError, "factor must be a real number, got NoneType None; pass e.g. factor=0.8"),
    ("0.5", TypeError, "factor must be a real number, got str '0.5'"),
])
def test_circles_bad_factor(factor, error, message):
    with pytest.raises(error, match=re.escape(message)):
        datasets.circles(factor=factor)


def test_planar_checks_its_seed_too():
    with pytest.raises(TypeError, match=re.escape("seed must be an int or None, got float 1.5")):
        datasets.planar(seed=1.5)
