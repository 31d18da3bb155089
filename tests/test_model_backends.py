"""Every CPU backend trains like the numpy backend: from the same initial
parameters it follows numpy's cost curve and ends at its parameters.

Tolerances. The backends add in different orders (BLAS blocks vs loops,
threads' partial sums, FMA contraction) and take tanh/exp/log from different
libraries, so results differ at rounding level each iteration and gradient
descent carries the differences along. Measured (2-core dev box):

- float64, 1000 iterations: at most 1.3e-14 on parameters of magnitude up to
  ~7 and 1.3e-15 on costs. ATOL64 = 1e-10 leaves four orders of margin; a
  wrong gradient moves parameters by 1e-3 or more within a few iterations.
- float32, 100 iterations: at most 1.2e-7 (one ulp near 1), and 2e-6 after
  1000 iterations of the planar network. ATOL32 = 1e-5 (about 100 ulps).
  Longer float32 runs of relu networks are not compared: the backends' Z
  differ by ~1e-6 in float32 and some Z pass within 1e-7 of relu's kink at
  0, where one backend's unit is on and the other's off; from there the
  trajectories part (3e-2 after 1000 iterations) although each step's
  gradient agrees with the float64 one to ~1e-6 on both backends.
- The planar network is compared over 1000 iterations only: at learning rate
  1.2 its training has a spike near iteration 7700 where any 1e-13 difference
  grows to 1e-3 (numpy against itself started one ulp apart does the same);
  ``jitloops compare`` measures that spread on every run.
"""

import numpy as np
import pytest

from model import LogisticRegression, NeuralNetwork, datasets

ATOL64 = 1e-10
ATOL32 = 1e-5

CPU_BACKENDS = ("python", "numba", "parallel")


@pytest.fixture(scope="module")
def planar():
    return datasets.planar()


def planar_net(backend, dtype):
    return NeuralNetwork([2, 4, 1], activations="tanh", backend=backend, seed=2, dtype=dtype)


def relu4_net(backend, dtype):  # four layers with parameters
    return NeuralNetwork([2, 10, 8, 5, 1], activations="relu", backend=backend, seed=1, dtype=dtype)


def mixed_net(backend, dtype):  # the other activations, and sigmoid hidden units
    return NeuralNetwork([2, 6, 5, 4, 1], activations=["sigmoid", "leaky_relu", "linear"], backend=backend,
                         seed=3, dtype=dtype)


def logistic(backend, dtype):
    return LogisticRegression(2, backend=backend, dtype=dtype)


CASES = {  # name: (make, learning rate)
    "planar": (planar_net, 1.2),
    "relu4": (relu4_net, 0.1),
    "mixed": (mixed_net, 0.3),
    "logistic": (logistic, 0.5),
}


def iterations(backend, dtype):
    if backend == "python":
        return 20  # the interpreter runs a few ms per iteration
    if dtype == "float32":
        return 100
    # parallel: the same loop code as numba with other partial sums; fewer
    # iterations because its thread barriers crawl when a 2-core CI machine
    # is oversubscribed
    return 1000 if backend == "numba" else 300


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_backend_follows_numpy(planar, case, backend, dtype):
    X, Y = planar
    make, learning_rate = CASES[case]
    n = iterations(backend, dtype)
    atol = ATOL64 if dtype == "float64" else ATOL32
    start = make("numpy", dtype).parameters
    reference = make("numpy", dtype).set_parameters(start).fit(X, Y, n, learning_rate, cost_every=5)
    net = make(backend, dtype).set_parameters(start).fit(X, Y, n, learning_rate, cost_every=5)
    assert net.n_iter_ == reference.n_iter_ == n
    np.testing.assert_allclose(net.costs_, reference.costs_, rtol=0, atol=atol)
    assert reference.costs_[-1] < reference.costs_[0]  # it did train
    for key, value in reference.parameters.items():
        got = net.parameters[key]
        assert np.asarray(got).dtype == np.asarray(value).dtype
        np.testing.assert_allclose(got, value, rtol=0, atol=atol, err_msg=f"{case} {backend} {dtype} {key}")
    # and the same gradients and predictions at the end point
    g_ref, g = reference.gradients(X, Y), net.gradients(X, Y)
    for key in g_ref:
        np.testing.assert_allclose(g[key], g_ref[key], rtol=0, atol=atol, err_msg=key)
    np.testing.assert_allclose(net.predict_proba(X), reference.predict_proba(X), rtol=0, atol=atol)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_backends_start_from_the_same_seeded_parameters(backend):
    a = planar_net("numpy", "float64").parameters
    b = planar_net(backend, "float64").parameters
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_training_buffers_do_not_grow(planar):
    """fit allocates its buffers once: a long fit leaves no more memory behind
    than a short one (measured on the compiled backend with tracemalloc)."""
    import tracemalloc

    X, Y = planar
    net = planar_net("numba", "float64")
    net.fit(X, Y, 10, 1.2)  # compiled and warm
    peaks = []
    for n in (100, 5000):
        tracemalloc.start()
        net.fit(X, Y, n, 1.2, cost_every=10**6)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < peaks[0] + 64 * 1024, peaks


@pytest.mark.parametrize("backend", ["numba", "parallel"])
def test_compiled_fit_allocates_nothing_per_iteration(planar, backend):
    """Inside compiled code (where tracemalloc sees nothing) Numba's runtime
    counts allocations: a few per chunk of iterations, none per iteration,
    and every one freed."""
    from numba.core.runtime import _nrt_python, rtsys

    X, Y = planar
    net = planar_net(backend, "float64")
    net.fit(X, Y, 10, 1.2)
    was_enabled = _nrt_python.memsys_stats_enabled()
    _nrt_python.memsys_enable_stats()
    try:
        counts = []
        for n in (100, 5000):
            before = rtsys.get_allocation_stats()
            net.fit(X, Y, n, 1.2, cost_every=10**6)
            after = rtsys.get_allocation_stats()
            counts.append(after.alloc - before.alloc)
            assert after.alloc - before.alloc == after.free - before.free  # nothing leaks
    finally:
        if not was_enabled:
            _nrt_python.memsys_disable_stats()
    assert counts[1] - counts[0] < 1000, counts  # per iteration would be 4900 or more


def test_parallel_code_loaded_from_cache_in_a_fresh_process():
    """Regression: serial compiled functions that call parallel kernels (the
    model's training loop; the kernels' composites such as linear_backward),
    loaded from Numba's cache in a new process, segfaulted on their first call
    until the parallel backend started Numba's thread pool itself."""
    import subprocess
    import sys

    model_first = ("import numpy as np; from model import NeuralNetwork, datasets; X, Y = datasets.planar(); "
                   "net = NeuralNetwork([2, 4, 1], activations='sigmoid', backend='parallel', seed=1); "
                   "p = net.predict_proba(X); g = net.gradients(X, Y); print('ok', p.shape, sorted(g))")
    kernels_first = ("import numpy as np, kernels; ops = kernels.get_backend('parallel'); "
                     "out = ops.linear_backward(np.ones((3, 50)), np.ones((4, 50)), np.ones((3, 4))); "
                     "print('ok', float(out[1].sum()))")
    # compiled here (and so cached) before the children run
    NeuralNetwork([2, 4, 1], activations="sigmoid", backend="parallel", seed=1).predict_proba(np.ones((2, 3)))
    import kernels
    kernels.get_backend("parallel").linear_backward(np.ones((3, 50)), np.ones((4, 50)), np.ones((3, 4)))
    for code, expected in ((model_first, "ok (1, 400) ['dW1', 'dW2', 'db1', 'db2']"), (kernels_first, "ok 12.0")):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        assert expected in out.stdout


@pytest.mark.parametrize("backend", ("numpy",) + CPU_BACKENDS)
def test_read_only_data_trains_like_writable_data(planar, backend):
    """A read-only X or Y (np.load(..., mmap_mode="r"), np.broadcast_to, a
    frozen array) is data like any other. The compiled programs keep X in one
    typed list with the layers' outputs, so a read-only X once failed to type
    there (a TypingError from deep inside the training loop)."""
    X, Y = planar
    Xr, Yr = np.array(X), np.array(Y)
    Xr.setflags(write=False)
    Yr.setflags(write=False)
    for make in (planar_net, logistic):
        want = make(backend, "float64").fit(X, Y, iterations=5, learning_rate=0.5)
        got = make(backend, "float64").fit(Xr, Yr, iterations=5, learning_rate=0.5)
        np.testing.assert_array_equal(got.costs_, want.costs_)
        for key, value in want.parameters.items():
            np.testing.assert_array_equal(got.parameters[key], value)
        np.testing.assert_array_equal(got.predict(Xr), want.predict(X))
        assert not Xr.flags.writeable  # the caller's array is left as it was


def test_compiled_lists_are_numba_typed_lists():
    """Program.list builds numba.typed.List in compiled code (fit makes about
    ten per call); the result is the constructor's: same item type, items,
    and the arrays themselves (not copies)."""
    import numba.typed

    import kernels
    from model.program import get_program

    p = get_program(kernels.get_backend("numba"))
    arrays = [np.arange(6.0).reshape(2, 3), np.ones((1, 3))]
    got = p.list(arrays)
    want = numba.typed.List(arrays)
    assert isinstance(got, numba.typed.List)
    assert got._numba_type_ == want._numba_type_
    assert len(got) == 2
    got[0][0, 0] = 42.0  # the same memory as the caller's array
    assert arrays[0][0, 0] == 42.0
    # arrays the fast path does not take (here: of two dtypes) go to the
    # constructor, which raises its own error
    with pytest.raises(Exception):
        p.list([np.ones((2, 2)), np.ones((2, 2), dtype=np.float32)])


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_fits_in_pieces_take_every_step_whatever_the_lists_kept(planar, backend):
    """fit keeps its parameter lists for the next fit while the network's
    parameters are the arrays it left (and reads them back only after an
    odd number of steps, when the lists have traded arrays with the spare
    ones). Each fit(1) must be one gradient-descent step from the parameters
    the network shows (W - lr dW, dW from ``gradients``: no fit machinery),
    and fits of 3, 4 and 2 iterations must end where as many fit(1) do, bit
    for bit; new parameters set in between are the ones trained on."""
    X, Y = planar
    lr = 1.2
    net, ref = planar_net(backend, "float64"), planar_net(backend, "float64")

    def one_step_each(n):
        for _ in range(n):
            before, grads = ref.parameters, ref.gradients(X, Y)
            ref.fit(X, Y, 1, lr)
            for k, v in before.items():  # the update kernel's W - lr dW, to rounding
                np.testing.assert_allclose(ref.parameters[k], v - lr * grads["d" + k], rtol=1e-13, atol=1e-15,
                                           err_msg=k)

    for n in (3, 4, 2):
        net.fit(X, Y, n, lr)
        one_step_each(n)
        for k, v in ref.parameters.items():
            np.testing.assert_array_equal(net.parameters[k], v, err_msg=k)
    kept = net._parameter_lists_kept
    assert kept is not None and kept[1] is net._W
    fresh = planar_net(backend, "float64").parameters
    net.set_parameters(fresh)  # new arrays: the kept lists must not be used
    ref.set_parameters(fresh)
    net.fit(X, Y, 3, lr)
    one_step_each(3)
    for k, v in ref.parameters.items():
        np.testing.assert_array_equal(net.parameters[k], v, err_msg=k)


def test_unlist_gives_the_arrays_themselves_and_an_empty_list_for_an_empty_one():
    """Program.unlist reads a typed list back in compiled code (without
    len() from Python, which Numba compiles anew in every process): the
    very arrays, in order; an empty typed list gives []."""
    import numba
    import numba.typed

    import kernels
    from model.program import get_program

    p = get_program(kernels.get_backend("numba"))
    arrays = [np.arange(6.0).reshape(2, 3), np.ones((1, 3))]
    back = p.unlist(p.list(arrays))
    assert len(back) == 2 and all(a is not None and np.shares_memory(a, b) for a, b in zip(back, arrays))
    assert p.unlist(numba.typed.List.empty_list(numba.types.float64[:, ::1])) == []
