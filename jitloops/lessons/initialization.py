"""``initialization``: the course's initialization notebook (second course,
week 1). Its three-layer relu network [2, 10, 5, 1] trained by full-batch
gradient descent (15000 iterations, learning rate 0.01) on its circles from
three starts: zeros, "large random" (randn * 10) and He (randn * sqrt(2 /
n[l-1])); the costs it prints every 1000 iterations and the train/test
accuracies.

Shapes (the course's): train X (2, 300), Y (1, 300); test X (2, 100), Y (1,
100); W[l] (n[l], n[l-1]), b[l] (n[l], 1) with n = [2, 10, 5, 1].

The notebook's initialize_parameters_random and _he seed np.random.seed(3)
and draw W1, W2, W3 in order: exactly ``NeuralNetwork(init="random",
init_scale=10, seed=3)`` and ``init="he", seed=3`` (bit for bit; the tests
check it), so the lesson builds its networks through the public options.

Measured on an AMD EPYC (Zen 4), 2 cores, warm Numba cache: the three runs
take about 2 s on "numba" (0.35 s each once loaded) and 5 to 9 s on "numpy".
"""

import time

import numpy as np

from model import NeuralNetwork, datasets

from .common import Lesson, backend_or_default, decision_boundary, grid

SUMMARY = "zeros, large random (x10) and He initialization of the course's [2, 10, 5, 1] relu net on its circles"

LAYERS = [2, 10, 5, 1]  # the notebook's layers_dims for its circles (n_x = 2)
ITERATIONS = 15000  # the notebook model()'s num_iterations
LEARNING_RATE = 0.01  # and its learning_rate
PRINT_EVERY = 1000  # it prints the cost at iterations 0, 1000, ..., 14000
RECORD_EVERY = 100  # the lesson records more often, for the picture

# (label, init, init_scale, the notebook's formula): its three initialize_parameters_*
METHODS = (
    ("zeros", "zeros", None, "np.zeros"),
    ("large random", "random", 10, "randn * 10"),
    ("he", "he", None, "randn * sqrt(2 / n[l-1])"),
)
SEED = 3  # np.random.seed(3) in initialize_parameters_random and _he


def notebook_loss(AL, Y):
    """The notebook's compute_loss, unclipped: (1/m) nansum(-Y log AL - (1 - Y)
    log(1 - AL)). AL (1, m), Y (1, m). An output rounded to exactly 0 or 1 on
    the wrong side gives log(0) = -inf, the notebook's "inf" at iteration 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logprobs = -np.log(AL) * Y - np.log(1 - AL) * (1 - Y)
    return float(np.nansum(logprobs) / Y.shape[1])


def run(backend=None, iterations=ITERATIONS, methods=METHODS):
    """Train the notebook's network from each of ``methods`` for ``iterations``
    iterations on ``backend``; the costs, accuracies and decision boundaries."""
    backend = backend_or_default(backend)
    X, Y = datasets.circles(300, 0.05, seed=1)  # the notebook's load_dataset: train
    Xt, Yt = datasets.circles(100, 0.05, seed=2)  # and test
    rows, figures, trained = [], {}, []
    for label, init, scale, formula in methods:
        net = NeuralNetwork(LAYERS, activations="relu", backend=backend, init=init, init_scale=scale, seed=SEED)
        AL = net.predict_proba(X)
        # outputs rounded to exactly 0 or 1 (sigmoid(z) for |z| > 37); on the wrong side: log 0
        ones, zeros = int(np.sum(AL == 1.0)), int(np.sum(AL == 0.0))
        saturated = int(np.sum((AL == 1.0) & (Y == 0)) + np.sum((AL == 0.0) & (Y == 1)))
        start = time.perf_counter()
        net.fit(X, Y, iterations=iterations, learning_rate=LEARNING_RATE, cost_every=RECORD_EVERY)
        seconds = time.perf_counter() - start
        costs = np.asarray(net.costs_)
        printed = [float(c) for c in costs[::PRINT_EVERY // RECORD_EVERY]]
        train, test = net.accuracy(X, Y), net.accuracy(Xt, Yt)
        figures[f"costs[{label}]"] = printed
        figures[f"recorded costs[{label}]"] = [float(c) for c in costs]  # every RECORD_EVERY iterations
        figures[f"train accuracy[{label}]"] = train
        figures[f"test accuracy[{label}]"] = test
        figures[f"notebook cost0[{label}]"] = notebook_loss(AL, Y)
        figures[f"class 1 predicted[{label}]"] = int(np.sum(net.predict(X)))
        figures[f"outputs 1.0[{label}]"] = ones
        figures[f"outputs 0.0[{label}]"] = zeros
        figures[f"saturated[{label}]"] = saturated
        figures[f"max |W|[{label}]"] = max(float(np.abs(net.parameters[f"W{l}"]).max())
                                           for l in range(1, len(LAYERS)))
        trained.append((label, net, costs, train, test))
        rows.append([label, formula, printed[0], printed[-1], f"{train:.2%}", f"{test:.2%}", round(seconds, 2)])
    last = (len(printed) - 1) * PRINT_EVERY  # the last iteration the notebook prints
    text = _sentences(figures, {t[0] for t in trained}, iterations, last, backend)

    def draw(plt):
        fig, axes = grid(plt, len(trained) + 1)
        for label, _, costs, _, _ in trained:
            axes[0].plot(np.arange(len(costs)) * RECORD_EVERY, costs, label=label, lw=1)
        axes[0].set_yscale("log")
        axes[0].set_xlabel("iteration")
        axes[0].set_ylabel("cost")
        axes[0].legend(fontsize=7)
        axes[0].set_title("cost per iteration", fontsize=9)
        for ax, (label, net, _, train, test) in zip(axes[1:], trained):
            decision_boundary(ax, net.predict, X, Y, f"{label}: train {train:.1%}, test {test:.1%}", pad=0.5)
        fig.suptitle(f"Initialization on the course's circles ({iterations} iterations, learning rate "
                     f"{LEARNING_RATE}, {backend})")
        return fig

    return Lesson("initialization", f"Initialization on the course's circles: [2, 10, 5, 1] relu, {iterations} "
                  f"iterations of gradient descent at {LEARNING_RATE}, np.random.seed({SEED}), on {backend}",
                  ["init", "W[l] =", "cost iter 0", f"cost iter {last}",
                   "train", "test", "seconds"],
                  rows, text, figures, draw)



def _sentences(f, labels, iterations, last, backend):
    parts = []
    if "zeros" in labels:
        parts.append(
            f"Zeros: every hidden unit outputs relu(0) = 0 and every backward signal W^T dZ is 0, so no "
            f"weight's gradient is ever nonzero: after {iterations} "
            f"iterations the largest weight is {f['max |W|[zeros]']:g}, the cost is still {f['costs[zeros]'][-1]:.10f} (ln 2 = "
            f"{np.log(2):.10f}) and {f['class 1 predicted[zeros]']} of the 300 "
            f"training examples get class 1 (the output is 0.5, not > 0.5): train {f['train accuracy[zeros]']:.0%}, "
            f"test {f['test accuracy[zeros]']:.0%}.")
    if "large random" in labels:
        parts.append(
            f"Large random (x10): {f['outputs 1.0[large random]']} of the 300 outputs start at exactly 1.0 and "
            f"{f['outputs 0.0[large random]']} at exactly 0.0 (sigmoid(z) rounds to 1.0 in float64 above z = 37); the "
            f"{f['saturated[large random]']} on the wrong side make the notebook's loss log(0): it prints "
            f"{f['notebook cost0[large random]']} at iteration 0 (jitloops clips AL to [eps, 1 - eps]: {f['costs[large random]'][0]:.2f}); it trains "
            f"slowly, {f['costs[large random]'][-1]:.4f} at iteration {last}, train "
            f"{f['train accuracy[large random]']:.1%}, test {f['test accuracy[large random]']:.1%}.")
    if "he" in labels:
        parts.append(
            f"He (variance 2 / n[l-1], for relu): from {f['costs[he]'][0]:.4f} to {f['costs[he]'][-1]:.4f} at "
            f"iteration {last}; train {f['train accuracy[he]']:.2%}, test {f['test accuracy[he]']:.0%}.")
    parts.append(f"Every figure was computed just now on the {backend} backend from the notebook's data, seeds, "
                 f"network and learning rate.")
    return "\n".join(parts)
