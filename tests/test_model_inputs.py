"""The model's boundary, tried as a careless user would: what was made
cannot be changed under the compiled code, every int the compiled loops take
fits their int64, seeds use all the bits they are given or say they cannot,
and a forward pass that overflowed says so instead of answering NaN."""

import copy
import os
import pickle
import re
import stat

import numpy as np
import pytest

from jitloops.cli import main
from model import DivergenceError, LogisticRegression, NeuralNetwork, datasets, gradient_check
from model.network import FIXED

COMPILED = ["numpy", "numba"]  # the interpreted reference and one compiled backend


@pytest.fixture(scope="module")
def data():
    X = np.random.RandomState(0).randn(2, 40)
    return X, (X[:1] > 0).astype(np.float64)


# ---------------------------------------------------- what a network is made with


@pytest.mark.parametrize("name", FIXED)
def test_what_a_network_is_made_with_is_read_only(name):
    # a new layer_dims or dtype under kept buffers and a compiled program once corrupted memory
    net = NeuralNetwork([2, 5, 3, 1], backend="numba", seed=1)
    before = getattr(net, name)
    with pytest.raises(AttributeError, match=f"NeuralNetwork.{name} is fixed when the network is made"):
        setattr(net, name, before)
    with pytest.raises(AttributeError, match="make a new network"):
        delattr(net, name)
    assert getattr(net, name) == before


@pytest.mark.parametrize("backend", COMPILED)
def test_read_only_attributes_travel_with_pickle_and_copies(data, backend):
    X, Y = data
    net = NeuralNetwork([2, 5, 1], backend=backend, seed=1, dtype="float32").fit(X, Y, 3, 0.1)
    for other in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net)):
        assert [getattr(other, n) for n in FIXED] == [getattr(net, n) for n in FIXED]
        np.testing.assert_array_equal(other.predict_proba(X), net.predict_proba(X))
        with pytest.raises(AttributeError):
            other.layer_dims = (2, 1)


def test_a_pickle_from_before_the_attributes_were_read_only_loads(data):
    X, Y = data
    net = NeuralNetwork([2, 5, 1], backend="numba", seed=1)
    state = net.__getstate__()
    for name in FIXED:  # the state as it was pickled then: the attributes under their own names
        state[name] = state.pop("_" + name)
    old = NeuralNetwork.__new__(NeuralNetwork)
    old.__setstate__(state)
    assert old.layer_dims == (2, 5, 1) and old.backend == "numba"
    np.testing.assert_array_equal(old.predict_proba(X), net.predict_proba(X))


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(seed=1.5), TypeError, "seed must be an int or None, got float 1.5; pass e.g. seed=0"),
    (dict(seed="a"), TypeError, "seed must be an int or None, got str 'a'"),
    (dict(seed=-1), ValueError, r"seed must be in [0, 2**32 - 1]"),
    (dict(seed=2**32), ValueError, r"seed must be in [0, 2**32 - 1]"),
    (dict(dtype=[1]), TypeError, "dtype must be 'float32' or 'float64', got [1]"),
    (dict(dtype="int64"), TypeError, "dtype must be 'float32' or 'float64'"),
    (dict(init="random", init_scale=1e300, dtype="float32"), ValueError,
     "init_scale=1e+300 makes weights too large for float32 (they become infinite)"),
])
def test_bad_construction_is_explained(kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        NeuralNetwork([2, 3, 1], **kwargs)


def test_numpy_ints_and_none_are_taken_as_numpy_takes_them():
    assert NeuralNetwork([2, 3, 1], seed=np.int64(4)).seed == 4
    assert NeuralNetwork([2, 3, 1], seed=np.array(4)).seed == 4
    assert NeuralNetwork([2, 3, 1], dtype=None).dtype == np.float64  # NumPy's default dtype


# ------------------------------------------------------------------- fit's ints


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("kwargs, message", [
    (dict(seed=2**32), "seed must be at most 4294967295 (the batches' and dropout masks' draws hash 32 bits"),
    (dict(seed=np.uint64(2**63)), "seed must be at most 4294967295"),
    (dict(seed=2**64), "seed must be at most 4294967295"),
    (dict(decay_every=2**64), "decay_every must be at most 9223372036854775807 (the compiled loops count in 64-bit"),
    (dict(n_iter_no_change=2**63), "n_iter_no_change must be at most 9223372036854775807"),
    (dict(cost_every=2**80), "cost_every must be at most 9223372036854775807"),
    (dict(epochs=2**70), "epochs must be at most 9223372036854775807"),
    (dict(batch_size=2**63), "batch_size must be at most 9223372036854775807"),
])
def test_ints_past_what_the_compiled_loops_take_are_refused_alike(data, backend, kwargs, message):
    # the compiled backends once failed in Numba's typing or with a bare OverflowError, numpy trained on
    X, Y = data
    net = NeuralNetwork([2, 5, 1], backend=backend, seed=1)
    args = dict(epochs=1, learning_rate=0.1, batch_size=16) | kwargs
    with pytest.raises(ValueError, match=re.escape(message)):
        net.fit(X, Y, **args)
    assert net.n_iter_ == 0
    net.fit(X, Y, 1, 0.1, batch_size=16, seed=2**32 - 1)  # the largest seed trains
    assert net.n_iter_ == 1


def test_seeds_differing_past_32_bits_are_not_taken_for_one_another(data):
    # 2**32 once trained on exactly the batches of seed 0
    X, Y = data
    first = NeuralNetwork([2, 5, 1], seed=1).fit(X, Y, 2, 0.1, batch_size=8, seed=0)
    with pytest.raises(ValueError, match="seed must be at most"):
        NeuralNetwork([2, 5, 1], seed=1).fit(X, Y, 2, 0.1, batch_size=8, seed=2**32)
    assert len(first.costs_) == 1


@pytest.mark.parametrize("keep_prob, error, message", [
    ("0.5", TypeError, "keep_prob must be a number in (0, 1] or one per hidden layer (1), got '0.5'"),
    (1e-9, ValueError, "keep_prob 1e-09 is below 2**-24 (about 6e-08), the smallest probability the dropout masks"),
    ([0.5, 1e-8], ValueError, "keep_prob 1e-08 is below 2**-24"),
])
def test_keep_prob_that_cannot_be_drawn_is_explained(data, keep_prob, error, message):
    X, Y = data
    with pytest.raises(error, match=re.escape(message)):
        NeuralNetwork([2, 5, 1]).fit(X, Y, 1, 0.1, keep_prob=keep_prob)


def test_keep_prob_without_a_hidden_layer_is_refused(data):
    X, Y = data
    for net in (NeuralNetwork([2, 1]), LogisticRegression(2)):
        with pytest.raises(ValueError, match="this network has no hidden layer, and dropout never applies"):
            net.fit(X, Y, 1, 0.1, keep_prob=0.5)
        assert net.fit(X, Y, 1, 0.1, keep_prob=1.0).n_iter_ == 1


def test_zero_dimensional_arrays_count_as_numbers(data):
    X, Y = data
    a = NeuralNetwork([2, 5, 1], seed=1).fit(X, Y, 2, np.array(0.1), batch_size=16, keep_prob=np.array(0.5),
                                             seed=np.array(3))
    b = NeuralNetwork([2, 5, 1], seed=1).fit(X, Y, 2, 0.1, batch_size=16, keep_prob=0.5, seed=3)
    np.testing.assert_array_equal(a.costs_, b.costs_)


# --------------------------------------------------------- an overflowing forward


def _overflowing(backend, output="sigmoid"):
    """A network whose forward pass makes inf - inf = NaN in the output layer's Z
    on a finite X of large values."""
    C = 1 if output == "sigmoid" else 3
    net = NeuralNetwork([2, 2, C], backend=backend, output=output)
    W2 = np.array([[1.0, -1.0]]) if C == 1 else np.array([[1.0, -1.0], [0.0, 1.0], [0.0, 0.0]])
    net.set_parameters(dict(W1=np.full((2, 2), 1e200), b1=np.zeros((2, 1)), W2=W2, b2=np.zeros((C, 1))))
    X = np.abs(np.random.RandomState(0).randn(2, 10)) * 1e200 + 1e199
    return net, X, np.zeros((1, 10))


@pytest.mark.parametrize("backend", COMPILED + ["parallel"])
@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
def test_an_overflowing_forward_pass_is_an_error_not_nan(backend, output):
    # predict_proba answered NaN, predict turned it into 0, accuracy counted those
    net, X, Y = _overflowing(backend, output)
    message = (r"the forward pass overflowed float64 for 10 of the 10 examples .* X's largest magnitude is "
               + re.escape(f"{np.abs(X).max():.3g}"))
    with np.errstate(over="ignore", invalid="ignore"):  # the numpy backend's own warnings
        for call in (lambda: net.predict_proba(X), lambda: net.predict(X), lambda: net.accuracy(X, Y),
                     lambda: net.cost(X, Y), lambda: net.gradients(X, Y), lambda: net.forward(X)):
            with pytest.raises(ValueError, match=message):
                call()
        assert np.isfinite(net.predict_proba(X / 1e200)).all()  # the same network on a scaled X


def test_divergence_names_the_scale_of_X(data):
    X, Y = data
    with np.errstate(all="ignore"), pytest.raises(DivergenceError, match=r"or scale X where its values are large "
                                                  r"\(its largest magnitude: 2\.\d+e\+300\)"):
        NeuralNetwork([2, 5, 1], backend="numba", seed=1).fit(X * 1e300, Y, 5, 1e-12)


# ------------------------------------------------------------- gradient_check, save


def test_gradient_check_arguments(data):
    X, Y = data
    net = NeuralNetwork([2, 3, 1], seed=0)
    assert gradient_check(net, X, Y, epsilon=np.float64(1e-7)) < 1e-7
    for epsilon in (True, float("inf"), 0, "1e-7"):
        with pytest.raises(ValueError, match="epsilon must be a finite number > 0"):
            gradient_check(net, X, Y, epsilon=epsilon)
    with pytest.raises(TypeError, match="gradient_check needs a NeuralNetwork or LogisticRegression to check, "
                                        "got str"):
        gradient_check("net", X, Y)


def test_save_to_a_folder_or_a_missing_folder_is_explained(tmp_path):
    net = NeuralNetwork([2, 3, 1])
    with pytest.raises(IsADirectoryError, match="that is a folder; give a file name"):
        net.save(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        net.save(tmp_path / "missing" / "net.npz")
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


@pytest.mark.parametrize("args, message", [
    (["--save", "{tmp}/missing/net.npz"], "does not exist; create it first"),
    (["--save", "{tmp}"], "is a folder; give a file name"),
    (["--hidden", "4,,3"], "--hidden must be comma-separated ints"),
])
def test_train_command_refuses_before_training(tmp_path, capsys, args, message):
    args = [a.format(tmp=tmp_path) for a in args]
    assert main(["train", "--iterations", "3", "--no-progress", *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "iterations in" not in captured.out


def test_datasets_share_the_seed_check():
    with pytest.raises(TypeError, match=re.escape("seed must be an int or None, got float 1.0; pass e.g. seed=0 "
                                                  "(None draws fresh data every call)")):
        datasets.moons(seed=1.0)


# ---------------------------------------------------- X's test for NaN and infinity


@pytest.mark.parametrize("backend", ["numpy", "python", "numba", "parallel"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_host_all_finite_finds_every_bad_cell(backend, dtype):
    # the compiled backends test X with their all_finite loop (blocks of cells, and-ed); it must
    # find one bad cell wherever it lies: first, last, at a block's edges, in a strided view
    from kernels import get_backend
    from kernels.options import BLOCK
    ops = get_backend(backend)
    assert ops.compiled == (backend in ("numba", "parallel"))
    x = np.random.RandomState(1).randn(7, 301).astype(dtype)
    assert ops.host_all_finite(x) and ops.host_all_finite(x[:, ::2]) and ops.host_all_finite(np.asfortranarray(x))
    for bad in (np.nan, np.inf, -np.inf):
        for cell in (0, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK - 1, 2 * BLOCK, x.size - 1):
            y = x.copy()
            y.flat[cell] = bad
            assert not ops.host_all_finite(y), (bad, cell)
            assert not ops.host_all_finite(np.asfortranarray(y)), (bad, cell)
        y = x.copy()
        y[3, 100] = bad  # in the view below (every other column), and in no block of x's own
        assert not ops.host_all_finite(y[:, ::2]), bad
    assert ops.host_all_finite(np.zeros((3, 0), dtype))  # no cells: nothing to find
    frozen = x.copy()
    frozen[2, 5] = np.nan
    frozen.flags.writeable = False  # np.load(mmap_mode="r"): NumPy's test, no second compiled signature
    assert not ops.host_all_finite(frozen)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_x_with_one_bad_cell_is_refused_by_every_call(data, backend, bad):
    X, Y = data
    net = NeuralNetwork([2, 5, 1], backend=backend, seed=1)
    Xb = X.copy()
    Xb[1, -1] = bad
    for call in (lambda: net.fit(Xb, Y, 1, 0.1), lambda: net.predict(Xb), lambda: net.cost(Xb, Y),
                 lambda: net.fit(Xb.astype(np.float32), Y, 1, 0.1, batch_size=8)):
        with pytest.raises(ValueError, match="X contains NaN or infinity"):
            call()
    big = X.copy()
    big[0, 0] = 1e300  # finite in float64, infinite in float32: the test after the conversion
    with pytest.raises(ValueError, match="too large for float32"):
        NeuralNetwork([2, 5, 1], backend=backend, dtype="float32", seed=1).fit(big, Y, 1, 0.1)


# ------------------------------------------------------ files and fit's own state


def test_save_refuses_what_is_not_a_regular_file(tmp_path):
    # save replaced /dev/null (as root), a named pipe, ... with a zip file
    net = NeuralNetwork([2, 3, 1])
    with pytest.raises(FileNotFoundError, match="the path is empty"):
        net.save("")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe")
        with pytest.raises(FileExistsError, match="not a regular file"):
            net.save(tmp_path / "pipe")
        assert stat.S_ISFIFO(os.stat(tmp_path / "pipe").st_mode)
    if os.path.exists(os.devnull) and not os.path.isfile(os.devnull):
        with pytest.raises(FileExistsError, match="not a regular file"):
            net.save(os.devnull)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_save_gives_a_file_the_permissions_open_would(tmp_path):
    # every saved file was the owner's alone (mkstemp's 0600), one it replaced included
    net = NeuralNetwork([2, 3, 1])
    umask = os.umask(0o022)
    try:
        net.save(tmp_path / "new.npz")
        assert stat.S_IMODE(os.stat(tmp_path / "new.npz").st_mode) == 0o644
        (tmp_path / "old.npz").write_bytes(b"")
        os.chmod(tmp_path / "old.npz", 0o640)
        net.save(tmp_path / "old.npz")
        assert stat.S_IMODE(os.stat(tmp_path / "old.npz").st_mode) == 0o640
    finally:
        os.umask(umask)
    assert NeuralNetwork.load(tmp_path / "old.npz").layer_dims == (2, 3, 1)


def test_load_explains_an_npy_file_and_a_corrupt_architecture(tmp_path):
    np.save(tmp_path / "w.npy", np.ones(3))
    with pytest.raises(ValueError, match=r"holds one NumPy array \(an \.npy file\), not a jitloops network"):
        NeuralNetwork.load(tmp_path / "w.npy")
    net = NeuralNetwork([2, 3, 1], seed=0)
    for dims in (np.array([2.0, 3.7, 1.0]), np.array(4)):  # silently 3 once; a bare TypeError once
        arrays = {**net._architecture(), **{f"param_{k}": v for k, v in net.parameters.items()}}
        arrays["layer_dims"] = dims
        np.savez(tmp_path / "bad.npz", **arrays)
        with pytest.raises(ValueError, match="corrupt architecture: layer_dims must be a list of two or more integers"):
            NeuralNetwork.load(tmp_path / "bad.npz")


@pytest.mark.parametrize("backend", COMPILED)
def test_set_parameters_starts_the_optimizer_afresh(data, backend):
    # Adam's moments and step count of the replaced parameters carried on into the next fit
    X, Y = data
    kwargs = dict(learning_rate=0.01, batch_size=16, optimizer="adam", decay_rate=0.5)
    start = NeuralNetwork([2, 5, 1], seed=1, backend=backend).parameters
    used = NeuralNetwork([2, 5, 1], seed=2, backend=backend).fit(X, Y, 4, **kwargs)
    used.set_parameters(start).fit(X, Y, 3, **kwargs)
    fresh = NeuralNetwork([2, 5, 1], seed=1, backend=backend).fit(X, Y, 3, **kwargs)
    assert used.n_iter_ == fresh.n_iter_ == 3
    for k, v in fresh.parameters.items():
        np.testing.assert_array_equal(used.parameters[k], v)


def test_an_epochs_cap_far_past_what_runs_is_not_allocated_up_front(data):
    # the cost history was filled for every epoch asked for: an early-stopping cap of 10**8
    # epochs took 1.6 GB before the first step, 10**11 a bare "Unable to allocate 745 GiB"
    X, Y = data
    net = NeuralNetwork([2, 3, 1], seed=0)
    with pytest.raises(MemoryError, match=r"records 10{15} costs .*a larger cost_every"):
        net.fit(X, Y, 10**15, 0.1, cost_every=1)
    assert net.n_iter_ == 0
    net.fit(X, Y, 10**7, 0.01, batch_size=20, validation_data=data, early_stopping=True, n_iter_no_change=2,
            tol=1.0, cost_every=1)
    assert net.n_iter_ == 3 and net.costs_.shape == net.val_costs_.shape == (3,)
    assert np.isfinite(net.costs_).all() and np.isfinite(net.val_costs_).all()


def test_progress_must_be_true_or_false(data):
    # a callable was never called and "no" showed a bar, while shuffle=1 was refused
    X, Y = data
    net = NeuralNetwork([2, 3, 1])
    for bad in ("no", print, 1):
        with pytest.raises(TypeError, match="progress must be True or False"):
            net.fit(X, Y, 1, 0.1, progress=bad)
    assert net.fit(X, Y, 1, 0.1, progress=np.bool_(False)).n_iter_ == 1


def test_logistic_regressions_b_may_be_one_element_and_is_explained_when_not():
    w = np.array([[0.3], [-0.2]])
    for b in (0.5, np.float32(0.5), np.array(0.5), np.array([0.5]), np.array([[0.5]])):
        assert LogisticRegression(2).set_parameters({"w": w, "b": b}).parameters["b"] == 0.5
    with pytest.raises(ValueError, match=r"b must be a number \(or an array of one element\), got an array of "
                                         r"shape \(2,\)"):
        LogisticRegression(2).set_parameters({"w": w, "b": np.array([0.5, 0.1])})
    with pytest.raises(ValueError, match="parameters must be a dict"):
        LogisticRegression(2).set_parameters({"w": w})


def test_planars_odd_example_goes_to_class_1():
    X, Y = datasets.planar(m=5)
    assert X.shape == (2, 5) and Y.tolist() == [[0, 0, 1, 1, 1]]


def test_a_progress_bar_whose_reader_went_does_not_stop_the_fit(data, monkeypatch):
    # `jitloops train ... 2>&1 | head -1`: the bar's write raised BrokenPipeError inside fit
    class Gone:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")
    monkeypatch.setattr("sys.stderr", Gone())
    X, Y = data
    assert NeuralNetwork([2, 3, 1]).fit(X, Y, 50, 0.1, progress=True).n_iter_ == 50


def test_load_explains_an_empty_or_unmakeable_architecture(tmp_path):
    net = NeuralNetwork([2, 3, 1], seed=0)
    for change in (dict(layer_dims=np.zeros(0, np.int64), activations=np.array([], dtype="<U4")),
                   dict(dtype=np.array("float16"))):
        arrays = {**net._architecture(), **{f"param_{k}": v for k, v in net.parameters.items()}, **change}
        np.savez(tmp_path / "bad.npz", **arrays)
        with pytest.raises(ValueError, match="bad.npz' has a corrupt architecture"):
            NeuralNetwork.load(tmp_path / "bad.npz")
    net.save(tmp_path / "good.npz")
    with pytest.raises(ValueError, match="unknown backend 'nunba'"):  # the caller's mistake, not the file's
        NeuralNetwork.load(tmp_path / "good.npz", backend="nunba")
