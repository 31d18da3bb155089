"""The model layer's API: training, prediction, checks, save/load, gradient
checking, divergence and interruption. Backend agreement is in
test_model_backends.py, PyTorch's gradients in test_model_torch.py."""

import copy
import os
import signal
import threading

import numpy as np
import pytest

import kernels
from model import DivergenceError, LogisticRegression, NeuralNetwork, datasets, gradient_check
from model import fit, network

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "linear")


@pytest.fixture(scope="module")
def planar():
    return datasets.planar()


def small_data(n_x=3, m=7, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n_x, m)), (rng.random((1, m)) > 0.5).astype(np.int64)


# ------------------------------------------------------------------- datasets


@pytest.mark.parametrize("make", [datasets.planar, datasets.circles, datasets.moons])
def test_datasets_shapes_labels_and_seed(make):
    X, Y = make(m=101, seed=3)
    assert X.shape == (2, 101) and X.dtype == np.float64 and np.isfinite(X).all()
    assert Y.shape == (1, 101) and set(np.unique(Y)) == {0, 1}
    X2, Y2 = make(m=101, seed=3)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(Y, Y2)
    assert not np.array_equal(make(m=101, seed=4)[0], X)


def test_planar_is_the_course_flower():
    X, Y = datasets.planar()
    assert X.shape == (2, 400) and Y.sum() == 200
    # the points lie near the rose r = 4 |sin 4 theta| (noise 0.2 on r and theta)
    r = np.hypot(X[0], X[1])
    assert r.max() < 5.5 and np.median(r) > 1.0


# --------------------------------------------------------------- construction


def test_initializations_follow_their_formulas():
    dims = [50, 40, 30, 1]
    for init, scale in [("random", lambda k: 0.01), ("he", lambda k: np.sqrt(2 / k)),
                        ("xavier", lambda k: np.sqrt(1 / k))]:
        p = NeuralNetwork(dims, init=init, seed=0).parameters
        rng = np.random.RandomState(0)  # the same draws, in the same order
        for l in range(1, 4):
            expected = rng.randn(dims[l], dims[l - 1]) * scale(dims[l - 1])
            np.testing.assert_array_equal(p[f"W{l}"], expected)
            np.testing.assert_array_equal(p[f"b{l}"], np.zeros((dims[l], 1)))
    assert all(not v.any() for v in NeuralNetwork(dims, init="zeros").parameters.values())


def test_default_initialization_per_activation():
    assert NeuralNetwork([2, 4, 1], activations="tanh").init == "random"  # the course's shallow net
    assert NeuralNetwork([2, 4, 4, 1], activations="relu").init == "he"
    assert NeuralNetwork([2, 4, 4, 1], activations="leaky_relu").init == "he"
    assert NeuralNetwork([2, 4, 4, 1], activations="tanh").init == "xavier"


def test_activations_per_layer_and_errors():
    net = NeuralNetwork([2, 3, 3, 1], activations=["relu", "tanh"])
    assert net.activations == ("relu", "tanh", "sigmoid")
    assert NeuralNetwork([2, 3, 3, 1], activations=["relu", "tanh", "sigmoid"]).activations == net.activations
    with pytest.raises(ValueError, match="2 hidden layers"):
        NeuralNetwork([2, 3, 3, 1], activations=["relu"])
    with pytest.raises(ValueError, match="unknown activation 'softmax'"):
        NeuralNetwork([2, 3, 1], activations="softmax")
    with pytest.raises(ValueError, match="end in 1"):
        NeuralNetwork([2, 3, 2])
    with pytest.raises(ValueError, match="unknown init"):
        NeuralNetwork([2, 3, 1], init="glorot")
    with pytest.raises(TypeError, match="float32"):
        NeuralNetwork([2, 3, 1], dtype="int32")
    with pytest.raises(ValueError, match="unknown backend"):
        NeuralNetwork([2, 3, 1], backend="gpu")


# ------------------------------------------------------------- training works


def test_planar_network_reaches_90_percent(planar):
    """The course's result: 4 tanh hidden units, learning rate 1.2, 10000
    iterations (on a compiled backend: about a second)."""
    X, Y = planar
    net = NeuralNetwork([2, 4, 1], activations="tanh", backend="numba", seed=2)
    assert net.fit(X, Y, iterations=10_000, learning_rate=1.2) is net
    assert net.n_iter_ == 10_000
    assert net.costs_.shape == (100,) and net.costs_[0] == pytest.approx(np.log(2), abs=1e-3)
    np.testing.assert_array_equal(net.cost_iterations_, np.arange(0, 10_000, 100))
    assert net.costs_[-1] < 0.25
    assert net.accuracy(X, Y) >= 0.90


def test_costs_are_recorded_before_the_update(planar):
    X, Y = planar
    net = NeuralNetwork([2, 4, 1], activations="tanh", seed=2)
    J0 = net.cost(X, Y)
    net.fit(X, Y, iterations=7, learning_rate=1.2, cost_every=3)
    assert net.costs_.shape == (3,)  # iterations 0, 3, 6
    assert net.costs_[0] == J0
    # continuing: costs_ appends, counted over all fits
    J7 = net.cost(X, Y)
    net.fit(X, Y, iterations=2, learning_rate=1.2, cost_every=3)
    assert net.costs_[-1] == J7 and net.n_iter_ == 9
    np.testing.assert_array_equal(net.cost_iterations_, [0, 3, 6, 7])



def test_the_history_appends_in_place_without_changing_what_was_handed_out(planar):
    """costs_, val_costs_ and cost_iterations_ after many short fits: what
    each fit recorded, in order (appended into a buffer with room to spare,
    not copied whole each fit); an array handed out earlier keeps its
    entries; one set by the user, or a network's copy, appends as well."""
    X, Y = planar
    net = NeuralNetwork([2, 4, 1], activations="tanh", seed=2, backend="numpy")
    want, iterations, handed = [], [], []
    for i in range(40):
        handed.append((net.costs_, net.costs_.copy()))
        net.fit(X, Y, iterations=1 + i % 3, learning_rate=1.2, cost_every=2)
        want.extend(net.costs_[len(want):])
        iterations.extend(range(net.n_iter_ - 1 - i % 3, net.n_iter_, 2))
    assert len(want) == sum(-(-(1 + i % 3) // 2) for i in range(40))
    np.testing.assert_array_equal(net.costs_, want)
    np.testing.assert_array_equal(net.cost_iterations_, iterations)
    assert net.val_costs_.shape == net.costs_.shape and np.isnan(net.val_costs_).all()
    for array, kept in handed:
        np.testing.assert_array_equal(array, kept)
    # a buffer this big for 40 fits: grown by doubling, not one entry at a time
    assert net.costs_.base is not None and net.costs_.base.size < 4 * len(want) + 16
    net.costs_ = np.array([1.0, 2.0])
    net.val_costs_ = np.array([np.nan, np.nan])
    net.cost_iterations_ = np.array([0, 1])
    J = net.cost(X, Y)
    net.fit(X, Y, iterations=1, learning_rate=1.2)
    np.testing.assert_array_equal(net.costs_, [1.0, 2.0, J])
    copied = copy.deepcopy(net)
    copied.fit(X, Y, iterations=1, learning_rate=1.2)
    np.testing.assert_array_equal(copied.costs_[:3], [1.0, 2.0, J])
    assert copied.costs_.shape == (4,) and net.costs_.shape == (3,)

def test_fit_continues_from_current_parameters(planar):
    X, Y = planar
    once = NeuralNetwork([2, 4, 1], activations="tanh", seed=2).fit(X, Y, 20, 1.2)
    twice = NeuralNetwork([2, 4, 1], activations="tanh", seed=2).fit(X, Y, 8, 1.2).fit(X, Y, 12, 1.2)
    for k, v in once.parameters.items():
        np.testing.assert_array_equal(twice.parameters[k], v)
    other = NeuralNetwork([2, 4, 1], activations="tanh", seed=5).set_parameters(
        NeuralNetwork([2, 4, 1], activations="tanh", seed=2).fit(X, Y, 8, 1.2).parameters)
    assert other.n_iter_ == 0 and other.costs_.size == 0  # set_parameters starts a new history
    other.fit(X, Y, 12, 1.2)
    for k, v in once.parameters.items():
        np.testing.assert_array_equal(other.parameters[k], v)


@pytest.mark.parametrize("backend", ["numpy", "numba", "parallel"])
def test_fits_in_pieces_of_odd_length_equal_one_fit(planar, backend):
    """Compiled, fit_chunk trades the current and the spare parameter lists by
    local name and swaps the lists' items only at the end of a chunk with an
    odd number of steps. Pieces of 1, 3 and 4 iterations (chunks of odd and
    even length, after fit's chunk size was measured) end on the very
    parameters of one fit of 8."""
    X, Y = planar
    once = NeuralNetwork([2, 4, 1], activations="tanh", backend=backend, seed=2).fit(X, Y, 8, 1.2)
    pieces = NeuralNetwork([2, 4, 1], activations="tanh", backend=backend, seed=2)
    for n in (1, 3, 4):
        pieces.fit(X, Y, n, 1.2)
    assert pieces.n_iter_ == 8
    for k, v in once.parameters.items():
        np.testing.assert_array_equal(pieces.parameters[k], v)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_kept_fit_buffers_train_like_fresh_ones(planar, backend, monkeypatch):
    """fit keeps its (small) buffers for the next fit with as many examples;
    that fit must read its own X, and train exactly as with new buffers."""
    X, Y = planar
    X2, Y2 = X[::-1].copy(), 1 - Y  # other data, the same m

    def train():
        net = NeuralNetwork([2, 4, 1], activations="tanh", backend=backend, seed=2)
        net.fit(X, Y, 5, 1.2).fit(X2, Y2, 5, 1.2)
        return net

    kept = train()
    assert kept._fit_buffers is not None
    monkeypatch.setattr(fit, "KEEP_FIT_BUFFERS_BYTES", 0)
    fresh = train()
    assert fresh._fit_buffers is None  # over the limit: freed after each fit
    for k, v in fresh.parameters.items():
        np.testing.assert_array_equal(kept.parameters[k], v)
    np.testing.assert_array_equal(kept.costs_, fresh.costs_)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_fit_keeps_its_lists_but_never_x(planar, backend):
    """The kept buffers' lists and fit_chunk's list of them are taken over by
    the next fit of the same shapes (the same list object), made again for
    another m or new parameters, and hold no reference to X: an X dropped
    by the caller after fit is freed."""
    import gc
    import weakref

    X, Y = planar
    net = NeuralNetwork([2, 4, 1], activations="tanh", backend=backend, seed=2).fit(X, Y, 3, 1.2)
    joined = net._fit_buffers[2]["lists"][1]
    net.fit(X.copy(), Y, 2, 1.2)
    assert net._fit_buffers[2]["lists"][1] is joined
    net.set_parameters(net.parameters)  # new parameter arrays: new parameter lists
    net.fit(X, Y, 1, 1.2)
    assert net._fit_buffers[2]["lists"][1] is not joined
    X3, Y3 = X[:, :50].copy(), Y[:, :50]
    ref = weakref.ref(X3)
    net.fit(X3, Y3, 2, 1.2)
    assert net._fit_buffers[0][-1] == 50
    del X3
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("gather", [False, True])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_kept_epoch_buffers_train_like_fresh_ones(planar, backend, gather, monkeypatch):
    """Mini-batch fits keep their buffers too (for the next fit of the same
    shapes and optimizer state), with ``gather`` the buffer X is gathered
    into once an epoch (without: each batch gathered from X): fits that
    change the data, shuffle, the parameters, then the optimizer train
    exactly as with new buffers."""
    monkeypatch.setattr(fit, "EPOCH_GATHER_BYTES", 0 if gather else 1 << 60)
    X, Y = planar
    X2, Y2 = X[::-1].copy(), 1 - Y

    def train():
        net = NeuralNetwork([2, 5, 1], backend=backend, seed=2)
        kw = dict(batch_size=64, optimizer="adam", seed=1)
        net.fit(X, Y, 2, 0.01, **kw).fit(X2, Y2, 2, 0.01, **kw).fit(X, Y, 2, 0.01, shuffle=False, **kw)
        kept_once = net._fit_buffers is not None
        net.set_parameters({k: v * 0.5 for k, v in net.parameters.items()})
        net.fit(X, Y, 2, 0.01, **kw).fit(X, Y, 2, 0.01, batch_size=64, optimizer="momentum")
        return net, kept_once

    kept, was_kept = train()
    assert was_kept
    monkeypatch.setattr(fit, "KEEP_FIT_BUFFERS_BYTES", 0)
    fresh, was_kept = train()
    assert not was_kept and fresh._fit_buffers is None
    for k, v in fresh.parameters.items():
        np.testing.assert_array_equal(kept.parameters[k], v)
    np.testing.assert_array_equal(kept.costs_, fresh.costs_)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_what_a_mini_batch_fit_keeps_and_what_counts_against_the_limit(planar, backend, monkeypatch):
    """The epoch buffer (X's shape, every mini-batch X's) is kept with the
    other buffers while it is at most KEEP_EPOCH_BUFFER_BYTES, and taken over
    by the next fit of that shape; the buffers count against
    KEEP_FIT_BUFFERS_BYTES once each, without the optimizer's moments (the
    state's own arrays, kept with it anyway) and the epoch buffer."""
    X, Y = planar
    kw = dict(batch_size=64, optimizer="adam", seed=1)
    monkeypatch.setattr(fit, "EPOCH_GATHER_BYTES", 0)
    net = NeuralNetwork([2, 5, 1], backend=backend, seed=2).fit(X, Y, 1, 0.01, **kw)
    kept = net._fit_buffers[2]
    epoch_buffer = kept[-1]
    assert epoch_buffer.shape == X.shape
    net.fit(X[::-1].copy(), Y, 1, 0.01, **kw)
    assert net._fit_buffers[2][-1] is epoch_buffer
    moments = {id(a) for k in ("V_W", "V_b", "S_W", "S_b") for a in net._optimizer_state[k]}
    own = {id(a): a.nbytes for a in fit._arrays(kept) if id(a) not in moments and a is not epoch_buffer}
    assert len(moments) == 4 * net.n_layers and sum(own.values()) < sum(a.nbytes for a in fit._arrays(kept))
    for limit, epoch_limit, keeps in ((sum(own.values()), X.nbytes, True), (sum(own.values()) - 1, X.nbytes, False),
                                      (sum(own.values()), X.nbytes - 1, False)):
        monkeypatch.setattr(fit, "KEEP_FIT_BUFFERS_BYTES", limit)
        monkeypatch.setattr(fit, "KEEP_EPOCH_BUFFER_BYTES", epoch_limit)
        net = NeuralNetwork([2, 5, 1], backend=backend, seed=2).fit(X, Y, 1, 0.01, **kw)
        assert (net._fit_buffers is not None) == keeps, (limit, epoch_limit)


@pytest.mark.parametrize("backend", ["numba", "parallel"])
def test_later_fits_compile_nothing(planar, backend):
    """Only a process's first fit may compile (or load from Numba's cache):
    later fits, with kept buffers, a new X or a new m, start no compilation
    (a typed list's setitem called from Python did, ~0.1 s in every process)."""
    from numba.core import event

    X, Y = planar
    net = NeuralNetwork([2, 4, 1], activations="tanh", backend=backend, seed=2).fit(X, Y, 1, 1.2)
    compiled = []

    class Listener(event.Listener):
        def on_start(self, ev):
            compiled.append(ev.data["dispatcher"])

        def on_end(self, ev):
            pass

    with event.install_listener("numba:compile", Listener()):
        net.fit(X, Y, 5, 1.2)
        net.fit(X[:, ::-1].copy(), Y, 5, 1.2)
        net.fit(X[:, :50].copy(), Y[:, :50], 5, 1.2)
    assert compiled == []


@pytest.mark.parametrize("fail_at", [0, 1, 2, 3])
def test_fit_chunk_keeps_the_last_finite_parameters_after_any_number_of_trades(fail_at):
    """fit_chunk run by the interpreter (the source the compiled programs
    share) with a step that reports non-finite values at call ``fail_at``:
    it returns (fail_at, DIVERGED) and W, b hold the parameters after
    fail_at steps, whether the local names were traded an odd or even number
    of times."""
    from kernels import cpu
    from model import training

    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(3, 6)), (rng.random((1, 6)) > 0.5).astype(np.float64)
    net = NeuralNetwork([3, 4, 1], activations="tanh", backend="numpy", seed=1)
    good = NeuralNetwork([3, 4, 1], activations="tanh", backend="numpy", seed=1).fit(X, Y, fail_at, 0.5)
    p = net.program
    real_update = p.update
    calls = []

    def update(*args):
        ok = real_update(*args)
        calls.append(ok)
        return ok and len(calls) <= fail_at

    ns = dict(p.fit_chunk.__globals__, update=update)
    fit_chunk = cpu.rebind(training.fit_chunk, ns)
    buf, W_next, b_next, zeros, codes, _ = net._fit_scratch(X)
    W, b = list(net._W), list(net._b)
    costs = np.full(1, np.nan)
    lists = [W, b, W_next, b_next, buf["Z"], buf["A"], buf["dZ"], buf["dA"], buf["dW"], buf["db"]]
    done, status = fit_chunk(costs, lists, X, zeros, Y, codes, 0, 6, 100, 0.5, 1e-16, False)
    assert (done, status) == (fail_at, training.DIVERGED)
    for l in range(2):
        np.testing.assert_array_equal(W[l], good.parameters[f"W{l + 1}"])
        np.testing.assert_array_equal(b[l], good.parameters[f"b{l + 1}"])


def test_zero_initialization_keeps_hidden_units_identical(planar):
    """The symmetry lesson: with zero weights every hidden unit of a layer gets
    the same gradient, so they stay identical however long we train."""
    X, Y = planar
    net = NeuralNetwork([2, 5, 3, 1], activations="tanh", init="zeros", backend="numba")
    net.fit(X, Y, 300, 0.5)
    p = net.parameters
    for l in (1, 2, 3):
        W, b = p[f"W{l}"], p[f"b{l}"]
        assert (W == W[0]).all() and (b == b[0]).all()


def test_predict_predict_proba_forward(planar):
    X, Y = planar
    net = NeuralNetwork([2, 4, 1], activations="tanh", seed=2).fit(X, Y, 200, 1.2)
    proba = net.predict_proba(X)
    assert proba.shape == (1, 400) and ((proba > 0) & (proba < 1)).all()
    pred = net.predict(X)
    assert pred.shape == (1, 400) and pred.dtype == np.int64
    np.testing.assert_array_equal(pred, (proba > 0.5).astype(int))
    assert net.accuracy(X, Y) == np.mean(pred == Y)
    AL, caches = net.forward(X)
    np.testing.assert_array_equal(AL, proba)
    assert len(caches) == 2 and caches[0]["A_prev"].shape == (2, 400)
    np.testing.assert_allclose(caches[0]["Z"], caches[0]["W"] @ X + caches[0]["b"], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(caches[0]["A"], np.tanh(caches[0]["Z"]), rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(caches[1]["A_prev"], caches[0]["A"])


def test_parameters_are_copies():
    net = NeuralNetwork([2, 3, 1], seed=0)
    p = net.parameters
    p["W1"][:] = 7.0
    assert not (net.parameters["W1"] == 7.0).any()


def test_float32_network_trains_in_float32(planar):
    X, Y = planar
    net = NeuralNetwork([2, 4, 1], activations="tanh", seed=2, dtype="float32", backend="numba")
    net.fit(X, Y, 500, 1.2)
    assert all(v.dtype == np.float32 for v in net.parameters.values())
    assert net.predict_proba(X).dtype == np.float32
    assert net.costs_[-1] < net.costs_[0]


def test_logistic_regression_api(planar):
    X, Y = planar
    lr = LogisticRegression(2)
    p = lr.parameters
    assert set(p) == {"w", "b"} and p["w"].shape == (2, 1) and not p["w"].any() and p["b"] == 0.0
    g = lr.gradients(X, Y)
    assert set(g) == {"dw", "db"} and g["dw"].shape == (2, 1) and isinstance(g["db"], float)
    # at w = 0, b = 0: a = 1/2, dw = X (a - y) / m, db = mean(a - y)
    np.testing.assert_allclose(g["dw"], X @ (0.5 - Y).T / 400, rtol=1e-12)
    assert g["db"] == pytest.approx(float(np.mean(0.5 - Y)), abs=1e-15)
    lr.fit(X, Y, 100, 0.5)
    assert lr.costs_[0] == pytest.approx(np.log(2)) and lr.costs_.size == 1
    assert lr.predict(X).shape == (1, 400)
    lr.set_parameters({"w": np.ones((2, 1)), "b": 0.5})
    assert lr.parameters["b"] == 0.5
    with pytest.raises(ValueError, match=r"shape \(3, 1\)"):
        lr.set_parameters({"w": np.ones((3, 1)), "b": 0.5})
    with pytest.raises(ValueError, match="'w'"):
        lr.set_parameters({"W1": np.ones((1, 2)), "b1": np.zeros((1, 1))})


# ----------------------------------------------------------- gradient checking


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradient_check_every_activation(activation):
    X, Y = small_data()
    net = NeuralNetwork([3, 5, 4, 1], activations=activation, init="xavier", seed=1, backend="numpy")
    assert gradient_check(net, X, Y) < 2e-7  # the course's threshold


@pytest.mark.parametrize("backend", ["python", "numba"])
def test_gradient_check_loop_backends(backend):
    X, Y = small_data()
    net = NeuralNetwork([3, 4, 3, 1], activations=["tanh", "relu"], init="xavier", seed=3, backend=backend)
    assert gradient_check(net, X, Y) < 2e-7
    lr = LogisticRegression(3, backend=backend).set_parameters({"w": np.array([[0.3], [-0.2], [0.1]]), "b": 0.1})
    assert gradient_check(lr, X, Y) < 2e-7


def test_gradient_check_catches_a_wrong_gradient():
    X, Y = small_data()
    net = NeuralNetwork([3, 4, 1], activations="tanh", init="xavier", seed=1)

    class Broken(NeuralNetwork):  # backpropagation with a dropped factor
        def gradients(self, X, Y):
            g = super().gradients(X, Y)
            g["dW1"] = 2 * g["dW1"]
            return g

    broken = Broken([3, 4, 1], activations="tanh").set_parameters(net.parameters)
    assert gradient_check(broken, X, Y) > 1e-2
    assert gradient_check(net, X, Y) < 2e-7


def test_gradient_check_leaves_the_network_alone():
    X, Y = small_data()
    net = NeuralNetwork([3, 4, 1], activations="tanh", init="xavier", seed=1).fit(X, Y, 3, 0.1)
    before = net.parameters
    gradient_check(net, X, Y)
    assert net.n_iter_ == 3
    for k, v in before.items():
        np.testing.assert_array_equal(net.parameters[k], v)


# ------------------------------------------------------------------ save/load


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_save_then_load_predicts_identically(tmp_path, planar, dtype):
    X, Y = planar
    net = NeuralNetwork([2, 5, 3, 1], activations=["tanh", "relu"], seed=4, dtype=dtype).fit(X, Y, 50, 0.5)
    path = tmp_path / "net.npz"
    net.save(path)
    loaded = NeuralNetwork.load(path)
    assert loaded.layer_dims == net.layer_dims and loaded.activations == net.activations
    assert loaded.dtype == net.dtype
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))
    assert [p.name for p in tmp_path.iterdir()] == ["net.npz"]  # no temporary file left


@pytest.mark.parametrize("made", [dict(init="he", seed=7), dict(init="random", init_scale=10.0, seed=0),
                                  dict(init="xavier", seed=None)])
def test_a_loaded_or_copied_network_says_how_it_was_made(tmp_path, planar, made):
    # the repr of a loaded network read init='zeros', seed=None: not what its parameters came from
    X, Y = planar
    net = NeuralNetwork([2, 4, 1], activations="tanh", **made).fit(X, Y, 5, 0.1)
    net.save(tmp_path / "net.npz")
    for other in (NeuralNetwork.load(tmp_path / "net.npz", backend="numba"), net._clone()):
        assert (other.init, other.init_scale, other.seed) == (net.init, net.init_scale, net.seed)
        assert repr(other) == repr(net).replace("'numpy'", repr(other.backend))
    # a file saved before the record existed still loads; its network cannot say, and reads "zeros"
    arrays = {k: v for k, v in np.load(tmp_path / "net.npz").items() if k not in ("init", "init_scale", "seed")}
    np.savez(tmp_path / "old.npz", **arrays)
    old = NeuralNetwork.load(tmp_path / "old.npz")
    assert old.init == "zeros" and old.seed is None
    np.testing.assert_array_equal(old.predict_proba(X), net.predict_proba(X))
    # a corrupt record is an error that says so
    np.savez(tmp_path / "bad.npz", **{**arrays, "init": np.array("uniform"), "init_scale": np.array(np.nan),
                                      "seed": np.array(-1)})
    with pytest.raises(ValueError, match="corrupt record of its initialization.*unknown init 'uniform'"):
        NeuralNetwork.load(tmp_path / "bad.npz")
    for seed in (np.inf, 3.9, "7", True, np.array([1, 2])):  # a seed is one integer, or the record is corrupt
        np.savez(tmp_path / "bad.npz", **{**arrays, "init": np.array("he"), "init_scale": np.array(np.nan),
                                          "seed": np.array(seed)})
        with pytest.raises(ValueError, match="corrupt record of its initialization"):
            NeuralNetwork.load(tmp_path / "bad.npz")


def test_load_logistic_regression(tmp_path, planar):
    X, Y = planar
    lr = LogisticRegression(2).fit(X, Y, 20, 0.5)
    lr.save(tmp_path / "lr.npz")
    loaded = NeuralNetwork.load(tmp_path / "lr.npz")
    assert isinstance(loaded, LogisticRegression)
    np.testing.assert_array_equal(loaded.predict_proba(X), lr.predict_proba(X))


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved network"):
        NeuralNetwork.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="corrupt"):
        NeuralNetwork.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", a=np.ones(3))
    with pytest.raises(ValueError, match="not a jitloops network file"):
        NeuralNetwork.load(tmp_path / "other.npz")
    # a file whose parameters do not match its architecture
    net = NeuralNetwork([2, 3, 1], seed=0)
    arrays = {**net._architecture(), **{f"param_{k}": v for k, v in net.parameters.items()}}
    arrays["param_W1"] = np.ones((4, 2))
    np.savez(tmp_path / "mismatch.npz", **arrays)
    with pytest.raises(ValueError, match=r"does not match.*W1 has shape \(4, 2\)"):
        NeuralNetwork.load(tmp_path / "mismatch.npz")
    # a truncated file (a crash mid-write without the atomic rename)
    net.save(tmp_path / "good.npz")
    data = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt"):
        NeuralNetwork.load(tmp_path / "cut.npz")


def test_save_is_atomic(tmp_path, monkeypatch):
    """A crash while writing leaves the previous file intact and no temporary file."""
    good = NeuralNetwork([2, 3, 1], seed=0)
    path = tmp_path / "net.npz"
    good.save(path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(network.np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        NeuralNetwork([2, 3, 1], seed=1).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["net.npz"]


# ---------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("method", ["fit", "cost", "accuracy", "predict"])
def test_transposed_X_is_explained(planar, method):
    X, Y = planar
    net = NeuralNetwork([2, 4, 1])
    call = {"fit": lambda: net.fit(X.T, Y, 1, 0.1), "cost": lambda: net.cost(X.T, Y),
            "accuracy": lambda: net.accuracy(X.T, Y), "predict": lambda: net.predict(X.T)}[method]
    with pytest.raises(ValueError, match=r"X has shape \(400, 2\) but the network expects n_x = 2 rows; "
                                         r"examples are columns, did you mean X\.T\?"):
        call()


@pytest.mark.parametrize("X, Y, error, message", [
    (np.ones(4), np.ones((1, 4)), ValueError, r"X must be a 2-D array.*1-D array of shape \(4,\)"),
    (np.ones((3, 4)), np.ones((1, 4)), ValueError, r"expects n_x = 2 rows"),
    (np.array([["a", "b"], ["c", "d"]]), np.ones((1, 2)), TypeError, r"X must hold numbers"),
    (np.array([[1.0, np.nan], [0, 0]]), np.ones((1, 2)), ValueError, r"X contains NaN or infinity"),
    (np.array([[1.0, np.inf], [0, 0]]), np.ones((1, 2)), ValueError, r"X contains NaN or infinity"),
    (np.ones((2, 4)), np.ones(4), ValueError, r"Y must be a 2-D array.*Y\.reshape\(1, -1\)"),
    (np.ones((2, 4)), np.ones((4, 1)), ValueError, r"Y has shape \(4, 1\).*did you mean Y\.T"),
    (np.ones((2, 4)), np.ones((1, 3)), ValueError, r"X has m = 4 examples \(columns\) but Y has 3"),
    (np.ones((2, 4)), np.array([[0, 1, 2, 1]]), ValueError, r"Y must hold labels 0 and 1 only.*2"),
    (np.ones((2, 4)), np.array([[0, 1, 0.5, 1]]), ValueError, r"labels 0 and 1 only.*0\.5"),
    (np.ones((2, 0)), np.ones((1, 0)), ValueError, r"X has no examples"),
    (np.full((2, 2), 1e300), np.ones((1, 2)), ValueError, r"too large for float32"),
])
def test_bad_inputs_get_their_message(X, Y, error, message):
    net = NeuralNetwork([2, 4, 1], dtype="float32" if "float32" in message else "float64")
    with pytest.raises(error, match=message):
        net.fit(X, Y, 1, 0.1)
    with pytest.raises(error, match=message):
        net.cost(X, Y)


def test_bool_and_int_labels_are_accepted(planar):
    X, Y = planar
    costs = [NeuralNetwork([2, 3, 1], seed=0).fit(X, y, 3, 0.5).costs_[0]
             for y in (Y, Y.astype(bool), Y.astype(np.float32), Y.tolist())]
    assert len(set(costs)) == 1


@pytest.mark.parametrize("kwargs, message", [
    (dict(iterations=-1), "iterations must be an int >= 0"),
    (dict(iterations=2.5), "iterations must be an int"),
    (dict(learning_rate=0), "learning_rate must be a finite number > 0"),
    (dict(learning_rate=float("nan")), "learning_rate must be a finite number > 0"),
    (dict(cost_every=0), "cost_every must be an int >= 1"),
])
def test_bad_fit_arguments(planar, kwargs, message):
    X, Y = planar
    args = dict(iterations=1, learning_rate=0.1) | kwargs
    with pytest.raises(ValueError, match=message):
        NeuralNetwork([2, 3, 1]).fit(X, Y, **args)


def test_set_parameters_checks_keys_shapes_dtypes_values():
    net = NeuralNetwork([2, 3, 1], seed=0)
    good = net.parameters
    with pytest.raises(ValueError, match="missing b2"):
        net.set_parameters({k: v for k, v in good.items() if k != "b2"})
    with pytest.raises(ValueError, match="unexpected 'W3'"):
        net.set_parameters(good | {"W3": np.ones((1, 1))})
    with pytest.raises(ValueError, match=r"W1 has shape \(2, 3\) but the network needs \(3, 2\)"):
        net.set_parameters(good | {"W1": good["W1"].T})
    with pytest.raises(TypeError, match=r"W2 has dtype float32 but the network is float64.*astype"):
        net.set_parameters(good | {"W2": good["W2"].astype(np.float32)})
    with pytest.raises(ValueError, match="b1 contains NaN"):
        net.set_parameters(good | {"b1": np.full((3, 1), np.nan)})
    with pytest.raises(TypeError, match="must be a dict"):
        net.set_parameters([good["W1"]])
    np.testing.assert_array_equal(net.parameters["W1"], good["W1"])  # unchanged after the failures


# -------------------------------------------------- divergence and interruption


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_divergence_stops_with_finite_parameters(planar, backend):
    X, Y = planar
    net = NeuralNetwork([2, 4, 1], activations="relu", backend=backend, seed=2)
    with pytest.raises(DivergenceError, match=r"diverged at iteration \d+.*smaller learning rate") as info:
        net.fit(X, Y, 1000, 1e6)
    assert isinstance(info.value, FloatingPointError)
    assert 0 < net.n_iter_ < 1000
    assert str(net.n_iter_) in str(info.value)
    assert all(np.isfinite(v).all() for v in net.parameters.values())
    assert np.isfinite(net.costs_).all()
    # the kept parameters are exactly those after n_iter_ iterations
    again = NeuralNetwork([2, 4, 1], activations="relu", backend=backend, seed=2).fit(X, Y, net.n_iter_, 1e6)
    for k, v in again.parameters.items():
        np.testing.assert_array_equal(net.parameters[k], v)


def test_device_style_chunks_stop_at_the_same_iteration(planar, monkeypatch):
    """What the model does on a backend whose host syncs are costly ("cuda"):
    each chunk runs without the per-iteration finiteness test, the parameters
    are tested once at its end, and a chunk that diverged runs again, guarded,
    from its starting parameters. Played here on the numpy kernels: the same
    error, iteration, costs and parameters as the guarded fit, exactly. The
    CPU backends themselves keep the per-iteration guard."""
    assert not any(kernels.get_backend(name).syncs_are_costly for name in ("python", "numpy", "numba"))

    class DeviceLike(kernels.Ops):
        syncs_are_costly = True

    X, Y = planar
    monkeypatch.setattr(fit, "CHUNK_SECONDS", 1e9)  # two chunks: iteration 0, then the rest
    nets, messages = {}, {}
    for kind in ("guarded", "device-like"):
        net = NeuralNetwork([2, 4, 1], activations="relu", backend="numpy", seed=2)
        if kind == "device-like":
            net._ops = DeviceLike("numpy", net._ops.kernels)
            calls = []
            p = net.program
            for name in ("fit_chunk", "fit_chunk_unguarded"):
                def spied(*args, _run=getattr(p, name), _name=name):
                    calls.append((_name, args[6]))  # start
                    return _run(*args)
                monkeypatch.setattr(p, name, spied)
        with pytest.raises(DivergenceError) as info:
            net.fit(X, Y, 1000, 1e6)
        nets[kind], messages[kind] = net, str(info.value)
    assert calls == [("fit_chunk_unguarded", 0), ("fit_chunk_unguarded", 1), ("fit_chunk", 1)]
    ref, net = nets["guarded"], nets["device-like"]
    assert messages["device-like"] == messages["guarded"]
    assert net.n_iter_ == ref.n_iter_ > 1
    np.testing.assert_array_equal(net.costs_, ref.costs_)
    for k, v in ref.parameters.items():
        assert np.isfinite(v).all()
        np.testing.assert_array_equal(net.parameters[k], v)


def test_logistic_regression_divergence(planar):
    X, Y = planar
    lr = LogisticRegression(2, backend="numba").set_parameters({"w": np.array([[1e300], [1e300]]), "b": 0.0})
    with pytest.raises(DivergenceError, match="iteration 0"):
        lr.fit(X * 1e10, Y, 10, 1e300)
    assert np.isfinite(lr.parameters["w"]).all() and lr.n_iter_ == 0


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals need the main thread")
@pytest.mark.parametrize("backend", ["python", "numba"])
def test_ctrl_c_leaves_a_completed_iteration(planar, backend):
    X, Y = planar
    net = NeuralNetwork([2, 4, 1], activations="tanh", backend=backend, seed=2)
    net.fit(X, Y, 2, 1.2)  # compile outside the timer
    net = NeuralNetwork([2, 4, 1], activations="tanh", backend=backend, seed=2)
    # Python's own handler, whatever this process inherited (a shell starts
    # a background job with SIGINT ignored, and Python keeps that)
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            net.fit(X, Y, 10**7, 1.2)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, inherited)
    assert 0 < net.n_iter_ < 10**7
    again = NeuralNetwork([2, 4, 1], activations="tanh", backend=backend, seed=2).fit(X, Y, net.n_iter_, 1.2)
    for k, v in again.parameters.items():
        np.testing.assert_array_equal(net.parameters[k], v)
    assert net.costs_.size == again.costs_.size


def test_progress_bar_writes_to_stderr(planar, capsys):
    X, Y = planar
    NeuralNetwork([2, 3, 1], seed=0).fit(X, Y, 300, 0.5, progress=True)
    err = capsys.readouterr().err
    assert "300/300" in err and "numpy" in err


def test_unavailable_backend_is_explained():
    reason = kernels.unavailable_reason("cuda")
    if reason is None:
        pytest.skip("cuda is available here")
    with pytest.raises(kernels.BackendUnavailableError):
        NeuralNetwork([2, 3, 1], backend="cuda")


def test_parallel_fit_keeps_blas_to_one_thread(planar, monkeypatch):
    """NumPy's BLAS threads must not compete with Numba's during a parallel
    fit that runs threads; a network too small for them (the parallel
    backend then runs the serial program) leaves BLAS as it was. NumPy's
    own BLAS: where SciPy is installed, Numba's first compile loads SciPy's
    OpenBLAS beside it, which NumPy's products do not run on."""
    from threadpoolctl import threadpool_info

    from model._fit_env import is_numpy_library

    def numpy_blas_threads():
        blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
        return [i["num_threads"] for i in blas if is_numpy_library(i["filepath"])] or [i["num_threads"] for i in blas]

    X, Y = planar
    before = numpy_blas_threads()
    assert before
    seen = []
    runner = NeuralNetwork._chunk_runner

    def spy(self, *args):
        chunk = runner(self, *args)

        def spied(start, count):
            seen.append(numpy_blas_threads())
            return chunk(start, count)
        return spied

    monkeypatch.setattr(NeuralNetwork, "_chunk_runner", spy)
    big_X, big_Y = np.tile(X, 50), np.tile(Y, 50)  # 20000 examples: loops big enough for threads
    NeuralNetwork([2, 4, 1], activations="tanh", backend="parallel", seed=2).fit(big_X, big_Y, 3, 1.2)
    assert seen and all(n == 1 for threads in seen for n in threads)
    seen.clear()
    NeuralNetwork([2, 4, 1], activations="tanh", backend="parallel", seed=2).fit(X, Y, 3, 1.2)
    assert seen and all(threads == before for threads in seen)
    assert numpy_blas_threads() == before


def test_numpy_library_is_told_by_its_folder():
    from model._fit_env import is_numpy_library
    assert is_numpy_library("/env/site-packages/numpy.libs/libscipy_openblas64_-32a4b2a6.so")
    assert not is_numpy_library("/env/site-packages/scipy.libs/libscipy_openblas-6cdc3b4a.so")
    assert not is_numpy_library("/usr/lib/x86_64-linux-gnu/libopenblas.so.0")
    assert not is_numpy_library(None)


def test_cost_uses_the_backends_exact_math_like_fit(planar):
    """On "python" (exact math by default) cost() and the costs fit records
    use the same log: the cost before a fit equals that fit's first recorded
    cost to the last bit (cost() once called the approximate log there)."""
    X, Y = planar
    for backend in ("python", "numba"):
        net = NeuralNetwork([2, 4, 1], activations="tanh", backend=backend, seed=2)
        before = net.cost(X, Y)
        net.fit(X, Y, 1, 1.2)
        assert net.costs_[0] == before, backend


def test_exact_math_reaches_the_compiled_training_loop(planar):
    """A compiled backend asked for exact math trains with it: its costs equal
    the interpreted exact backend's within a few ulp of the cost, and differ
    from the approximate default at least somewhere."""
    import kernels
    from model import network as network_module

    X, Y = planar
    exact = NeuralNetwork([2, 4, 1], activations="tanh", backend="numba", seed=2)
    exact._ops = kernels.get_backend("numba", exact_math=True)
    exact._program = None
    exact.fit(X, Y, 50, 1.2, cost_every=1)
    python = NeuralNetwork([2, 4, 1], activations="tanh", backend="python", seed=2).fit(X, Y, 50, 1.2, cost_every=1)
    np.testing.assert_allclose(exact.costs_, python.costs_, rtol=1e-12)
    assert network_module.NeuralNetwork is NeuralNetwork
