"""``vanishing-gradients``: why deep sigmoid networks do not learn (the second
course, week 1: vanishing and exploding gradients, weight initialization).

One deep network, L = 15 layers of 20 units, three ways: sigmoid hidden
layers with the course's randn * 0.01, sigmoid with Xavier (randn * sqrt(1 /
n[l-1])), relu with He (randn * sqrt(2 / n[l-1])). For each, the Frobenius
norm ||dW[l]|| of every layer's gradient at initialization on the course's
circles (the initialization notebook's training set), the ratio first / last
layer, then how far each layer's weights move in training and the cost.

Backward, each layer multiplies the signal by W[l]^T and by g'(Z[l-1]):
sigmoid' <= 1/4 everywhere (1/4 at z = 0), relu' is 1 for half the units, and
He's variance 2 / n[l-1] makes up for the other half. So the sigmoid network's
first layers get almost nothing; the course's published notebooks have no
number for this, the lesson measures it.

Shapes (the course's): X (2, 300), Y (1, 300); W[l] (n[l], n[l-1]) with n =
[2, 20, ..., 20, 1]; dW[l] has W[l]'s shape. The three trainings take about
3 s on "numba" (AMD EPYC Zen 4, 2 cores, warm cache), 8 to 15 s on "numpy".
"""

import time

import numpy as np

from model import NeuralNetwork, datasets

from .common import Lesson, backend_or_default

SUMMARY = "gradient norms per layer: a deep sigmoid network's vanish, relu with He initialization keeps them"

LAYERS = [2] + [20] * 14 + [1]  # L = 15 layers with parameters
# (label, hidden activation, init): the course's small random init, Xavier, He
NETWORKS = (
    ("sigmoid, randn*0.01", "sigmoid", "random"),
    ("sigmoid, Xavier", "sigmoid", "xavier"),
    ("relu, He", "relu", "he"),
)
SEED = 3  # the course's np.random.seed(3) for deep networks
ITERATIONS = 2000
# relu + He fits the circles in 2000 iterations at 0.05; plain gradient descent on
# 15 relu layers has spikes in its cost at every rate tried from 0.0075 to 0.05
LEARNING_RATE = 0.05
RECORD_EVERY = 20
FLOOR = 1e-20  # where the picture puts a layer that did not move at all (log scale)


def layer_norms(net, X, Y):
    """[||dW[1]||, ..., ||dW[L]||] (Frobenius) at the current parameters; X (n_x, m), Y (1, m)."""
    grads = net.gradients(X, Y)
    return [float(np.linalg.norm(grads[f"dW{l}"])) for l in range(1, net.n_layers + 1)]


def run(backend=None, layers=LAYERS, networks=NETWORKS, iterations=ITERATIONS, learning_rate=LEARNING_RATE):
    """For each of ``networks`` on ``layers``: per-layer gradient norms at
    initialization, then ``iterations`` of gradient descent on ``backend``."""
    backend = backend_or_default(backend)
    X, Y = datasets.circles(300, 0.05, seed=1)  # the initialization notebook's training set
    L = len(layers) - 1
    figures, found = {}, []
    for label, act, init in networks:
        net = NeuralNetwork(layers, activations=act, backend=backend, init=init, seed=SEED)
        norms = layer_norms(net, X, Y)
        W0 = net.parameters
        start = time.perf_counter()
        net.fit(X, Y, iterations=iterations, learning_rate=learning_rate, cost_every=RECORD_EVERY)
        seconds = time.perf_counter() - start
        W = net.parameters
        # how far training moved each layer, relative to where it started
        moved = [float(np.linalg.norm(W[f"W{l}"] - W0[f"W{l}"]) / np.linalg.norm(W0[f"W{l}"]))
                 for l in range(1, L + 1)]
        figures[f"norms[{label}]"] = norms
        figures[f"first/last[{label}]"] = norms[0] / norms[-1]
        # the geometric mean of ||dW[l]|| / ||dW[l+1]||: what one layer does to the signal
        figures[f"per layer[{label}]"] = (norms[0] / norms[-1]) ** (1 / (L - 1))
        figures[f"max/min[{label}]"] = max(norms) / min(norms)
        figures[f"moved[{label}]"] = moved
        figures[f"cost[{label}]"] = float(net.costs_[-1])
        figures[f"accuracy[{label}]"] = net.accuracy(X, Y)
        found.append((label, norms, moved, np.asarray(net.costs_), seconds))

    rows = [[f"||dW{l + 1}||"] + [n[l] for _, n, _, _, _ in found] for l in range(L)]
    rows.append([f"||dW1|| / ||dW{L}||"] + [figures[f"first/last[{f[0]}]"] for f in found])
    rows.append(["max / min over layers"] + [figures[f"max/min[{f[0]}]"] for f in found])
    rows.append([f"||W1 moved|| / ||W1|| after {iterations}"] + [f[2][0] for f in found])
    rows.append([f"cost after {iterations}"] + [figures[f"cost[{f[0]}]"] for f in found])
    rows.append(["train accuracy"] + [f"{figures[f'accuracy[{f[0]}]']:.1%}" for f in found])
    rows.append(["seconds"] + [round(f[4], 2) for f in found])
    text = _sentences(figures, [f[0] for f in found], L, iterations, learning_rate, backend)

    def draw(plt):
        fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.2))
        layer = np.arange(1, L + 1)
        for label, norms, moved, costs, _ in found:
            axes[0].semilogy(layer, norms, marker="o", ms=3, label=label)
            axes[1].semilogy(layer, np.maximum(moved, FLOOR), marker="o", ms=3, label=label)
            dashed = label.startswith("sigmoid, r")  # on top of the other sigmoid's flat ln 2
            axes[2].semilogy(np.arange(len(costs)) * RECORD_EVERY, costs, label=label, lw=1,
                             ls="--" if dashed else "-", zorder=3 if dashed else 2)
        axes[1].axhline(FLOOR, color="0.5", lw=0.8, ls=":")
        axes[1].text(1, FLOOR * 8, "exactly 0: lr * dW below W's last bit", fontsize=7, color="0.3")
        axes[0].set_title("||dW[l]|| at initialization", fontsize=9)
        axes[1].set_title(f"||W[l] after - before|| / ||W[l] before||, {iterations} iterations", fontsize=9)
        axes[2].set_title(f"cost, learning rate {learning_rate}", fontsize=9)
        for ax in axes[:2]:
            ax.set_xlabel("layer l (1 = next to the input)")
            ax.set_xticks(layer)
        axes[2].set_xlabel("iteration")
        for ax in axes:
            ax.legend(fontsize=7)
        fig.suptitle(f"Vanishing gradients: {L} layers of {layers[1]} units on the course's circles ({backend})")
        return fig

    return Lesson("vanishing-gradients", f"Vanishing gradients: {L} layers ({layers[1]} units each) on the course's "
                  f"circles, np.random.seed({SEED}), on {backend}", ["layer"] + [f[0] for f in found],
                  rows, text, figures, draw)


def _zero_note(f, labels):
    """Why a layer can move by exactly 0: W - lr * dW rounds back to W."""
    still = {x: sum(1 for v in f[f"moved[{x}]"] if v == 0) for x in labels}
    return "".join(f" ({x}: {n} layers moved by exactly 0, each update lr * dW below the last bit of W)"
                   for x, n in still.items() if n)


def _sentences(f, labels, L, iterations, lr, backend):
    parts = []
    for label in labels:
        n = f[f"norms[{label}]"]
        parts.append(f"{label}: ||dW1|| = {n[0]:.2g} against ||dW{L}|| = {n[-1]:.2g}, a ratio of "
                     f"{f[f'first/last[{label}]']:.2g} ({f[f'per layer[{label}]']:.2f} per layer on average, "
                     f"max / min over the layers {f[f'max/min[{label}]']:.3g}).")
    sig = [x for x in labels if x.startswith("sigmoid")]
    rel = [x for x in labels if x.startswith("relu")]
    if sig and rel:
        worst = max(f[f"first/last[{x}]"] for x in sig)
        parts.append(
            f"The sigmoid networks' first layer gets at most {worst:.2g} of the last's gradient: sigmoid' <= 1/4, "
            f"so each layer back shrinks the signal; relu with He keeps every layer within a factor "
            f"{f[f'max/min[{rel[0]}]']:.3g} of the others.")
        parts.append(
            f"After {iterations} iterations at learning rate {lr}, the sigmoid networks' cost is "
            + ", ".join(f"{f[f'cost[{x}]']:.4f}" for x in sig)
            + f" (ln 2 = {np.log(2):.4f}: they predict the mean) and their first layers moved by "
            + ", ".join(f"{f[f'moved[{x}]'][0]:.2g}" for x in sig)
            + f" of their size{_zero_note(f, sig)}; relu with He reaches {f[f'cost[{rel[0]}]']:.4f}, "
            f"{f[f'accuracy[{rel[0]}]']:.1%} of the training set, its first layer moved by "
            f"{f[f'moved[{rel[0]}]'][0]:.2g}.")
    parts.append(f"Every figure was computed just now on the {backend} backend.")
    return "\n".join(parts)
