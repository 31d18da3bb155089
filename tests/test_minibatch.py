"""The second course's training: mini-batches, momentum, RMSprop, Adam,
learning-rate decay and L2, on every CPU backend, against the numpy backend
and against a NumPy re-implementation of the course's own training code.

Tolerances: float64 runs take ~100 optimizer steps whose results differ
between backends only by the summation order of the products (a few ulp per
step, growing slowly through training): 1e-9 relative. Adam's and RMSprop's
division by sqrt(s) + 1e-8 amplifies differences where s is tiny (early
steps, near-zero gradients), so they get 1e-7. float32: 5e-4 relative over
10 steps (eps 1.2e-7 times the same growth).
"""

import numpy as np
import pytest

import kernels
from kernels import vectorized
from model import NeuralNetwork, optimizers
from model.checks import check_training_options

CPU = ("python", "numpy", "numba", "parallel")
RTOL = {"gd": 1e-9, "momentum": 1e-9, "rmsprop": 1e-7, "adam": 1e-7}


def moons_like(m=300, seed=3):
    """Two interleaved half-moons with noise (the course's optimization data's shape)."""
    rng = np.random.RandomState(seed)
    n_out = m // 2
    t_out, t_in = np.linspace(0, np.pi, n_out), np.linspace(0, np.pi, m - n_out)
    X = np.vstack([np.append(np.cos(t_out), 1 - np.cos(t_in)), np.append(np.sin(t_out), 1 - np.sin(t_in) - 0.5)])
    X += rng.normal(scale=0.2, size=X.shape)
    Y = np.hstack([np.zeros(n_out), np.ones(m - n_out)]).reshape(1, m)
    return X, Y


# ---------------------------------------------------------- the course's code
def course_forward(params, X, L):
    caches, A = [], X
    for l in range(1, L + 1):
        Z = params[f"W{l}"] @ A + params[f"b{l}"]
        caches.append((A, Z))
        A = 1 / (1 + np.exp(-Z)) if l == L else np.maximum(0, Z)
    return A, caches


def course_backward(params, AL, Y, caches, L, lambd):
    m = Y.shape[1]
    grads = {}
    dZ = AL - Y
    for l in range(L, 0, -1):
        A_prev, Z = caches[l - 1]
        grads[f"dW{l}"] = dZ @ A_prev.T / m + lambd / m * params[f"W{l}"]
        grads[f"db{l}"] = dZ.sum(axis=1, keepdims=True) / m
        if l > 1:
            dA = params[f"W{l}"].T @ dZ
            # relu'(0) = 1, the project's convention (DESIGN; the course's
            # table). Its notebooks' relu_backward takes 0 there, which matters:
            # with zero biases whole layers of Z are exactly 0 at first.
            dZ = dA * (caches[l - 2][1] >= 0)
    return grads


def course_train(params, X, Y, L, optimizer, lr, epochs, batch_size, seed, decay_rate=0.0, l2=0.0,
                 beta=0.9, beta1=0.9, beta2=0.999, epsilon=1e-8):
    """The course's model(): mini-batches (our counter-based permutation, so
    the batches match), update_parameters_with_gd / momentum / adam, RMSprop,
    update_lr, L2 in the gradients. Returns the parameters and epoch costs."""
    params = {k: v.copy() for k, v in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    s = {k: np.zeros_like(p) for k, p in params.items()}
    m, t, costs = X.shape[1], 0, []
    perm = np.empty(m, dtype=np.int64)
    for epoch in range(epochs):
        vectorized.permutation(perm, seed, epoch)
        lr_e = lr / (1 + decay_rate * epoch)
        total = 0.0
        for j0 in range(0, m, batch_size):
            idx = perm[j0:j0 + batch_size]
            Xb, Yb = X[:, idx], Y[:, idx]
            AL, caches = course_forward(params, Xb, L)
            a = np.clip(AL, np.finfo(float).eps, 1 - np.finfo(float).eps)
            total += -np.sum(Yb * np.log(a) + (1 - Yb) * np.log(1 - a))
            grads = course_backward(params, AL, Yb, caches, L, l2)
            t += 1
            for k in params:
                g = grads["d" + k]
                if optimizer == "gd":
                    params[k] -= lr_e * g
                elif optimizer == "momentum":
                    v[k] = beta * v[k] + (1 - beta) * g
                    params[k] -= lr_e * v[k]
                elif optimizer == "rmsprop":
                    s[k] = beta2 * s[k] + (1 - beta2) * g ** 2
                    params[k] -= lr_e * g / (np.sqrt(s[k]) + epsilon)
                else:
                    v[k] = beta1 * v[k] + (1 - beta1) * g
                    s[k] = beta2 * s[k] + (1 - beta2) * g ** 2
                    params[k] -= lr_e * (v[k] / (1 - beta1 ** t)) / (np.sqrt(s[k] / (1 - beta2 ** t)) + epsilon)
        costs.append(total / m)
    return params, np.array(costs)


@pytest.mark.parametrize("optimizer", ["gd", "momentum", "rmsprop", "adam"])
@pytest.mark.parametrize("backend", CPU)
def test_backends_follow_the_course_code(backend, optimizer):
    """Parameters and epoch costs after 4 epochs of mini-batch (64) training
    with decay and L2 on moons-like data, [2, 5, 2, 1] relu (the course's
    optimization network), against the course's own formulas in NumPy."""
    X, Y = moons_like()
    lr = {"gd": 0.05, "momentum": 0.05, "rmsprop": 0.005, "adam": 0.005}[optimizer]
    net = NeuralNetwork([2, 5, 2, 1], activations="relu", init="he", seed=3, backend=backend)
    start = net.parameters
    net.fit(X, Y, epochs=4, learning_rate=lr, batch_size=64, seed=11, optimizer=optimizer, decay_rate=0.3,
            l2=0.7, cost_every=1)
    want, want_costs = course_train(start, X, Y, 3, optimizer, lr, 4, 64, 11, decay_rate=0.3, l2=0.7)
    for k, v in want.items():
        np.testing.assert_allclose(net.parameters[k], v, rtol=RTOL[optimizer], atol=1e-12, err_msg=k)
    np.testing.assert_allclose(net.costs_, want_costs, rtol=1e-10)


@pytest.mark.parametrize("backend", ["numba", "parallel"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_compiled_backends_agree_with_numpy_with_a_smaller_last_batch(backend, dtype):
    """batch_size 48 leaves a last batch of 12 (m = 300), shuffled; Adam."""
    X, Y = moons_like()
    nets = {}
    for name in ("numpy", backend):
        net = NeuralNetwork([2, 8, 4, 1], activations="tanh", seed=1, backend=name, dtype=dtype)
        net.fit(X, Y, 3, 0.01, batch_size=48, optimizer="adam", seed=5, cost_every=1)
        nets[name] = net
    rtol = 1e-7 if dtype == "float64" else 5e-4
    for k, v in nets["numpy"].parameters.items():
        np.testing.assert_allclose(nets[backend].parameters[k], v, rtol=rtol, atol=rtol * 1e-2, err_msg=k)
    np.testing.assert_allclose(nets[backend].costs_, nets["numpy"].costs_, rtol=rtol)
    assert nets[backend].parameters["W1"].dtype == np.dtype(dtype)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_fit_one_epoch_n_times_equals_n_epochs(backend):
    """The optimizer's state (moments, steps) and the epoch count that the
    shuffling and the decay use carry over between fits."""
    X, Y = moons_like()
    kwargs = dict(learning_rate=0.01, batch_size=32, optimizer="adam", decay_rate=0.5, seed=2)
    once = NeuralNetwork([2, 5, 1], seed=0, backend=backend).fit(X, Y, 5, **kwargs)
    steps = NeuralNetwork([2, 5, 1], seed=0, backend=backend)
    for _ in range(5):
        steps.fit(X, Y, 1, **kwargs)
    for k, v in once.parameters.items():
        np.testing.assert_array_equal(steps.parameters[k], v)
    assert steps.n_iter_ == once.n_iter_ == 5
    # Another optimizer (or other settings) starts afresh: a new state
    other = NeuralNetwork([2, 5, 1], seed=0, backend=backend).fit(X, Y, 1, **kwargs)
    other.fit(X, Y, 1, **dict(kwargs, optimizer=optimizers.Adam(beta1=0.8)))
    assert other._optimizer_state["steps"] == 10 and other._optimizer_state["epochs"] == 1


def test_unshuffled_batches_are_consecutive_slices():
    """shuffle=False: the batches are X's columns in order (checked against
    plain gradient descent run batch by batch)."""
    X, Y = moons_like(m=100)
    net = NeuralNetwork([2, 3, 1], seed=0).fit(X, Y, 1, 0.1, batch_size=40, shuffle=False)
    ref = NeuralNetwork([2, 3, 1], seed=0)
    for j0 in (0, 40, 80):
        ref.fit(X[:, j0:j0 + 40], Y[:, j0:j0 + 40], 1, 0.1)
    for k, v in ref.parameters.items():
        np.testing.assert_allclose(net.parameters[k], v, rtol=1e-13)


def test_the_permutation_is_the_same_everywhere_and_a_permutation():
    from kernels import cpu, loops
    for m in (1, 7, 64, 1000):
        ref = np.empty(m, np.int64)
        vectorized.permutation(ref, 9, 4)
        assert sorted(ref) == list(range(m))
        for fn in (loops.permutation, cpu.numba_kernels.permutation, cpu.parallel_kernels.permutation):
            got = np.empty(m, np.int64)
            fn(got, 9, 4)
            np.testing.assert_array_equal(got, ref)
    a, b = np.empty(1000, np.int64), np.empty(1000, np.int64)
    vectorized.permutation(a, 9, 4)
    vectorized.permutation(b, 9, 5)
    assert not np.array_equal(a, b)
    # every position takes every value about equally often over many epochs
    counts = np.zeros((5, 5))
    p = np.empty(5, np.int64)
    for epoch in range(2000):
        vectorized.permutation(p, 1, epoch)
        counts[np.arange(5), p] += 1
    assert counts.min() > 300 and counts.max() < 500  # 400 expected, sd ~18


def test_l2_cost_and_gradients_and_gradient_check():
    from model import gradient_check
    X, Y = moons_like(m=40)
    net = NeuralNetwork([2, 4, 3, 1], activations="tanh", seed=4)
    W = [net.parameters[f"W{l}"] for l in (1, 2, 3)]
    assert net.cost(X, Y, l2=0.5) == pytest.approx(
        net.cost(X, Y) + 0.5 / 80 * sum(float(np.sum(w * w)) for w in W), rel=1e-14)
    g0, g = net.gradients(X, Y), net.gradients(X, Y, l2=0.5)
    np.testing.assert_allclose(g["dW2"], g0["dW2"] + 0.5 / 40 * W[1], rtol=1e-14)
    np.testing.assert_array_equal(g["db2"], g0["db2"])
    assert gradient_check(net, X, Y, l2=0.5) < 2e-7


def test_bad_training_options_say_how_to_fix_them():
    X, Y = moons_like(m=20)
    net = NeuralNetwork([2, 3, 1])
    cases = [
        (dict(batch_size=0), ValueError, "batch_size must be an int >= 1"),
        (dict(l2=-1.0), ValueError, "l2 must be a finite number >= 0"),
        (dict(optimizer="sgdx"), ValueError, "unknown optimizer 'sgdx'"),
        (dict(decay_every=0), ValueError, "decay_every must be an int >= 1"),
        (dict(decay_rate=float("nan")), ValueError, "decay_rate must be a finite number >= 0"),
        (dict(shuffle="yes"), TypeError, "shuffle must be True or False"),
        (dict(seed=-1), ValueError, "seed must be an int >= 0"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            net.fit(X, Y, 1, 0.1, **kwargs)
    with pytest.raises(TypeError, match="give one of them"):
        net.fit(X, Y, 1, 0.1, iterations=1)
    with pytest.raises(TypeError, match="needs a learning_rate"):
        net.fit(X, Y, 1)
    with pytest.raises(ValueError, match=r"beta1 must be a number in \[0, 1\)"):
        optimizers.Adam(beta1=1.0)
    assert check_training_options(None, True, 0, "gd", 0.0, 1, 0.0).plain
    assert not check_training_options(8, True, 0, "gd", 0.0, 1, 0.0).plain


def test_a_backend_without_the_minibatch_kernels_names_the_option():
    """The cuda backend has no optimizer kernels yet: asking for them there
    is an error naming the option (played with an Ops over the numpy kernels
    minus those)."""
    import types
    X, Y = moons_like(m=20)
    net = NeuralNetwork([2, 3, 1])
    raw = {k: v for k, v in vars(vectorized).items() if k not in ("optimizer_step", "gather_columns", "permutation")}
    net._ops = kernels.Ops("gpu-like", types.SimpleNamespace(**raw))
    net._program = None
    with pytest.raises(ValueError, match=r"batch_size=8, optimizer=Adam.*CPU backends"):
        net.fit(X, Y, 1, 0.1, batch_size=8, optimizer="adam")
    net.fit(X, Y, 2, 0.1)  # the first course's gradient descent still runs
    assert net.n_iter_ == 2
