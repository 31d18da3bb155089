"""The course's optimizers: gradient descent, momentum, RMSprop and Adam.

Each is a small value object naming its kind (a code of kernels.options) and
its hyper-parameters; the update itself is one fused elementwise kernel,
``optimizer_step`` (kernels/loops/update.py, kernels/vectorized.py):

    GradientDescent   W -= lr dW
    Momentum          v = beta v + (1 - beta) dW;  W -= lr v                           (beta 0.9)
    RMSprop           s = beta s + (1 - beta) dW^2;  W -= lr dW / (sqrt(s) + epsilon)  (beta 0.999, epsilon 1e-8)
    Adam              v, s as above with beta1, beta2; t counts steps;
                      W -= lr (v / (1 - beta1^t)) / (sqrt(s / (1 - beta2^t)) + epsilon)   (0.9, 0.999, 1e-8)

Strings are shorthand for the defaults: "gd", "momentum", "rmsprop", "adam".
The state (v, s, t) lives in the network and carries over between fits while
the optimizer is equal (same kind, same hyper-parameters).
"""

import numbers
from dataclasses import dataclass

from kernels.options import ADAM, GD, MOMENTUM, RMSPROP

from .checks import check_positive

__all__ = ["Optimizer", "GradientDescent", "Momentum", "RMSprop", "Adam", "get", "NAMES"]


def _fraction(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Optimizer:
    """Base: the kernel's code and its hyper-parameters (beta1, beta2, epsilon)."""

    code = GD
    uses_v = False  # the state arrays it keeps per parameter: v (first moment) and s (second)
    uses_s = False

    def hyper(self):
        """(beta1, beta2, epsilon) as optimizer_step takes them."""
        return 0.0, 0.0, 0.0


@dataclass(frozen=True)
class GradientDescent(Optimizer):
    code = GD


@dataclass(frozen=True)
class Momentum(Optimizer):
    beta: float = 0.9
    code = MOMENTUM
    uses_v = True

    def __post_init__(self):
        object.__setattr__(self, "beta", _fraction("beta", self.beta))

    def hyper(self):
        return self.beta, 0.0, 0.0


@dataclass(frozen=True)
class RMSprop(Optimizer):
    beta: float = 0.999
    epsilon: float = 1e-8
    code = RMSPROP
    uses_s = True

    def __post_init__(self):
        object.__setattr__(self, "beta", _fraction("beta", self.beta))
        object.__setattr__(self, "epsilon", check_positive(self.epsilon, "epsilon"))

    def hyper(self):
        return 0.0, self.beta, self.epsilon


@dataclass(frozen=True)
class Adam(Optimizer):
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    code = ADAM
    uses_v = True
    uses_s = True

    def __post_init__(self):
        object.__setattr__(self, "beta1", _fraction("beta1", self.beta1))
        object.__setattr__(self, "beta2", _fraction("beta2", self.beta2))
        object.__setattr__(self, "epsilon", check_positive(self.epsilon, "epsilon"))

    def hyper(self):
        return self.beta1, self.beta2, self.epsilon


NAMES = {"gd": GradientDescent, "momentum": Momentum, "rmsprop": RMSprop, "adam": Adam}


def get(optimizer):
    """An Optimizer from a name ("gd", "momentum", "rmsprop", "adam") or an instance."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer.lower() in NAMES:
        return NAMES[optimizer.lower()]()
    raise ValueError(f"unknown optimizer {optimizer!r}; use one of {', '.join(map(repr, NAMES))} or an "
                     f"instance such as model.optimizers.Adam(beta1=0.9)")
