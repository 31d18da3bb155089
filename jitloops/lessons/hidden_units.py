"""``hidden-units``: the planar notebook's "Tuning hidden layer size" (course
1, week 3): the network [2, n_h, 1], tanh, trained by the notebook's
nn_model for n_h = 1, 2, 3, 4, 5, 20, 50, each for 5000 iterations at
learning rate 1.2 from randn * 0.01 (seed 2), with the grid of decision
boundaries.

Shapes in the course's notation: X (n_x, m) = (2, 400), Y (1, m); W1
(n_h, n_x), b1 (n_h, 1), W2 (1, n_h), b2 (1, 1).

The notebook's published table, which this lesson reproduces to its digits
on the numpy backend (``COURSE``): version v6c,
"Week 3/Planar data classification with one hidden layer/
Planar_data_classification_with_onehidden_layer_v6c.ipynb" as stored in
github.com/Johan-Liebert1/1-Neural-Networks-and-Deep-Learning (commit
b51b774), the cell "hidden_layer_sizes = [1, 2, 3, 4, 5, 20, 50]". Up to
n_h = 5 every backend follows the same cost curve to the last few bits. At
n_h = 20 and 50 the step 1.2 makes training chaotic late in the run: the
compiled loops (another summation order than NumPy's BLAS) follow NumPy's
curve to 1e-9 until about iteration 4000, then part, and a couple of the
400 points near the boundary change sides; copies of the notebook run on
other machines print other digits for those two sizes too.

Time: under a second of training on "numba"; about 3 s on "numpy" (35000
iterations, each a dozen small NumPy calls whose overhead dominates at
m = 400); about 10 minutes on "python" (the interpreted loops take some
70 ms per iteration at n_h = 50), where ``iterations=`` or ``sizes=`` make
a shorter run.
"""

import time

from model import datasets

from .common import Lesson, backend_or_default, decision_boundary, grid
from .recipes import PLANAR_LEARNING_RATE as LEARNING_RATE
from .recipes import PLANAR_SEED as SEED
from .recipes import nn_model

SUMMARY = "the course's table of hidden-layer sizes on the flower (1 to 50 tanh units, 5000 iterations each)"

SIZES = (1, 2, 3, 4, 5, 20, 50)  # the notebook's hidden_layer_sizes
ITERATIONS = 5000  # the notebook's num_iterations in that cell
# The accuracies (%) the notebook printed for SIZES, in the version cited above: shown beside ours.
COURSE = {1: 67.5, 2: 67.25, 3: 90.75, 4: 90.5, 5: 91.25, 20: 90.0, 50: 90.25}


def run(backend=None, sizes=SIZES, iterations=ITERATIONS):
    """Train nn_model [2, n_h, 1] tanh for each n_h in ``sizes`` on ``backend``
    for ``iterations`` iterations; the table and the grid of boundaries."""
    backend = backend_or_default(backend)
    X, Y = datasets.planar()  # the notebook's load_planar_dataset: X (2, 400), Y (1, 400)
    nn_model(X, Y, sizes[0], backend, 1)  # loads (or compiles) the kernels outside the timings
    rows, figures, trained = [], {}, []
    for n_h in sizes:
        start = time.perf_counter()
        net = nn_model(X, Y, n_h, backend, iterations)
        seconds = time.perf_counter() - start
        accuracy, cost = net.accuracy(X, Y), float(net.cost(X, Y))
        figures[f"accuracy[{n_h}]"] = accuracy
        figures[f"cost[{n_h}]"] = cost
        figures[f"seconds[{n_h}]"] = seconds
        trained.append((n_h, net, accuracy))
        course = f"{COURSE[n_h]:.2f}%" if n_h in COURSE and iterations == ITERATIONS else "-"
        rows.append([n_h, iterations, cost, f"{accuracy:.2%}", course, round(seconds, 3)])
    text = _sentences(figures, sizes, iterations, backend)

    def draw(plt):
        fig, axes = grid(plt, len(trained))
        for ax, (n_h, net, accuracy) in zip(axes, trained):
            decision_boundary(ax, net.predict, X, Y, f"hidden layer of size {n_h}: {accuracy:.2%}")
        fig.suptitle(f"Hidden-layer sizes on the flower ({iterations} iterations at {LEARNING_RATE}, {backend})")
        return fig

    return Lesson("hidden-units", f"Hidden-layer sizes on the course's flower: [2, n_h, 1] tanh, {iterations} "
                  f"iterations of gradient descent at {LEARNING_RATE}, randn * 0.01 from seed {SEED}, on {backend}",
                  ["n_h", "iterations", "cost", "accuracy", "course printed", "seconds"], rows, text, figures,
                  draw)


def _sentences(f, sizes, iterations, backend):
    acc = {n: f[f"accuracy[{n}]"] for n in sizes}
    cost = {n: f[f"cost[{n}]"] for n in sizes}
    best = max(sizes, key=lambda n: (acc[n], -n))  # the smallest of the most accurate
    few = [n for n in sizes if acc[n] < acc[best] - 0.1]  # more than 10 points short of the best
    enough = [n for n in sizes if n not in few]
    parts = []
    if few:
        parts.append(f"With n_h = {', '.join(map(str, few))} the boundary cannot follow the petals: "
                     f"{', '.join(f'{acc[n]:.2%}' for n in few)}.")
    parts.append(f"With n_h = {', '.join(map(str, enough))} it can: "
                 f"{', '.join(f'{acc[n]:.2%}' for n in enough)}, the best at n_h = {best}.")
    large = [n for n in sizes if n > best]
    if large:
        lowest = min(large, key=lambda n: cost[n])
        lower = cost[lowest] < cost[best]
        better = max(acc[n] for n in large) > acc[best]
        parts.append(
            f"The larger layers {'lower' if lower else 'do not lower'} the cost ({cost[lowest]:.4f} at n_h = "
            f"{lowest} against {cost[best]:.4f} at n_h = {best}) and classify the training set "
            f"{'better' if better else 'no better'}: the extra units bend the boundary towards a few stray "
            f"points (the notebook's \"overfitting\"; course 2's regularization lets such layers grow).")
    total = sum(f[f"seconds[{n}]"] for n in sizes)
    parts.append(f"All {len(sizes)} networks trained in {total:.2f} s on the {backend} backend ({iterations} "
                 f"iterations each, at the notebook's learning rate {LEARNING_RATE}).")
    return "\n".join(parts)
