"""``symmetry``: why the planar notebook initializes W randomly (course 1,
week 3, "Random initialization"). Start every hidden unit alike and the
gradient treats them alike: after any number of iterations they are still
one unit copied n_h times. With zeros on the flower the gradient is exactly
zero at the start (tanh(0) = 0 and W2 = 0; the classes are balanced, so even
db2 = mean(A2 - Y) = 0) and nothing moves at all; with every weight the same
non-zero number the units move, in lockstep; randn * 0.01 breaks the tie.

Shapes in the course's notation: X (n_x, m) = (2, 400), Y (1, m); the
network [2, 4, 1] tanh: W1 (n_h, n_x) = (4, 2), b1 (4, 1), W2 (1, 4),
b2 (1, 1). Hidden unit j is (W1[j], b1[j], W2[0, j]); "the rows of W1 are
equal" is the symmetry.

Every run is the notebook's nn_model: 10000 iterations of gradient descent at
learning rate 1.2; the random one is its randn * 0.01 from seed 2 (its 90%).

Time: under a second on "numba"; about 3 s on "numpy" (30000 iterations of
small NumPy calls); about 2 minutes on "python" (some 4 ms per iteration).
"""

import time

import numpy as np

from model import datasets

from .common import Lesson, backend_or_default, decision_boundary, grid
from .recipes import PLANAR_ITERATIONS as ITERATIONS
from .recipes import PLANAR_LEARNING_RATE as LEARNING_RATE
from .recipes import PLANAR_SEED as SEED
from .recipes import nn_model, planar_network

SUMMARY = "zero (or any equal) initialization keeps every hidden unit identical; random initialization breaks it"

N_H = 4  # the notebook's hidden layer
EQUAL = 0.01  # every weight this one number: the course's scale without the randomness
# (label, init, equal value overwriting every weight or None): the runs, in the order the table shows them
RUNS = (
    ("zeros", "zeros", None),
    (f"all weights {EQUAL}", "zeros", EQUAL),
    ("random (randn * 0.01)", "random", None),
)


def units(parameters):
    """The hidden units as rows (n_h, n_x + 2): unit j is [W1[j], b1[j], W2[0, j]]."""
    return np.hstack([parameters["W1"], parameters["b1"], parameters["W2"].T])


def row_spread(W):
    """max over i, j of max |W[i] - W[j]|: 0 when every row is the same. W (n_h, k)."""
    return float(np.max(W.max(axis=0) - W.min(axis=0)))


def distinct_units(parameters, rtol=1e-9):
    """How many different hidden units the network has: units whose rows
    agree within rtol * (1 + max |parameter|) count as one (rounding can make
    copies differ in the last bits)."""
    rows = units(parameters)
    tol = rtol * (1.0 + float(np.max(np.abs(rows))))
    kept = []
    for row in rows:
        if not any(np.max(np.abs(row - k)) <= tol for k in kept):
            kept.append(row)
    return len(kept)


def run(backend=None, iterations=ITERATIONS, runs=RUNS):
    """Train [2, 4, 1] tanh from each of ``runs`` on ``backend`` for ``iterations``
    iterations; the hidden units' spread and count, and the boundaries."""
    backend = backend_or_default(backend)
    X, Y = datasets.planar()  # the notebook's load_planar_dataset: X (2, 400), Y (1, 400)
    nn_model(X, Y, N_H, backend, 1)  # loads (or compiles) the kernels outside the timings
    rows, figures, trained = [], {}, []
    for label, init, equal in runs:
        net = planar_network(X.shape[0], N_H, Y.shape[0], backend, init=init)
        if equal is not None:  # a symmetric start other than zeros: every weight the same number
            drawn = net.parameters
            net.set_parameters({k: np.full_like(v, equal) if k.startswith("W") else v for k, v in drawn.items()})
        before = net.parameters
        gradient = max(float(np.max(np.abs(g))) for g in net.gradients(X, Y).values())
        start = time.perf_counter()
        net.fit(X, Y, iterations=iterations, learning_rate=LEARNING_RATE)
        seconds = time.perf_counter() - start
        after = net.parameters
        figures[f"W1[{label}]"] = after["W1"].tolist()
        figures[f"W1 spread[{label}]"] = row_spread(after["W1"])
        figures[f"W1 spread at start[{label}]"] = row_spread(before["W1"])
        figures[f"distinct units[{label}]"] = distinct_units(after)
        figures[f"max |gradient| at start[{label}]"] = gradient
        figures[f"moved[{label}]"] = float(max(np.max(np.abs(after[k] - before[k])) for k in after))
        figures[f"accuracy[{label}]"] = net.accuracy(X, Y)
        figures[f"cost[{label}]"] = float(net.cost(X, Y))
        trained.append((label, net))
        rows.append([label, gradient, figures[f"W1 spread[{label}]"], figures[f"distinct units[{label}]"],
                     figures[f"cost[{label}]"], f"{figures[f'accuracy[{label}]']:.2%}", round(seconds, 3)])
    text = _sentences(figures, [label for label, _, _ in runs], iterations, backend)

    def draw(plt):
        fig, axes = grid(plt, len(trained) + 1)
        for ax, (label, net) in zip(axes, trained):
            decision_boundary(ax, net.predict, X, Y, f"{label}: {net.accuracy(X, Y):.1%}, "
                              f"{figures[f'distinct units[{label}]']} distinct unit(s)")
        ax = axes[-1]
        markers = "osD^v"
        for i, (label, net) in enumerate(trained):
            W1 = net.parameters["W1"]
            ax.scatter(W1[:, 0], W1[:, 1], marker=markers[i % len(markers)], s=60 - 12 * i, label=label,
                       alpha=0.8)
            if figures[f"distinct units[{label}]"] == 1:
                ax.annotate(f"  all {N_H} units", (W1[0, 0], W1[0, 1]), fontsize=7, va="center")
        ax.axhline(0, color="0.7", lw=0.5)
        ax.axvline(0, color="0.7", lw=0.5)
        ax.set_xlabel("W1[j, 0]")
        ax.set_ylabel("W1[j, 1]")
        ax.set_title("the hidden units' rows of W1 after training", fontsize=9)
        ax.legend(fontsize=6)
        fig.suptitle(f"Symmetry: [2, {N_H}, 1] tanh, {iterations} iterations at {LEARNING_RATE} ({backend})")
        return fig

    return Lesson("symmetry", f"Breaking symmetry: [2, {N_H}, 1] tanh on the course's flower, {iterations} "
                  f"iterations of gradient descent at {LEARNING_RATE}, on {backend}",
                  ["init", "max |gradient| at start", "W1 rows' spread", "distinct units", "cost", "accuracy",
                   "seconds"], rows, text, figures, draw)



def _sentences(f, labels, iterations, backend):
    parts = []
    for label in labels:
        spread, distinct = f[f"W1 spread[{label}]"], f[f"distinct units[{label}]"]
        if f[f"W1 spread at start[{label}]"] == 0:
            how = ("nothing moved (the gradient is exactly zero there)" if f[f"moved[{label}]"] == 0 else
                   f"the weights moved (by up to {f[f'moved[{label}]']:.3g})")
            parts.append(f"From {label}: {how}, and after {iterations} iterations the rows of W1 differ by at most "
                         f"{spread:.3g}, {distinct} distinct hidden unit(s) of {N_H}: accuracy "
                         f"{f[f'accuracy[{label}]']:.2%}.")
        else:
            parts.append(f"From {label} (seed {SEED}): the rows of W1 differ by up to {spread:.3g}, {distinct} "
                         f"distinct hidden units of {N_H}: accuracy {f[f'accuracy[{label}]']:.2%}.")
    parts.append(f"Units that start alike get the same gradient (each row of dW1 = dZ1 X^T / m comes from its own "
                 f"row of W2 and of Z1, which are alike), so they stay alike: only a random start gives the "
                 f"network its {N_H} units. Computed just now on the {backend} backend.")
    return "\n".join(parts)
