"""``nonlinearity``: the planar notebook's first lesson ("Planar data
classification with one hidden layer", course 1, week 3). On the flower,
logistic regression draws a straight line and gets about half the points;
hidden layers with *linear* activations do no better, because a product of
linear maps is one linear map; the same 4 hidden units with tanh bend the
boundary round the petals.

Shapes in the course's notation: X (n_x, m) = (2, 400), Y (1, m); a network
[n_x, n_h, n_y] has W1 (n_h, n_x), b1 (n_h, 1), W2 (n_y, n_h), b2 (n_y, 1).

The notebook's recipe (``nn_model``): W = randn * 0.01 drawn after
np.random.seed(2), b = 0, full-batch gradient descent at learning rate 1.2 for
10000 iterations. Its published figures (version v6c, with its outputs, as
stored in github.com/Johan-Liebert1/1-Neural-Networks-and-Deep-Learning,
commit b51b774, "Week 3/Planar data classification with one hidden layer/
Planar_data_classification_with_onehidden_layer_v6c.ipynb"), which this
lesson reproduces on the numpy backend: scikit-learn's LogisticRegressionCV
gets 47% and the 4-unit tanh network 90% (both printed with %d), its cost
printed every 1000 iterations to 6 decimals up to iteration 7000 (later the
step 1.2 turns chaotic and each machine's last bits show: the notebook's own
"Expected Output" differs from its printed run there). scikit-learn is
optional: without it that row is left out.

Time: about 0.3 s of training on "numba" (a few seconds in all, with the
imports and scikit-learn's cross-validation); about 2.5 s on "numpy" (each of
the 40000 iterations is a dozen small NumPy calls, whose per-call overhead
dominates at m = 400); a few minutes on "python" (the interpreted loops take
about 4 ms per iteration of the 4-unit network).
"""

import time
import warnings

import numpy as np

from model import LogisticRegression, datasets

from .common import Lesson, backend_or_default, decision_boundary, grid
from .recipes import PLANAR_ITERATIONS as ITERATIONS
from .recipes import PLANAR_LEARNING_RATE as LEARNING_RATE
from .recipes import PLANAR_SEED as SEED
from .recipes import nn_model

SUMMARY = "logistic regression and linear hidden layers vs tanh on the course's flower (47% vs 90%)"

PRINT_EVERY = 1000  # the notebook prints the cost every 1000 iterations

# (label, hidden layer sizes, hidden activation): the networks, all trained by nn_model
NETWORKS = (
    ("[2, 4, 1] linear", (4,), "linear"),
    ("[2, 4, 4, 1] linear", (4, 4), "linear"),
    ("[2, 4, 1] tanh", (4,), "tanh"),
)
SKLEARN = "logistic regression (scikit-learn)"
GRADIENT_DESCENT = "logistic regression (gradient descent)"


def sklearn_logistic_regression(X, Y):
    """The notebook's ``sklearn.linear_model.LogisticRegressionCV()`` fitted on
    X.T (m, n_x), Y (1, m) raveled; None when scikit-learn is not installed."""
    try:
        from sklearn.linear_model import LogisticRegressionCV
    except ModuleNotFoundError:
        return None
    with warnings.catch_warnings():
        # newer releases announce changes of defaults; the notebook uses the defaults as they are
        warnings.simplefilter("ignore")
        return LogisticRegressionCV().fit(X.T, np.ravel(Y))


def collapsed(parameters, n_layers):
    """The single linear map a network with linear hidden layers computes
    before its sigmoid: w (1, n_x) = W_L ... W_1 and b (1, 1), by composing
    z = W a + b layer by layer."""
    w, b = parameters["W1"], parameters["b1"]
    for layer in range(2, n_layers + 1):
        W = parameters[f"W{layer}"]
        w, b = W @ w, W @ b + parameters[f"b{layer}"]
    return w, b


def run(backend=None, iterations=ITERATIONS, sklearn=True):
    """Logistic regression (scikit-learn's, when installed and ``sklearn``;
    and the course's own, trained by gradient descent like the networks) and
    the NETWORKS, each for ``iterations`` iterations of the notebook's recipe
    on ``backend``."""
    backend = backend_or_default(backend)
    X, Y = datasets.planar()  # the notebook's load_planar_dataset: X (2, 400), Y (1, 400)
    rows, figures, panels = [], {}, []

    clf = sklearn_logistic_regression(X, Y) if sklearn else None
    if clf is not None:
        accuracy = float(np.mean(clf.predict(X.T) == np.ravel(Y)))
        figures[f"accuracy[{SKLEARN}]"] = accuracy
        rows.append([SKLEARN, "-", "-", f"{accuracy:.2%}", "-"])
        panels.append((SKLEARN, lambda A: clf.predict(A.T), accuracy))

    # one iteration of each model first, so that no timing includes loading or compiling its kernels
    LogisticRegression(X.shape[0], backend=backend).fit(X, Y, iterations=1, learning_rate=LEARNING_RATE)
    for _, hidden, activation in NETWORKS:
        nn_model(X, Y, hidden, backend, 1, activations=activation)

    start = time.perf_counter()
    logistic = LogisticRegression(X.shape[0], backend=backend)  # w, b start at 0, as in the course
    logistic.fit(X, Y, iterations=iterations, learning_rate=LEARNING_RATE, cost_every=PRINT_EVERY)
    seconds = time.perf_counter() - start
    trained = {GRADIENT_DESCENT: logistic}
    rows.append([GRADIENT_DESCENT, "-", float(logistic.cost(X, Y)), f"{logistic.accuracy(X, Y):.2%}",
                 round(seconds, 2)])

    for label, hidden, activation in NETWORKS:
        start = time.perf_counter()
        net = nn_model(X, Y, hidden, backend, iterations, activations=activation)
        seconds = time.perf_counter() - start
        trained[label] = net
        rows.append([label, activation, float(net.cost(X, Y)), f"{net.accuracy(X, Y):.2%}", round(seconds, 2)])

    for label, net in trained.items():
        figures[f"accuracy[{label}]"] = net.accuracy(X, Y)
        figures[f"cost[{label}]"] = float(net.cost(X, Y))  # after the last iteration
        figures[f"costs[{label}]"] = [float(c) for c in net.costs_]  # at 0, 1000, ..., as the notebook prints
        panels.append((label, net.predict, figures[f"accuracy[{label}]"]))
    p = logistic.parameters
    figures["w[logistic regression]"] = [float(v) for v in p["w"].ravel()] + [p["b"]]
    for label, hidden, activation in NETWORKS:
        if activation == "linear":
            w, b = collapsed(trained[label].parameters, len(hidden) + 1)
            figures[f"w[{label}]"] = [float(v) for v in w.ravel()] + [float(b[0, 0])]

    text = _sentences(figures, iterations, backend)

    def draw(plt):
        fig, axes = grid(plt, len(panels))
        for ax, (label, predict, accuracy) in zip(axes, panels):
            decision_boundary(ax, predict, X, Y, f"{label}: {accuracy:.1%}")
        fig.suptitle(f"The flower: linear boundaries vs tanh ({iterations} iterations at 1.2, {backend})")
        return fig

    return Lesson("nonlinearity", f"Linear vs tanh hidden units on the course's flower: {iterations} iterations "
                  f"of gradient descent at {LEARNING_RATE}, randn * 0.01 from seed {SEED}, on {backend}",
                  ["model", "hidden activation", "cost", "accuracy", "seconds"], rows, text, figures, draw)


def _w(values):
    return f"w = ({values[0]:.4f}, {values[1]:.4f}), b = {values[2]:.4f}"


def _sentences(f, iterations, backend):
    parts = []
    gd = f[f"accuracy[{GRADIENT_DESCENT}]"]
    if f"accuracy[{SKLEARN}]" in f:
        parts.append(f"The flower is not linearly separable: scikit-learn's LogisticRegressionCV (the notebook's "
                     f"model; it prints 47%) classifies {f[f'accuracy[{SKLEARN}]']:.1%} of it, and the course's "
                     f"own logistic regression trained by gradient descent {gd:.1%} (cost "
                     f"{f[f'cost[{GRADIENT_DESCENT}]']:.6f}).")
    else:
        parts.append(f"The flower is not linearly separable: logistic regression trained by gradient descent "
                     f"classifies {gd:.1%} of it (cost {f[f'cost[{GRADIENT_DESCENT}]']:.6f}; scikit-learn, "
                     f"whose LogisticRegressionCV the notebook prints 47% for, is not installed).")
    linear = [label for label, _, act in NETWORKS if act == "linear"]
    no_better = all(f[f"accuracy[{label}]"] <= gd + 1e-12 for label in linear)
    verdict = "add nothing" if no_better else "do no better once trained (this short run stops before that)"
    parts.append(f"Linear hidden layers {verdict}: " + ", ".join(
        f"{label} gets {f[f'accuracy[{label}]']:.1%} (cost {f[f'cost[{label}]']:.6f})" for label in linear)
        + f". A product of linear maps is linear: the trained [2, 4, 1] collapses to "
          f"{_w(f['w[' + linear[0] + ']'])}, logistic regression's own is {_w(f['w[logistic regression]'])}.")
    tanh = "[2, 4, 1] tanh"
    printed = int(f[f"accuracy[{tanh}]"] * 100)  # the notebook's %d
    costs = f[f"costs[{tanh}]"]
    parts.append(f"The same 4 hidden units with tanh reach {f[f'accuracy[{tanh}]']:.2%} (the notebook's %d prints "
                 f"{printed}%; cost {costs[0]:.6f} at iteration 0, {costs[-1]:.6f} at "
                 f"{(len(costs) - 1) * PRINT_EVERY}, as it prints them): the nonlinearity bends the boundary "
                 f"round the petals.")
    parts.append(f"Every figure was computed just now on the {backend} backend ({iterations} iterations each).")
    return "\n".join(parts)
