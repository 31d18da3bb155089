"""jitloops model layer: the course's networks trained on any kernels backend.

    from model import NeuralNetwork, LogisticRegression, gradient_check, datasets
    X, Y = datasets.planar()
    net = NeuralNetwork([2, 4, 1], activations="tanh", backend="numba", seed=2)
    net.fit(X, Y, iterations=10_000, learning_rate=1.2)
    net.accuracy(X, Y)

Modules: network.py (the API), checks.py (input checks), fit.py (the fit
driver), training.py (the training loop, written once over the kernels),
program.py (that loop bound to a backend), logistic.py, gradcheck.py,
datasets.py.
"""

from . import datasets, optimizers
from .gradcheck import gradient_check
from .logistic import LogisticRegression
from .network import INITIALIZATIONS, DivergenceError, NeuralNetwork

__all__ = ["NeuralNetwork", "LogisticRegression", "DivergenceError", "gradient_check", "datasets", "optimizers",
           "INITIALIZATIONS"]
