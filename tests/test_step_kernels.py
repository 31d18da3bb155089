"""The kernels a mini-batch step spends its time in besides the products:
the optimizer step, the finiteness test, the epoch's gather of its batches,
W^T for dA_prev, and the serial variant's tile widths.

Tolerance of optimizer_step: the compiled loops compute Adam as
param - lr' v / (sqrt(s) + epsilon') (bias corrections folded into lr' and
epsilon', kernels.loops.update) where numpy divides three times, and may fuse
a*b+c; each form is within a few roundings of the exact value, so with inputs
that cancel nowhere (v of the gradient's sign) the moments and the step
agree to 16 eps relative, plus the rounding of out = param - step. The other results are exact (copies and
comparisons)."""

import numpy as np
import pytest
from conftest import ALL_CPU, CPU_BACKENDS, DTYPES

import kernels
from kernels import cpu, vectorized
from kernels.loops import batch_of
from kernels.loops.products import blocked, packed
from kernels.options import ADAM, BLOCK, GD, MOMENTUM, PARALLEL_ELEMENTS, RMSPROP


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("kind", [GD, MOMENTUM, RMSPROP, ADAM])
@pytest.mark.parametrize("shape", [(37, 29), (130, 131)], ids=["one-block", "past-PARALLEL_ELEMENTS"])
def test_optimizer_step_agrees_with_numpy(backend, dtype, kind, shape):
    """A small step (one loop) and one past PARALLEL_ELEMENTS: blocks of
    borrowed views under prange in the parallel variant, one pass in the
    serial one."""
    K = kernels.get_backend(backend).kernels
    rng = np.random.default_rng(kind)
    assert shape[0] * shape[1] > PARALLEL_ELEMENTS or shape == (37, 29)
    param = rng.standard_normal(shape).astype(dtype)
    for t in (1, 2, 50, 5000):
        grad = rng.standard_normal(shape).astype(dtype) * dtype(10.0) ** rng.integers(-6, 2, shape)
        # v of the gradient's sign: beta1 v + (1 - beta1) g cancels nowhere,
        # so v (and the step) keep a relative error of a few eps
        v0 = (np.abs(rng.standard_normal(shape)) * np.sign(grad)).astype(dtype) * dtype(0.1)
        s0 = np.abs(rng.standard_normal(shape)).astype(dtype) * dtype(1e-3)
        s0[0, :5] = 0  # a moment still zero: the division's bottom is epsilon alone
        got, want = np.empty_like(param), np.empty_like(param)
        v, s, vr, sr = v0.copy(), s0.copy(), v0.copy(), s0.copy()
        K.optimizer_step(got, v, s, param, grad, 0.01, kind, 0.9, 0.999, 1e-8, t)
        vectorized.optimizer_step(want, vr, sr, param, grad, 0.01, kind, 0.9, 0.999, 1e-8, t)
        tol = 16 * float(np.finfo(dtype).eps)
        np.testing.assert_allclose(v, vr, rtol=tol, atol=0)
        np.testing.assert_allclose(s, sr, rtol=tol, atol=0)
        step, want_step = param - got, param - want
        # the step's own rounding, plus that of out = param - step (eps |param|)
        np.testing.assert_allclose(step, want_step, rtol=tol,
                                   atol=2 * float(np.finfo(dtype).eps) * float(np.abs(param).max()))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", ALL_CPU)
@pytest.mark.parametrize("kind", [GD, MOMENTUM, RMSPROP, ADAM])
@pytest.mark.parametrize("shape", [(3, 29), (130, 131)], ids=["one-block", "past-PARALLEL_ELEMENTS"])
def test_optimizer_step_says_whether_its_new_cells_are_finite(backend, dtype, kind, shape):
    """optimizer_step returns whether every cell it wrote is finite (the
    training loops' divergence test, tested as the cells are written): true
    for finite steps, false for one NaN or infinite gradient anywhere (the
    first cell, a block's edges, a vector's tail, the last cell), in the
    serial loop, under prange and in the AVX-512 vector step (float64
    Adam and RMSprop there: kernels.vector_step); and what it says is
    all_finite's of what it wrote."""
    K = kernels.get_backend(backend).kernels
    rng = np.random.default_rng(kind)
    n = shape[0] * shape[1]
    param = rng.standard_normal(shape).astype(dtype)
    grad = rng.standard_normal(shape).astype(dtype)
    zeros = np.zeros(n, dtype)
    for where in sorted({0, 7, 8, BLOCK - 1, BLOCK, n - 9, n - 1} & set(range(n))):
        for bad in (None, np.nan, np.inf, -np.inf):
            g = grad.copy()
            if bad is not None:
                g.flat[where] = bad
            out = np.empty_like(param)
            v, s = np.zeros(shape, dtype), np.zeros(shape, dtype)
            finite = K.optimizer_step(out, v, s, param, g, 0.01, kind, 0.9, 0.999, 1e-8, 3)
            assert bool(finite) == (bad is None) == K.all_finite(out, zeros), (where, bad)
            if bad is None:
                break  # the finite case once


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", ALL_CPU)
def test_all_finite_finds_every_non_finite_value(backend, dtype):
    K = kernels.get_backend(backend).kernels
    for size in (1, BLOCK - 1, BLOCK, BLOCK + 1, 32 * BLOCK + 3):
        x = np.linspace(-1, 1, size).astype(dtype)
        x[0] = np.finfo(dtype).max  # the extremes are finite
        zeros = np.zeros(size, dtype)
        assert K.all_finite(x.reshape(1, size), zeros)
        for where in sorted({0, size // 2, BLOCK - 1, BLOCK, size - 1} & set(range(size))):
            for bad in (np.nan, np.inf, -np.inf):
                y = x.copy()
                y[where] = bad
                assert not K.all_finite(y.reshape(1, size), zeros), (size, where, bad)


@pytest.mark.parametrize("placement", ["lines", "off a line"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", ALL_CPU)
@pytest.mark.parametrize("n, m, size, rows", [(5, 37, 8, (0, 5)), (5, 37, 8, (2, 4)), (3, 16, 16, (0, 3)),
                                              (40, 3000, 64, (0, 40)), (40, 3000, 64, (13, 29)), (4, 7, 100, (1, 4))])
def test_gather_batches_lays_out_each_batch_as_its_own_block(backend, dtype, n, m, size, rows, placement):
    """gather_batches: batch after batch (the last one smaller when size
    does not divide m), batch_of(out, j0, b) is X[:, index[j0:j0 + b]] on
    the rows asked for; the other rows' cells are not written. Copies:
    exact. (40, 3000) is past PARALLEL_ELEMENTS: the parallel loop.) Into
    an array that starts a cache line (Ops.empty_lines, as fit allocates
    it) and into one that does not. These batches are under
    STREAM_GATHER_BYTES (ordinary stores; the streamed ones: the next test)."""
    ops = kernels.get_backend(backend)
    K = ops.kernels
    rng = np.random.default_rng(m)
    X = rng.standard_normal((n, m)).astype(dtype)
    index = rng.permutation(m).astype(np.int64)
    lines = ops.empty_lines((n * m + 1,), dtype)
    assert lines.ctypes.data % 64 == 0
    out = (lines[:-1] if placement == "lines" else lines[1:]).reshape(n, m)
    _gather_and_check(K, out, X, index, size, *rows)


def _gather_and_check(K, out, X, index, size, r0, r1):
    """gather_batches into ``out`` (every cell -7 first) returns True (every
    cell it copies is finite), and batch_of(out, j0, b) is a C-contiguous
    block, X[:, index[j0:j0 + b]] on rows r0:r1, the other rows unwritten;
    then a NaN in those rows of X makes it return False."""
    out[...] = -7.0
    assert K.gather_batches(out, X, index, size, r0, r1) is True
    m = X.shape[1]
    for j0 in range(0, m, size):
        mb = min(size, m - j0)
        block = batch_of(out, j0, mb)
        assert block.shape == (X.shape[0], mb) and block.flags.c_contiguous
        np.testing.assert_array_equal(block[r0:r1], X[r0:r1][:, index[j0:j0 + mb]], err_msg=(out.shape, j0))
        assert (block[:r0] == -7.0).all() and (block[r1:] == -7.0).all()
    Y = X.copy()
    Y[(r0 + r1) // 2, m // 2] = np.nan
    assert K.gather_batches(out, Y, index, size, r0, r1) is False


@pytest.mark.parametrize("placement", ["lines", "off a line"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", ["numba", "parallel"])
def test_gather_batches_streams_batches_past_the_caches(backend, dtype, placement):
    """Batches of STREAM_GATHER_BYTES or more are staged and streamed
    (kernels.loops.memory), smaller ones written in place (the test above):
    the same cells either way. Past the limit: rows r0:r1 of X (a team
    member's share) and all of them, batches that do not divide m (a short
    last one), sizes whose rows do not fill whole cache lines, an output
    that starts a line and one that does not, the parallel loop and the
    serial one (rows x m under PARALLEL_ELEMENTS)."""
    from kernels.options import PARALLEL_ELEMENTS, STREAM_GATHER_BYTES
    ops = kernels.get_backend(backend)
    itemsize = np.dtype(dtype).itemsize
    wide = -(-STREAM_GATHER_BYTES // (16 * itemsize)) + 37
    tall = -(-STREAM_GATHER_BYTES // (1100 * itemsize)) + 1
    rng = np.random.default_rng(11)
    for n, m, size, (r0, r1) in ((16, wide, 24, (3, 11)), (16, wide, 8, (0, 16)),
                                 (tall, 1100, 24, (5, 19)), (tall, 1100, 100, (0, 1))):
        X = rng.standard_normal((n, m)).astype(dtype)
        index = rng.permutation(m).astype(np.int64)
        lines = ops.empty_lines((n * m + 1,), dtype)
        out = (lines[:-1] if placement == "lines" else lines[1:]).reshape(n, m)
        assert out.nbytes >= STREAM_GATHER_BYTES
        assert ((r1 - r0) * m < PARALLEL_ELEMENTS) == (n == tall)  # the serial loop, then the parallel one
        _gather_and_check(ops.kernels, out, X, index, size, r0, r1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gather_batches_interpreted_stages_past_the_limit_and_not_under(dtype, monkeypatch):
    """The "python" backend runs the loop source: with the limit moved
    under a small X's batches and over them, both paths give X's columns."""
    from kernels.loops import update
    ops = kernels.get_backend("python")
    rng = np.random.default_rng(7)
    X = rng.standard_normal((6, 50)).astype(dtype)
    index = rng.permutation(50).astype(np.int64)
    for limit in (0, 1 << 60):
        monkeypatch.setattr(update, "STREAM_GATHER_BYTES", limit)
        _gather_and_check(ops.kernels, ops.empty_lines(X.shape, dtype), X, index, 16, 1, 5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("offset", [0, 1, 5, 16])
def test_streamed_cells_are_the_cells_copied(offset, dtype):
    """stream_cells, compiled and interpreted: dst[d:d + count] = src[:count]
    whether the destination starts a line and count fills whole lines (x86:
    non-temporal stores) or not (ordinary ones), nothing else written; after
    store_fence the values are there. On x86 the compiled copy has
    non-temporal vector stores and the fence an sfence."""
    import re
    from numba import njit
    from kernels import target
    from kernels.loops.memory import LINE_BYTES, store_fence, stream_cells

    def copy(dst, d, src, count):
        stream_cells(dst, d, src, count)
        store_fence()
    lanes = LINE_BYTES // np.dtype(dtype).itemsize
    src = np.arange(1.0, 4 * lanes + 1, dtype=dtype)
    compiled = njit(copy)
    for run in (compiled, copy):
        for count in (4 * lanes, 2 * lanes, lanes - 1, 3, 0):
            dst = kernels.get_backend("numba").empty_lines((6 * lanes,), dtype)
            dst[:] = -1.0
            run(dst, offset, src, count)
            want = np.full_like(dst, -1.0)
            want[offset:offset + count] = src[:count]
            np.testing.assert_array_equal(dst, want)
    if target.is_x86():
        asm = compiled.inspect_asm(compiled.signatures[0])
        assert re.search(r"\tv?movntp[sd]\s", asm), "no non-temporal vector store"
        assert "sfence" in asm


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", ALL_CPU)
@pytest.mark.parametrize("n, m, size, rows", [(5, 37, 8, (2, 4)), (40, 3000, 64, (13, 29))])
def test_gather_batches_tells_whether_its_rows_are_finite(backend, dtype, n, m, size, rows):
    """gather_batches returns False when a cell of its rows of X is NaN or
    +-inf (the first, a middle and the last column of its first, middle
    and last row; the serial and the parallel loop), True when the cell
    lies in a row it does not copy (fit's test of a large X is this result)."""
    K = kernels.get_backend(backend).kernels
    X = np.random.default_rng(m).standard_normal((n, m)).astype(dtype)
    X[0, 0] = np.finfo(dtype).max  # the extremes are finite
    index = np.random.default_rng(1).permutation(m).astype(np.int64)
    out = np.empty((n, m), dtype=dtype)
    r0, r1 = rows
    for i in (r0, (r0 + r1) // 2, r1 - 1):
        for j in (0, m // 2, m - 1):
            for bad in (np.nan, np.inf, -np.inf):
                Y = X.copy()
                Y[i, j] = bad
                assert K.gather_batches(out, Y, index, size, r0, r1) is False, (i, j, bad)
    for i in (r0 - 1, r1):
        Y = X.copy()
        Y[i, m // 2] = np.nan
        assert K.gather_batches(out, Y, index, size, r0, r1) is True


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (8, 8), (10, 64), (64, 128), (13, 21), (3, 17), (17, 3)])
def test_transposed_copies_w_transposed(shape, dtype):
    """transposed (8 rows at a time and the edges), compiled inside a kernel
    (numba's input_gradient calls it) and interpreted."""
    W = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    got = blocked.transposed(W)
    assert got.flags.c_contiguous and np.array_equal(got, W.T)
    import numba
    compiled = numba.njit(lambda w: blocked.transposed(w))
    got = compiled(W)
    assert got.flags.c_contiguous and got.dtype == dtype and np.array_equal(got, W.T)


def test_the_serial_variant_knows_it_runs_on_one_thread():
    """THREADED: False in the "numba" variant's kernels (the products take
    the widest tiles there), True in the "parallel" one's."""
    for name in ("linear_activation_forward", "weight_gradients", "input_gradient"):
        assert getattr(cpu.numba_kernels, name).py_func.__globals__["THREADED"] is False
        assert getattr(cpu.parallel_kernels, name).py_func.__globals__["THREADED"] is True


@pytest.mark.parametrize("m, nr", [(64, 16), (64, 32), (300, 16), (1024, 32), (5, 16)])
def test_packed_tiles_wide_when_serial_and_shared_when_threaded(m, nr):
    serial, shared = packed.packed_width(m, nr, True), packed.packed_width(m, nr, False)
    for width in (serial, shared):
        assert width % nr == 0 and width * ((m + width - 1) // width) >= m
    assert (m + serial - 1) // serial == (m + 255) // 256   # as few tiles as 256-column ones
    # threaded: no fewer tiles, and work for two threads where the pool and the panels allow
    assert (m + shared - 1) // shared >= (m + serial - 1) // serial
    if packed.POOL_THREADS >= 2 and m > nr:
        assert (m + shared - 1) // shared >= 2


@pytest.mark.parametrize("variant", ["numba_kernels", "parallel_kernels"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, k, m", [(37, 300, 45), (64, 129, 33), (130, 70, 531)])
def test_packed_gradients_overwrite_their_outputs(variant, dtype, n, k, m):
    """dW and dA_prev of the PACKED plan start from zero by storing the first
    block of the reduction (no zeroing pass): outputs filled with NaN first
    must come out whole, with partial panels (k, m not multiples of the
    panel width) and reductions over several MICRO_KC blocks (m = 531).
    Tolerance: float64 1e-12 relative to the largest value (rounding of
    reductions of at most 531 terms), float32 1e-5 (the same, ~2e-7 measured)."""
    from kernels.loops.plans import PACKED, input_gradient_plan, weight_gradients_plan
    assert input_gradient_plan(n, k, m) == PACKED and weight_gradients_plan(n, k, m) == PACKED
    K = getattr(cpu, variant)
    rng = np.random.default_rng(1)
    W, A_prev, dZ = (rng.standard_normal(s).astype(dtype) for s in ((n, k), (k, m), (n, m)))
    dW, db, dA = np.full((n, k), np.nan, dtype), np.full((n, 1), np.nan, dtype), np.full((k, m), np.nan, dtype)
    K.weight_gradients(dW, db, dZ, A_prev)
    K.input_gradient(dA, dZ, W)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for got, want in ((dW, dZ.astype(np.float64) @ A_prev.T / m), (dA, W.T.astype(np.float64) @ dZ),
                      (db, dZ.astype(np.float64).mean(axis=1, keepdims=True))):
        assert np.all(np.isfinite(got))
        assert np.max(np.abs(got - want)) <= tol * np.max(np.abs(want))
