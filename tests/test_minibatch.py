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
from conftest import assert_trains_like_numpy

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
def course_forward(params, X, L, keep_prob=1.0, seed=0, stream=0):
    """L_model_forward; with keep_prob < 1 the course's forward_propagation_with_dropout
    (its masks D from our counter-based draws, so they match the network's)."""
    caches, A = [], X
    for l in range(1, L + 1):
        Z = params[f"W{l}"] @ A + params[f"b{l}"]
        caches.append((A, Z))
        A = 1 / (1 + np.exp(-Z)) if l == L else np.maximum(0, Z)
        if l < L and keep_prob < 1.0:
            vectorized.dropout(A, seed, stream + l - 1, keep_prob)  # A = A * D / keep_prob
    return A, caches


def course_backward(params, AL, Y, caches, L, lambd, keep_prob=1.0, seed=0, stream=0):
    m = Y.shape[1]
    grads = {}
    dZ = AL - Y
    for l in range(L, 0, -1):
        A_prev, Z = caches[l - 1]
        grads[f"dW{l}"] = dZ @ A_prev.T / m + lambd / m * params[f"W{l}"]
        grads[f"db{l}"] = dZ.sum(axis=1, keepdims=True) / m
        if l > 1:
            dA = params[f"W{l}"].T @ dZ
            if keep_prob < 1.0:
                vectorized.dropout(dA, seed, stream + l - 2, keep_prob)  # dA = dA * D / keep_prob
            # the notebooks' relu_backward: dZ[Z <= 0] = 0. It matters: with
            # zero biases whole layers of Z are exactly 0 at first.
            dZ = dA * (caches[l - 2][1] > 0)
    return grads


def course_train(params, X, Y, L, optimizer, lr, epochs, batch_size, seed, decay_rate=0.0, l2=0.0,
                 beta=0.9, beta1=0.9, beta2=0.999, epsilon=1e-8, keep_prob=1.0):
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
            AL, caches = course_forward(params, Xb, L, keep_prob, seed, t * L)
            a = np.clip(AL, np.finfo(float).eps, 1 - np.finfo(float).eps)
            total += -np.sum(Yb * np.log(a) + (1 - Yb) * np.log(1 - a))
            grads = course_backward(params, AL, Yb, caches, L, l2, keep_prob, seed, t * L)
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
    assert_trains_like_numpy(
        backend, dtype, lambda name: NeuralNetwork([2, 8, 4, 1], activations="tanh", seed=1, backend=name, dtype=dtype),
        lambda net: net.fit(X, Y, 3, 0.01, batch_size=48, optimizer="adam", seed=5, cost_every=1))


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


def test_the_permutations_radix_sort_is_a_stable_argsort():
    """order_of (the permutation's sort) on keys with many ties and on keys
    using all 32 bits: NumPy's stable argsort, interpreted and compiled."""
    from numba import njit
    from kernels.loops.draws import order_of
    compiled = njit(lambda out, keys: order_of(out, keys))
    rng = np.random.default_rng(5)
    for keys in (rng.integers(0, 7, 300), rng.integers(0, 2 ** 32, 300), np.zeros(5, np.int64),
                 np.arange(40)[::-1] << 24, np.zeros(0, np.int64)):
        want = np.argsort(keys, kind="stable")
        for sort in (order_of, compiled):
            got = np.full(keys.shape, -1, np.int64)
            sort(got, keys.astype(np.int64))  # a copy: order_of overwrites its keys
            np.testing.assert_array_equal(got, want)


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


def test_checked_options_are_remembered_by_value_and_type():
    """fit remembers the options it checked (a short fit's call is mostly
    checks): the same arguments give the same options, but an argument
    equal to a good one of another type (True == 1, 1.0 == 1) is checked
    afresh, and bad ones are refused however often asked."""
    X, Y = moons_like(m=20)
    net = NeuralNetwork([2, 3, 1])
    net.fit(X, Y, 1, 0.1, batch_size=1, seed=1, decay_every=1)
    first = check_training_options(1, True, 1, "gd", 0.0, 1, 0.0)
    assert check_training_options(1, True, 1, "gd", 0.0, 1, 0.0) is first
    for _ in range(2):
        for kwargs, message in [(dict(batch_size=True), "batch_size must be an int >= 1"),
                                (dict(seed=1.0), "seed must be an int >= 0"),
                                (dict(decay_every=True), "decay_every must be an int >= 1"),
                                (dict(shuffle=1), "shuffle must be True or False"),
                                (dict(batch_size=0), "batch_size must be an int >= 1")]:
            with pytest.raises((TypeError, ValueError), match=message):
                net.fit(X, Y, 1, 0.1, **kwargs)
    adam = optimizers.Adam(beta1=0.5)
    assert check_training_options(None, True, 0, adam, 0.0, 1, 0.0).optimizer == adam
    assert check_training_options(None, True, 0, optimizers.Adam(beta1=0.6), 0.0, 1, 0.0).optimizer.beta1 == 0.6


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


@pytest.mark.parametrize("large", [False, True])
def test_nan_in_x_is_reported_before_any_other_check(large, monkeypatch):
    """An X with NaN is refused with check_X's message before Y, validation
    data, the epochs' records or a backend's missing kernels are looked at:
    check_X tests it first unless the fit's gather will (an X past
    GATHER_TESTS_X_BYTES, on a backend that gathers: the second call)."""
    import types
    from model import fit
    if large:
        monkeypatch.setattr(fit, "GATHER_TESTS_X_BYTES", 0)
    X, Y = moons_like(m=40)
    Xb = X.copy()
    Xb[1, 5] = np.nan
    net = NeuralNetwork([2, 3, 1], backend="numba")
    kw = dict(batch_size=8, optimizer="adam")
    # (a large X's gather meets the NaN only after these checks)
    for bad in () if large else (dict(Y=Y[:, :-1]), dict(validation_data=(X[:1], Y)),
                                 dict(epochs=10 ** 15, cost_every=1)):
        args = dict(X=Xb, Y=Y, epochs=2, learning_rate=0.1, **kw)
        args.update(bad)
        with pytest.raises(ValueError, match="X contains NaN or infinity"):
            net.fit(**args)
    raw = {k: v for k, v in vars(vectorized).items() if k not in ("optimizer_step", "gather_columns", "permutation")}
    net._ops = kernels.Ops("gpu-like", types.SimpleNamespace(**raw))
    net._program = None
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        net.fit(Xb, Y, 1, 0.1, **kw)  # not the missing kernels' error: this backend does not gather


@pytest.mark.parametrize("backend", ["numpy", "numba", "parallel"])
def test_validation_costs_and_early_stopping(backend):
    """val_costs_ is the validation cost after each recorded epoch's updates
    (checked against cost() between one-epoch fits); early stopping stops
    n_iter_no_change epochs after the best one and restores its parameters."""
    X, Y = moons_like(300, seed=3)
    Xv, Yv = moons_like(100, seed=4)
    kwargs = dict(learning_rate=0.05, batch_size=32, optimizer="adam", seed=1)
    net = NeuralNetwork([2, 16, 16, 1], activations="relu", init="he", seed=1, backend=backend)
    net.fit(X, Y, 6, validation_data=(Xv, Yv), cost_every=1, **kwargs)
    step = NeuralNetwork([2, 16, 16, 1], activations="relu", init="he", seed=1, backend=backend)
    after = [step.fit(X, Y, 1, **kwargs).cost(Xv, Yv) for _ in range(6)]
    np.testing.assert_allclose(net.val_costs_, after, rtol=1e-12)
    assert net.val_costs_.shape == net.costs_.shape

    stop = NeuralNetwork([2, 16, 16, 1], activations="relu", init="he", seed=1, backend=backend)
    stop.fit(X, Y, 300, validation_data=(Xv, Yv), early_stopping=True, n_iter_no_change=5, tol=1e-3,
             cost_every=1, **kwargs)
    best = stop.best_epoch_
    assert stop.n_iter_ == best + 6 < 300  # 5 epochs without improvement after the best
    assert stop.val_costs_[best] == pytest.approx(stop.cost(Xv, Yv), rel=1e-12)
    assert all(v > stop.val_costs_[best] - 1e-3 for v in stop.val_costs_[best + 1:])
    if backend != "numpy":
        ref = NeuralNetwork([2, 16, 16, 1], activations="relu", init="he", seed=1, backend="numpy")
        ref.fit(X, Y, 300, validation_data=(Xv, Yv), early_stopping=True, n_iter_no_change=5, tol=1e-3,
                cost_every=1, **kwargs)
        assert ref.best_epoch_ == best
        for k, v in ref.parameters.items():
            np.testing.assert_allclose(stop.parameters[k], v, rtol=1e-7, atol=1e-10)

    # the epochs run out 3 epochs after the best, before the patience: the best epoch's parameters too
    # (scikit-learn's MLP); val_costs_[best] is the cost those parameters give
    short = NeuralNetwork([2, 16, 16, 1], activations="relu", init="he", seed=1, backend=backend)
    short.fit(X, Y, best + 4, validation_data=(Xv, Yv), early_stopping=True, n_iter_no_change=5, tol=1e-3,
              cost_every=1, **kwargs)
    assert short.best_epoch_ == best and short.n_iter_ == best + 4
    assert short.cost(Xv, Yv) == pytest.approx(short.val_costs_[best], rel=1e-12)
    assert short.cost(Xv, Yv) != pytest.approx(short.val_costs_[-1], rel=1e-9)


def test_bad_validation_options():
    X, Y = moons_like(m=20)
    net = NeuralNetwork([2, 3, 1])
    with pytest.raises(ValueError, match="pass validation_data"):
        net.fit(X, Y, 1, 0.1, early_stopping=True)
    with pytest.raises(ValueError, match="validation_data: X has shape"):
        net.fit(X, Y, 1, 0.1, validation_data=(X.T, Y))
    with pytest.raises(TypeError, match="validation_data must be a pair"):
        net.fit(X, Y, 1, 0.1, validation_data=(X, Y, X))
    with pytest.raises(ValueError, match="n_iter_no_change must be an int >= 1"):
        net.fit(X, Y, 1, 0.1, validation_data=(X, Y), early_stopping=True, n_iter_no_change=0)
    assert net.n_iter_ == 0


@pytest.mark.parametrize("backend", CPU)
def test_dropout_follows_the_course_code(backend):
    """Inverted dropout (keep_prob 0.8 on both hidden layers) with Adam and
    mini-batches: parameters and costs as the course's
    forward/backward_propagation_with_dropout given the same masks, on every
    backend (the masks are counter-based draws: the same everywhere)."""
    X, Y = moons_like()
    net = NeuralNetwork([2, 5, 2, 1], activations="relu", init="he", seed=3, backend=backend)
    start = net.parameters
    net.fit(X, Y, epochs=3, learning_rate=0.005, batch_size=64, seed=4, optimizer="adam", keep_prob=0.8,
            cost_every=1)
    want, want_costs = course_train(start, X, Y, 3, "adam", 0.005, 3, 64, 4, keep_prob=0.8)
    for k, v in want.items():
        np.testing.assert_allclose(net.parameters[k], v, rtol=1e-7, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(net.costs_, want_costs, rtol=1e-10)
    # prediction and cost never drop units: they are the plain forward pass's
    AL, _ = course_forward(net.parameters, X, 3)
    np.testing.assert_allclose(net.predict_proba(X), AL, rtol=1e-12)


def test_dropout_masks_keep_the_right_fraction_and_scale():
    from kernels import cpu
    for keep in (0.5, 0.8, 1.0):
        A = np.ones((50, 2000))
        cpu.numba_kernels.dropout(A, 3, 9, keep)
        kept = A > 0
        sd = np.sqrt(keep * (1 - keep) / A.size)
        assert abs(kept.mean() - keep) <= 5 * sd + 1e-12
        np.testing.assert_array_equal(A[kept], 1 / keep)
    B, C = np.ones((4, 100)), np.ones((4, 100))
    vectorized.dropout(B, 3, 9, 0.5)
    vectorized.dropout(C, 3, 10, 0.5)
    assert not np.array_equal(B, C)  # another stream, another mask
    with pytest.raises(ValueError, match=r"keep_prob values must be in \(0, 1\]"):
        NeuralNetwork([2, 3, 1]).fit(*moons_like(20), 1, 0.1, keep_prob=0.0)
    with pytest.raises(ValueError, match="keep_prob has 1 values but the network has 2 hidden layers"):
        NeuralNetwork([2, 3, 3, 1]).fit(*moons_like(20), 1, 0.1, keep_prob=[0.5])


def test_keep_prob_one_changes_nothing_and_divergence_is_reported_in_epochs():
    from model import DivergenceError
    X, Y = moons_like()
    a = NeuralNetwork([2, 5, 1], seed=0).fit(X, Y, 3, 0.01, batch_size=32, optimizer="adam")
    b = NeuralNetwork([2, 5, 1], seed=0).fit(X, Y, 3, 0.01, batch_size=32, optimizer="adam", keep_prob=1.0)
    for k, v in a.parameters.items():
        np.testing.assert_array_equal(b.parameters[k], v)
    net = NeuralNetwork([2, 5, 1], activations="relu", seed=0, backend="numba")
    with pytest.raises(DivergenceError, match="diverged at epoch"):
        net.fit(X * 1e200, Y, 5, 1e300, batch_size=32, optimizer="momentum")
    assert all(np.isfinite(v).all() for v in net.parameters.values())


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_large_x_is_gathered_once_an_epoch_with_the_same_batches(backend, monkeypatch):
    """Past EPOCH_GATHER_BYTES fit gathers X's columns once an epoch (the
    course's shuffled_X), batch after batch, and each batch reads its block: the batches, and
    so every parameter and cost, are exactly those of a gather per batch.
    A last batch smaller than the others, shuffled and in order."""
    from model import fit
    rng = np.random.default_rng(3)
    X = rng.standard_normal((6, 300))
    Y = (X[0:1] + X[1:2] > 0).astype(float)

    def train(threshold):
        monkeypatch.setattr(fit, "EPOCH_GATHER_BYTES", threshold)
        net = NeuralNetwork([6, 5, 1], backend=backend, seed=1)
        net.fit(X, Y, 3, 0.01, batch_size=64, optimizer="adam", seed=2, cost_every=1)
        net.fit(X, Y, 2, 0.01, batch_size=64, shuffle=False, cost_every=1)
        return net

    once, per_batch = train(0), train(1 << 60)
    for k, v in per_batch.parameters.items():
        np.testing.assert_array_equal(once.parameters[k], v)
    np.testing.assert_array_equal(once.costs_, per_batch.costs_)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", CPU)
def test_a_gathered_x_with_nan_or_inf_is_refused_before_any_step(backend, dtype, monkeypatch):
    """A large X (past GATHER_TESTS_X_BYTES, gathered once an epoch) is
    tested for NaN and infinity by that gather, not by a pass of fit's own
    over X: check_X's ValueError all the same, raised before any step (the
    parameters, the history and the optimizer's steps as they were, also
    where the refused fit names another optimizer, whose fresh state must
    not replace Adam's); in float32 also a float64 value past float32's
    range, with check_X's message. fit(epochs=0) gathers nothing and checks
    X itself. The network then trains on as if never asked."""
    from model import fit, network
    monkeypatch.setattr(fit, "GATHER_TESTS_X_BYTES", 0)
    finite_tests = []

    def spy(X, n_x, dtype, finite=True, *rest):
        finite_tests.append(finite)
        return check_X(X, n_x, dtype, finite, *rest)
    check_X = network.check_X
    monkeypatch.setattr(network, "check_X", spy)
    X, Y = moons_like()
    kw = dict(batch_size=64, optimizer="adam", seed=1)
    net = NeuralNetwork([2, 5, 1], backend=backend, dtype=dtype, seed=0).fit(X, Y, 1, 0.01, **kw)
    before = {k: v.copy() for k, v in net.parameters.items()}
    steps, costs = net._optimizer_state["steps"], net.costs_.copy()
    bad = [(np.nan, "X contains NaN or infinity"), (-np.inf, "X contains NaN or infinity")]
    if dtype == "float32":
        bad.append((1e300, "too large for float32"))
    for value, message in bad:
        for i, j in ((0, 0), (1, 150), (1, 299)):
            Xb = X.copy()
            Xb[i, j] = value
            finite_tests.clear()
            with pytest.raises(ValueError, match=message):
                net.fit(Xb, Y, 3, 0.01, **kw)
            assert finite_tests[0] is False  # fit left the test to the gather
            for k, v in before.items():
                np.testing.assert_array_equal(net.parameters[k], v)
            assert net.n_iter_ == 1 and net._optimizer_state["steps"] == steps
            np.testing.assert_array_equal(net.costs_, costs)
    finite_tests.clear()
    Xb[1, 150] = np.nan
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        net.fit(Xb, Y, 3, 0.01, batch_size=64, optimizer="momentum", seed=1)
    assert finite_tests[0] is False and net._optimizer_state["steps"] == steps
    assert type(net._optimizer_state["key"][0]).__name__ == "Adam"
    finite_tests.clear()
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        net.fit(Xb, Y, 0, 0.01, **kw)
    assert finite_tests[0] is True
    net.fit(X, Y, 2, 0.01, **kw)
    straight = NeuralNetwork([2, 5, 1], backend=backend, dtype=dtype, seed=0).fit(X, Y, 1, 0.01, **kw)
    straight.fit(X, Y, 2, 0.01, **kw)
    for k, v in straight.parameters.items():
        np.testing.assert_array_equal(net.parameters[k], v)
