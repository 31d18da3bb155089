"""Backpropagation's gradients equal PyTorch autograd's (micrograd's habit).
Skipped where torch is not installed (it is an optional extra)."""

import numpy as np
import pytest

from model import LogisticRegression, NeuralNetwork

torch = pytest.importorskip("torch")

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "linear")
TORCH_ACT = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "leaky_relu": lambda z: torch.nn.functional.leaky_relu(z, 0.01),
    "linear": lambda z: z,
}


def torch_gradients(parameters, activations, X, Y):
    """The cost J = -(1/m) sum(Y log AL + (1 - Y) log(1 - AL)) and its gradients by autograd, in float64."""
    L = len(activations)
    params = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in parameters.items()}
    A = torch.tensor(X, dtype=torch.float64)
    for l in range(1, L + 1):
        Z = params[f"W{l}"] @ A + params[f"b{l}"]
        A = TORCH_ACT[activations[l - 1]](Z)
    y = torch.tensor(Y, dtype=torch.float64)
    J = -torch.mean(y * torch.log(A) + (1 - y) * torch.log(1 - A))
    J.backward()
    return float(J.detach()), {"d" + k: p.grad.numpy() for k, p in params.items()}


def data(n_x, m, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n_x, m)), (rng.random((1, m)) > 0.5).astype(np.int64)


@pytest.mark.parametrize("backend", ["numpy", "python", "numba", "parallel"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradients_equal_autograd(activation, backend):
    """Random networks (random sizes, xavier weights, random biases): every dW,
    db within 1e-12 of autograd's. Both compute the same float64 formulas in
    different summation orders; measured differences are ~1e-16 on gradients
    of magnitude ~1e-1."""
    rng = np.random.default_rng(ACTIVATIONS.index(activation))
    dims = [int(n) for n in rng.integers(1, 7, size=4)] + [1]
    X, Y = data(dims[0], 9, seed=len(backend))
    net = NeuralNetwork(dims, activations=activation, init="xavier", seed=5, backend=backend)
    params = net.parameters
    for l in range(1, len(dims)):
        params[f"b{l}"] = rng.normal(scale=0.1, size=params[f"b{l}"].shape)
    net.set_parameters(params)
    J, expected = torch_gradients(params, net.activations, X, Y)
    assert net.cost(X, Y) == pytest.approx(J, rel=1e-13)
    got = net.gradients(X, Y)
    assert set(got) == set(expected)
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=0, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("backend", ["numpy", "python", "numba", "parallel"])
def test_logistic_regression_gradients_equal_autograd(backend):
    X, Y = data(4, 11, seed=1)
    w = np.array([[0.2], [-0.5], [0.1], [0.3]])
    lr = LogisticRegression(4, backend=backend).set_parameters({"w": w, "b": -0.2})
    J, expected = torch_gradients({"W1": w.T, "b1": np.array([[-0.2]])}, ("sigmoid",), X, Y)
    g = lr.gradients(X, Y)
    np.testing.assert_allclose(g["dw"], expected["dW1"].T, rtol=0, atol=1e-12)
    assert g["db"] == pytest.approx(float(expected["db1"][0, 0]), abs=1e-12)
    assert lr.cost(X, Y) == pytest.approx(J, rel=1e-13)
