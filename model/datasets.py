"""Toy two-class datasets, generated with NumPy (nothing is downloaded).

Every function returns ``X`` of shape (n_x, m) (examples are columns, the
course's convention) as float64 and ``Y`` of shape (1, m) of 0/1 labels as
int64, and takes a ``seed`` so that the same call gives the same data.
"""

import numpy as np

__all__ = ["planar", "circles", "moons"]


def _check_m(m, minimum=2):
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < minimum:
        raise ValueError(f"m (the number of examples) must be an int >= {minimum}, got {m!r}")
    return int(m)


def planar(m=400, seed=1):
    """The course's two-class "flower": points on the petals of the rose curve
    r = 4 sin(4 theta), with noise on theta and r; alternate petals belong to
    alternate classes. With the defaults it is exactly the course's dataset
    (``load_planar_dataset``: the same legacy RandomState draws, in the same order).

    Returns X (2, m) float64 and Y (1, m) int64; the first half of the
    examples are class 0, the second half class 1 (m odd: class 1 gets one fewer).
    """
    m = _check_m(m)
    rng = np.random.RandomState(seed)
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


def circles(m=400, noise=0.1, factor=0.5, seed=0):
    """Two concentric circles: class 0 on the outer one (radius 1), class 1 on
    the inner one (radius ``factor``), Gaussian noise of std ``noise``.

    Returns X (2, m) float64 and Y (1, m) int64 (classes interleaved at random).
    """
    m = _check_m(m)
    if not 0 < factor < 1:
        raise ValueError(f"factor (inner radius / outer radius) must be in (0, 1), got {factor!r}")
    rng = np.random.default_rng(seed)
    y = np.arange(m) % 2
    theta = rng.uniform(0, 2 * np.pi, m)
    r = np.where(y == 1, factor, 1.0)
    X = np.stack([r * np.cos(theta), r * np.sin(theta)]) + rng.normal(0, noise, (2, m))
    order = rng.permutation(m)
    return X[:, order].copy(), y[order].reshape(1, m).astype(np.int64)


def moons(m=400, noise=0.1, seed=0):
    """Two interleaving half circles ("moons"): class 0 the upper one, class 1
    the lower one shifted right, Gaussian noise of std ``noise``.

    Returns X (2, m) float64 and Y (1, m) int64 (classes interleaved at random).
    """
    m = _check_m(m)
    rng = np.random.default_rng(seed)
    y = np.arange(m) % 2
    t = rng.uniform(0, np.pi, m)
    x0 = np.where(y == 0, np.cos(t), 1 - np.cos(t))
    x1 = np.where(y == 0, np.sin(t), 0.5 - np.sin(t))
    X = np.stack([x0, x1]) + rng.normal(0, noise, (2, m))
    order = rng.permutation(m)
    return X[:, order].copy(), y[order].reshape(1, m).astype(np.int64)
