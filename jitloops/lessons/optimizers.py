"""``optimizers``: the optimization notebook. Mini-batch gradient descent,
momentum and Adam on its moons, then the learning-rate decays that let the
first two catch up: accuracies, cost curves, decision boundaries."""

import time

import numpy as np

from model import datasets

from .common import Lesson, backend_or_default, decision_boundary, grid
from .recipes import notebook_model, optimization_network

SUMMARY = "gradient descent, momentum and Adam on the course's moons, with and without learning-rate decay"

# (label, optimizer, learning rate, decay): the notebook's runs, in its order
RUNS = (
    ("gd", "gd", 0.0007, None),
    ("momentum", "momentum", 0.0007, None),
    ("adam", "adam", 0.0007, None),
    ("gd, update_lr", "gd", 0.1, "update_lr"),
    ("gd, schedule", "gd", 0.1, "schedule_lr_decay"),
    ("momentum, schedule", "momentum", 0.1, "schedule_lr_decay"),
    ("adam, schedule", "adam", 0.01, "schedule_lr_decay"),
)
EPOCHS = 5000  # the notebook's num_epochs
PRINT_EVERY = 1000  # the epochs the notebook prints the cost at


def run(backend=None, epochs=EPOCHS, runs=RUNS):
    """Train each of ``runs`` on the notebook's data, network, initialization
    and mini-batches (64, its seeds) for ``epochs`` epochs on ``backend``."""
    backend = backend_or_default(backend)
    X, Y = datasets.moons()  # the notebook's load_dataset: m = 300, noise 0.2, seed 3
    rows, figures, trained = [], {}, []
    for label, optimizer, lr, decay in runs:
        net = optimization_network(backend)
        start = time.perf_counter()
        costs = notebook_model(net, X, Y, optimizer, lr, epochs=epochs, decay=decay)
        seconds = time.perf_counter() - start
        accuracy = net.accuracy(X, Y)
        printed = costs[::PRINT_EVERY]
        figures[f"accuracy[{label}]"] = accuracy
        figures[f"costs[{label}]"] = [float(c) for c in printed]
        trained.append((label, net, costs, accuracy))
        rows.append([label, lr, decay or "-", float(costs[0]), float(costs[-1]), f"{accuracy:.2%}",
                     round(seconds, 2)])
    acc = {label: a for label, _, _, a in trained}
    text = _sentences(acc, epochs, backend)

    def draw(plt):
        fig, axes = grid(plt, len(trained) + 1)
        for label, _, costs, _ in trained:
            axes[0].plot(np.arange(0, len(costs), 100), costs[::100], label=label, lw=1)
        axes[0].set_xlabel("epoch")
        axes[0].set_ylabel("cost")
        axes[0].set_yscale("log")
        axes[0].legend(fontsize=6)
        axes[0].set_title("cost per epoch", fontsize=9)
        for ax, (label, net, _, accuracy) in zip(axes[1:], trained):
            decision_boundary(ax, net.predict, X, Y, f"{label}: {accuracy:.1%}", pad=0.5)
        fig.suptitle(f"Optimizers on the course's moons ({epochs} epochs, batches of 64, {backend})")
        return fig

    return Lesson("optimizers", f"Optimizers on the course's moons: {epochs} epochs of mini-batches of 64, "
                  f"[2, 5, 2, 1] relu, He init, on {backend}",
                  ["run", "learning rate", "decay", "cost epoch 0", "cost last", "accuracy", "seconds"],
                  rows, text, figures, draw)


def _sentences(acc, epochs, backend):
    parts = []
    if {"gd", "momentum", "adam"} <= acc.keys():
        parts.append(
            f"At the notebook's learning rate 0.0007, Adam reaches {acc['adam']:.1%} of the training set in "
            f"{epochs} epochs, where gradient descent gets {acc['gd']:.1%} and momentum {acc['momentum']:.1%}: "
            f"Adam's per-parameter step size (the gradient over its running RMS) moves the flat directions too.")
    if {"gd, update_lr", "gd, schedule"} <= acc.keys():
        parts.append(
            f"Decay after every epoch (update_lr) shrinks the rate so fast that gradient descent stalls at "
            f"{acc['gd, update_lr']:.1%}; a step down every 1000 epochs (schedule_lr_decay) from 0.1 gives "
            f"{acc['gd, schedule']:.1%}.")
    if {"momentum, schedule", "adam, schedule"} <= acc.keys():
        parts.append(f"With that schedule momentum reaches {acc['momentum, schedule']:.1%} and Adam (from 0.01) "
                     f"{acc['adam, schedule']:.1%}: a larger rate that decays catches up with Adam.")
    parts.append(f"Every figure was computed just now on the {backend} backend, with the notebook's mini-batches "
                 f"(each epoch one fit, its permutation and its learning rate: jitloops.lessons.recipes).")
    return "\n".join(parts)
