"""The course notebooks' training recipes, run through the public API.

The first course's planar notebook ("Planar data classification with one
hidden layer") trains [2, n_h, 1] networks by full-batch gradient descent:
``planar_network`` and ``nn_model`` below.

The second course's notebooks train with their own loops: the optimization
notebook's ``model()`` draws each epoch's mini-batches with
``np.random.seed(seed); np.random.permutation(m)``, the seed counting up from
11, and lowers the learning rate *after* each epoch with ``update_lr`` or
``schedule_lr_decay``. ``fit`` shuffles with its own counter-based generator
(the same on every backend) and decays from the epoch's own number, so to give
the notebook's figures to its printed digits the recipe hands ``fit`` one
epoch at a time, the notebook's permutation applied, at the notebook's
learning rate. The optimizer's state carries over between those fits (see
``NeuralNetwork.fit``), so this is the notebook's training exactly.
"""

import math

import numpy as np

from model import NeuralNetwork

# The planar notebook's initialize_parameters seeds np.random.seed(2) and draws
# W1, W2 in order; its update_parameters' learning rate; nn_model's iterations.
PLANAR_SEED = 2
PLANAR_LEARNING_RATE = 1.2
PLANAR_ITERATIONS = 10_000


def update_lr(learning_rate0, epoch, decay_rate):
    """The notebook's update_lr: learning_rate0 / (1 + decay_rate * epoch)."""
    return learning_rate0 / (1 + decay_rate * epoch)


def schedule_lr_decay(learning_rate0, epoch, decay_rate, time_interval=1000):
    """The notebook's schedule_lr_decay: a step down every time_interval epochs."""
    return learning_rate0 / (1 + decay_rate * math.floor(epoch / time_interval))


DECAYS = {None: None, "update_lr": update_lr, "schedule_lr_decay": schedule_lr_decay}


def optimization_network(backend, dtype="float64"):
    """The optimization notebook's [2, 5, 2, 1] relu network with its
    initialize_parameters (He, np.random.seed(3))."""
    return NeuralNetwork([2, 5, 2, 1], activations="relu", backend=backend, init="he", seed=3, dtype=dtype)


def notebook_model(net, X, Y, optimizer, learning_rate, epochs=5000, batch_size=64, seed=10, decay=None,
                   decay_rate=1.0):
    """The optimization notebook's ``model()`` loop on ``net``.

    X (n_x, m), Y (1, m). optimizer: "gd", "momentum", "adam" (or a
    model.optimizers instance); decay: None, "update_lr" or
    "schedule_lr_decay". Each epoch the notebook's permutation
    (np.random.seed(seed + 1 + epoch)), batches of batch_size in that order,
    then the learning rate for the next epoch. Returns the epoch costs (1-D,
    one per epoch: the mean over the epoch's examples of each batch's loss).
    """
    if decay not in DECAYS:
        raise ValueError(f"decay must be one of {list(DECAYS)}, got {decay!r}")
    m = X.shape[1]
    lr = learning_rate
    start = len(net.costs_)
    for epoch in range(epochs):
        order = np.random.RandomState(seed + 1 + epoch).permutation(m)
        net.fit(X[:, order], Y[:, order], epochs=1, learning_rate=lr, batch_size=batch_size, shuffle=False,
                optimizer=optimizer, cost_every=1)
        if decay is not None:
            lr = DECAYS[decay](learning_rate, epoch, decay_rate)
    return np.asarray(net.costs_[start:])


def planar_network(n_x, hidden, n_y, backend, activations="tanh", init="random"):
    """The notebook's network [n_x, *hidden, n_y] (``hidden`` an int n_h or a
    tuple of sizes) as its initialize_parameters leaves it: W = randn * 0.01
    drawn after np.random.seed(2) (``init="random"``), b = 0. Not trained."""
    hidden = (hidden,) if np.ndim(hidden) == 0 else tuple(hidden)
    return NeuralNetwork([n_x, *hidden, n_y], activations=activations, backend=backend, init=init,
                         seed=PLANAR_SEED)


def nn_model(X, Y, hidden, backend, iterations=PLANAR_ITERATIONS, activations="tanh", init="random",
             cost_every=1000):
    """The notebook's nn_model on ``backend``: planar_network trained by
    full-batch gradient descent at learning rate 1.2. X (n_x, m), Y (n_y, m).
    Returns the fitted network; its ``costs_`` holds the cost every
    ``cost_every`` iterations."""
    net = planar_network(X.shape[0], hidden, Y.shape[0], backend, activations, init)
    return net.fit(X, Y, iterations=iterations, learning_rate=PLANAR_LEARNING_RATE, cost_every=cost_every)
