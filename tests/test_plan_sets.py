"""Plan sets (kernels.loops.plans): a network compiles only the products'
plans its shapes reach, and a shape whose plan is left out of a set still
gets the right answer (the plan falls back to one in the set).

Tolerance of the products: as tests/test_blocked_products.py (the sums run
in another order than BLAS's: TOL * sqrt(k) * max(1, max|want|), TOL 1e-12
for float64 and 2e-5 for float32)."""

import io
import warnings

import numpy as np
import pytest
from conftest import assert_gradients_like_numpy, layer_arrays

import kernels
from kernels import cpu, loops, vectorized
from kernels.loops import plans as P
from kernels.options import PARALLEL_OPTIONS, SERIAL_OPTIONS
from model import LogisticRegression, NeuralNetwork, datasets

TOL = {np.float64: 1e-12, np.float32: 2e-5}


def _close(got, want, k, dtype):
    scale = np.sqrt(k) * max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL[dtype] * scale)


def test_the_planar_network_reaches_few_plans_and_no_threads():
    got = P.plans_needed([2, 4, 1], [400], 8)
    assert P.describe_plans(got) == ("forward COURSE+SIMPLE+BLOCKED_ROWS, dW COURSE+SIMPLE+BLOCKED_DOT, "
                                     "dA_prev COURSE+SIMPLE, serial loops")


def test_an_mnist_sized_network_reaches_packed_products_and_threads():
    got = P.plans_needed([784, 128, 64, 1], [1024], 8)
    for product in P.PRODUCTS:
        assert got & P.plan_bit(product, P.PACKED), P.describe_plans(got)
    assert got & P.PARALLEL
    # mini-batches of 64: each product still big enough for its blocked or packed plan
    assert P.plans_needed([784, 128, 64, 10], [64], 8) & P.plan_bit(P.FORWARD, P.PACKED)


def test_plan_globals_name_every_flag_the_kernels_read():
    """The flags forward.py, backward.py and the training loop test are
    exactly plan_globals' (a misspelt flag would be a module global that is
    always True, or in training.py always False)."""
    from kernels.loops import backward, forward
    from model import training
    flags = set(P.plan_globals(P.ALL_PLANS)) - {"PLANS"}
    read = {n for f in (forward.linear_activation_forward, backward.weight_gradients, backward.input_gradient,
                        training.fit_chunk)
            for n in f.__code__.co_names if n.split("_")[0] in ("FORWARD", "GRADIENT", "INPUT", "FUSED")}
    assert read == flags
    assert training.FUSED_FIRST is False  # interpreted programs never fuse
    assert all(P.plan_globals(P.ALL_PLANS).values()) and not any(
        v for k, v in P.plan_globals(P.ALWAYS).items() if k != "PLANS")


# (n, k, m) and the plan the full set takes for its forward product
FALLBACK_SHAPES = [((4, 2, 400), P.BLOCKED_ROWS), ((9, 300, 64), P.BLOCKED_DOT), ((40, 70, 130), P.PACKED)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape,plan", FALLBACK_SHAPES, ids=str)
def test_a_set_without_the_plan_falls_back_to_simple_and_agrees(shape, plan, dtype):
    n, k, m = shape
    nr = loops.MICRO_BYTES // np.dtype(dtype).itemsize
    assert P.forward_plan(n, k, m, nr)[0] == plan
    assert P.forward_plan(n, k, m, nr, P.ALWAYS)[0] == P.SIMPLE
    K = cpu.variant_kernels("numba", P.ALWAYS)  # COURSE and SIMPLE only
    assert K.linear_activation_forward is not cpu.numba_kernels.linear_activation_forward
    assert K.cross_entropy is cpu.numba_kernels.cross_entropy  # plan-free kernels are shared
    A, W, b, dZ = layer_arrays(n, k, m, dtype, seed=n + k + m)
    Z, Act = np.full((n, m), np.nan, dtype), np.full((n, m), np.nan, dtype)
    K.linear_activation_forward(Z, Act, A, W, b, loops.RELU)
    Zr = np.empty_like(Z)
    vectorized.linear_forward(Zr, A, W, b)
    _close(Z, Zr, k, dtype)
    _close(Act, np.maximum(Zr, 0), k, dtype)
    assert_gradients_like_numpy(K, dZ, A, W, _close)


def _typed_source(dispatcher):
    """The typed IR of the dispatcher's one compilation (inspect_types' lines
    of IR, not the source lines it prints beside them)."""
    out = io.StringIO()
    dispatcher.inspect_types(file=out)
    return "\n".join(line for line in out.getvalue().splitlines() if line.strip().startswith("#"))


def test_a_set_compiles_none_of_the_code_of_the_plans_it_leaves_out():
    """The planar set's forward kernel, compiled afresh (no cache: typed code
    to read), calls the BLOCKED_ROWS tile and never types the others; its
    dA_prev kernel has no parallel loop left and compiles serially, without
    Numba's warning that parallel=True found nothing to parallelize."""
    planar = P.plans_needed([2, 4, 1], [400], 8) | P.PARALLEL
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumbaPerformanceWarning included
        K = cpu.compile_loops("__probe", dict(PARALLEL_OPTIONS, cache=False), P.PRODUCT_KERNELS, plans=planar)
        n, k, m = 4, 2, 400
        A, W, b, dZ = layer_arrays(n, k, m, np.float64, seed=1)
        Z = np.empty((n, m))
        K.linear_activation_forward(Z, Z, A, W, b, loops.TANH)
        K.input_gradient(np.empty((k, m)), dZ, W)
    typed = _typed_source(K.linear_activation_forward)
    assert "_rows_tile" in typed
    for absent in ("_packed_tile", "_dot_tile", "packed_tile", "micro"):
        assert absent not in typed
    assert K.linear_activation_forward.targetoptions["parallel"]
    assert not K.input_gradient.targetoptions.get("parallel")
    assert K.linear_activation_forward.py_func.__qualname__.endswith(f"__probep{planar}_{cpu.SOURCE_DIGEST}")
    # the full set's kernel, for contrast, types every plan's tile
    full = cpu.compile_loops("__probe", dict(SERIAL_OPTIONS, cache=False), ("linear_activation_forward",))
    full.linear_activation_forward(Z, Z, A, W, b, loops.TANH)
    typed = _typed_source(full.linear_activation_forward)
    assert all(tile in typed for tile in ("_rows_tile", "_dot_tile", "_packed_tile"))


def test_a_small_network_on_parallel_runs_the_serial_program_bit_for_bit():
    X, Y = datasets.planar(m=400)
    nets = {b: NeuralNetwork([2, 4, 1], activations="tanh", backend=b, seed=2).fit(X, Y, 50, 1.2)
            for b in ("numba", "parallel")}
    assert nets["parallel"]._plans == P.SMALL_PLANS and not P.SMALL_PLANS & P.PARALLEL
    assert nets["parallel"].program.fit_chunk is nets["numba"].program.fit_chunk
    for key, value in nets["numba"].parameters.items():
        np.testing.assert_array_equal(nets["parallel"].parameters[key], value)


def test_a_network_s_plan_set_is_one_of_two_and_grows_with_the_shapes_it_meets():
    net = NeuralNetwork([2, 4, 1], activations="tanh", backend="numba", seed=2)
    X, Y = datasets.planar(m=400)
    net.fit(X, Y, 2, 1.2)
    assert net._plans == P.SMALL_PLANS == P.plan_tier(P.plans_needed([2, 4, 1], [400], 8))
    before = net.program
    net.predict(X[:, :10])  # fewer examples: plans already in the set
    assert net._plans == P.SMALL_PLANS and net.program is before
    big = np.tile(X, 50)  # 20000 examples: threads
    net.predict(big)
    assert net._plans == P.ALL_PLANS and net.program is not before
    assert net.program.plans == P.ALL_PLANS
    # networks of other sizes share the two programs
    other = NeuralNetwork([3, 5, 2, 1], backend="numba").fit(np.ones((3, 50)), np.ones((1, 50)), 1, 0.1)
    assert other.program is before


def test_logistic_regression_on_parallel_keeps_its_parallel_pass():
    """logistic_pass runs its blocks under prange at every size."""
    model = LogisticRegression(2, backend="parallel")
    assert model.program.logistic_pass.targetoptions["parallel"]
    assert kernels.get_backend("parallel").parallel
