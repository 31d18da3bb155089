"""Toy two-class datasets, generated with NumPy (nothing is downloaded).

Every function returns ``X`` of shape (n_x, m) (examples are columns, the
course's convention) as float64 and ``Y`` of shape (1, m) of 0/1 labels as
int64, and takes a ``seed`` so that the same call gives the same data
(``seed=None``: fresh data from the operating system's entropy). Each draws
from its own ``np.random.RandomState(seed)``; NumPy's global random state is
never read or changed.

``moons`` and ``circles`` are, bit for bit, what the course's notebooks got
from scikit-learn's ``make_moons`` / ``make_circles`` after
``np.random.seed(seed)`` (scikit-learn is not needed here):

    X, Y = datasets.moons()                    # optimization notebook: seed 3, m = 300, noise 0.2
    X, Y = datasets.circles()                  # initialization notebook, training set: seed 1
    X, Y = datasets.circles(m=100, seed=2)     # ... and its test set
"""

import math
import numbers

import numpy as np

from .checks import check_seed

__all__ = ["planar", "circles", "moons"]


def _check_m(m, minimum=2):
    if isinstance(m, bool) or not isinstance(m, numbers.Integral) or m < minimum:
        raise ValueError(f"m (the number of examples) must be an int >= {minimum}, got {m!r}; "
                         f"pass a whole number such as m=300")
    return int(m)


def _check_seed(seed):
    return check_seed(seed, "draws fresh data every call")


def _check_real(value, name, fix):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}; {fix}")
    return float(value)


def _check_noise(noise):
    noise = _check_real(noise, "noise", "pass e.g. noise=0.2 (0 for no noise)")
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise (the Gaussian noise's standard deviation) must be a finite number >= 0, "
                         f"got {noise!r}; pass e.g. noise=0.2 (0 for no noise)")
    return noise


def planar(m=400, seed=1):
    """The course's two-class "flower": points on the petals of the rose curve
    r = 4 sin(4 theta), with noise on theta and r; alternate petals belong to
    alternate classes. With the defaults it is exactly the course's dataset
    (``load_planar_dataset``: the same legacy RandomState draws, in the same order).

    Returns X (2, m) float64 and Y (1, m) int64; the first half of the
    examples are class 0, the second half class 1 (m odd: class 1 gets one more).
    """
    m = _check_m(m)
    rng = np.random.RandomState(_check_seed(seed))
    half = m // 2
    X = np.zeros((m, 2))
    Y = np.zeros((m, 1), dtype=np.int64)
    petals = 4.0  # the "a" of r = a sin(4 theta): the flower's size
    for j in range(2):
        rows = slice(half * j, half * (j + 1)) if j == 0 else slice(half, m)
        n = rows.stop - rows.start
        theta = np.linspace(j * 3.12, (j + 1) * 3.12, n) + rng.randn(n) * 0.2
        r = petals * np.sin(4 * theta) + rng.randn(n) * 0.2
        X[rows] = np.c_[r * np.sin(theta), r * np.cos(theta)]
        Y[rows] = j
    return X.T.copy(), Y.T.copy()


def _shuffled_with_noise(x0, x1, n_out, rng, noise):
    """scikit-learn's ending of make_moons / make_circles, in the course's layout.

    x0, x1 (m,): the two coordinates, the n_out class-0 points first, then the
    class-1 points. Shuffles the examples (``sklearn.utils.shuffle``, i.e.
    ``resample(replace=False)``: a shuffled ``arange``), then adds
    ``rng.normal(scale=noise, size=(m, 2))``, all in scikit-learn's (m, 2)
    layout (the draws fill it row by row), and transposes at the end.
    Returns X (2, m) float64, Y (1, m) int64.
    """
    m = x0.shape[0]
    X = np.stack([x0, x1], axis=1)                          # (m, 2), scikit-learn's layout
    y = np.zeros(m, dtype=np.int64)
    y[n_out:] = 1
    indices = np.arange(m)
    rng.shuffle(indices)
    X = X[indices]
    X += rng.normal(scale=noise, size=X.shape)
    return X.T.copy(), y[indices].reshape(1, m)


def circles(m=300, noise=0.05, seed=1, factor=0.8):
    """Two concentric circles: class 0 on the outer one (radius 1), class 1 on
    the inner one (radius ``factor``), each point moved by Gaussian noise of
    std ``noise``. The defaults are the training set of the course's
    initialization notebook; ``circles(m=100, seed=2)`` is its test set.

    Exactly (bit for bit) ``np.random.seed(seed); X, y = sklearn.datasets.
    make_circles(n_samples=m, noise=noise, factor=factor)`` transposed to
    X = X.T, Y = y.reshape(1, m), for scikit-learn >= 0.20, without touching
    NumPy's global state. The points sit at equal angles 2 pi k / n, endpoint
    excluded: n_out = m // 2 on the outer circle, n_in = m - n_out on the
    inner one (m odd: class 1 gets one more). scikit-learn <= 0.19 gives the
    same for even m; for odd m it returned m - 1 points.

    m : int >= 2, the number of examples
    noise : float >= 0, the noise's standard deviation (0: points on the circles)
    seed : int in [0, 2**32 - 1], or None for fresh data every call
    factor : float in (0, 1), inner radius / outer radius

    Returns X (2, m) float64 and Y (1, m) int64 (classes in shuffled order).
    """
    m = _check_m(m)
    noise = _check_noise(noise)
    rng = np.random.RandomState(_check_seed(seed))
    factor = _check_real(factor, "factor", "pass e.g. factor=0.8")
    if not 0 < factor < 1:
        raise ValueError(f"factor (inner radius / outer radius) must be in (0, 1), got {factor!r}; "
                         f"pass e.g. factor=0.8")
    n_out = m // 2
    n_in = m - n_out
    angle_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    angle_in = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    x0 = np.append(np.cos(angle_out), np.cos(angle_in) * factor)
    x1 = np.append(np.sin(angle_out), np.sin(angle_in) * factor)
    return _shuffled_with_noise(x0, x1, n_out, rng, noise)


def moons(m=300, noise=0.2, seed=3):
    """Two interleaving half circles ("moons"): class 0 the upper one (centre
    (0, 0)), class 1 the lower one (centre (1, 0.5)), each point moved by
    Gaussian noise of std ``noise``. The defaults are the course's
    optimization notebook's training set.

    Exactly (bit for bit) ``np.random.seed(seed); X, y = sklearn.datasets.
    make_moons(n_samples=m, noise=noise)`` transposed to X = X.T,
    Y = y.reshape(1, m), for scikit-learn >= 0.19, without touching NumPy's
    global state. The points sit at equal angles pi k / (n - 1), both ends
    included: n_out = m // 2 on the upper moon, n_in = m - n_out on the lower
    one (m odd: class 1 gets one more). scikit-learn <= 0.18 gives the same
    for even m; for odd m it labelled the first n_in points 0.

    m : int >= 2, the number of examples
    noise : float >= 0, the noise's standard deviation (0: points on the moons)
    seed : int in [0, 2**32 - 1], or None for fresh data every call

    Returns X (2, m) float64 and Y (1, m) int64 (classes in shuffled order).
    """
    m = _check_m(m)
    noise = _check_noise(noise)
    rng = np.random.RandomState(_check_seed(seed))
    n_out = m // 2
    n_in = m - n_out
    angle_out = np.linspace(0, np.pi, n_out)
    angle_in = np.linspace(0, np.pi, n_in)
    x0 = np.append(np.cos(angle_out), 1 - np.cos(angle_in))
    x1 = np.append(np.sin(angle_out), 1 - np.sin(angle_in) - 0.5)  # scikit-learn's rounding: not 0.5 - sin
    return _shuffled_with_noise(x0, x1, n_out, rng, noise)
