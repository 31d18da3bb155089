"""Gradient checking, the course's: backpropagation's gradients against
two-sided finite differences of the cost."""

import numpy as np

from .checks import check_positive

__all__ = ["gradient_check"]


def gradient_check(net, X, Y, epsilon=1e-7, l2=0.0):
    """The relative difference ||g - g_approx|| / (||g|| + ||g_approx||) between
    the backend's gradients g (``net.gradients``) and the two-sided estimates
    g_approx[i] = (J(theta + eps e_i) - J(theta - eps e_i)) / (2 eps) over every
    parameter theta_i. Below about 2e-7 (in float64) backpropagation is right;
    in float32 the differences of J drown in rounding (use a float64 network).

    net: a NeuralNetwork or LogisticRegression (left unchanged); X (n_x, m); Y (1, m).
    l2: check the L2-regularized cost and its gradients (the course's lambda).
    Returns a float (0.0 when both gradients are zero).
    """
    from .network import NeuralNetwork  # LogisticRegression is one too
    if not isinstance(net, NeuralNetwork):
        raise TypeError(f"gradient_check needs a NeuralNetwork or LogisticRegression to check, got "
                        f"{type(net).__name__}; call gradient_check(net, X, Y)")
    epsilon = check_positive(epsilon, "epsilon")
    grads = net.gradients(X, Y, l2=l2) if l2 else net.gradients(X, Y)
    probe = net._clone()
    theta = net.parameters
    g, g_approx = [], []
    for key, value in theta.items():
        grad = np.asarray(grads["d" + key], dtype=np.float64).ravel()
        base = np.array(value, dtype=value.dtype if isinstance(value, np.ndarray) else np.float64)
        flat = base.reshape(-1)
        for i in range(flat.size):
            costs = []
            for step in (epsilon, -epsilon):
                shifted = flat.copy()
                shifted[i] += step
                params = dict(theta)
                params[key] = shifted.reshape(base.shape) if base.ndim else shifted.reshape(()).item()
                probe.set_parameters(params)
                costs.append(probe.cost(X, Y, l2=l2) if l2 else probe.cost(X, Y))
            g_approx.append((costs[0] - costs[1]) / (2 * epsilon))
        g.append(grad)
    g = np.concatenate(g)
    g_approx = np.asarray(g_approx)
    denominator = np.linalg.norm(g) + np.linalg.norm(g_approx)
    if denominator == 0:
        return 0.0
    return float(np.linalg.norm(g - g_approx) / denominator)
