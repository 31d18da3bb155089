"""dW of a mini-batch with dZ's zeros left out (kernels/loops/products/sparse.py).

The claim is exact: where the reduction is one MICRO_KC block (m <= 256),
the sparse tile makes the packed tile's FMAs in the packed tile's order,
less the ones whose dZ cell is zero (fma(0, a, s) = s), so the two agree
bit for bit, float32 and float64, whatever the shape: np.array_equal, no
tolerance. Against NumPy the op keeps the products' tolerance
(tests/test_blocked_products.py: a few roundings of a sum of m terms)."""

import re

import numpy as np
import pytest
from numba import njit

from kernels import cpu, loops, target
from kernels import options
from kernels.loops.products import sparse

T = cpu.tile_kernels
FULL64, HALF64 = sparse.SPARSE_WIDTHS[64]
FULL32, HALF32 = sparse.SPARSE_WIDTHS[32]
# (n, k, m): panels whole, half, narrower than half and mixed (k against
# 8 and 4 vectors of either dtype), rows not a multiple of 8, m = 1, m not
# a multiple of 8 or 64, and m = MICRO_KC (the longest reduction it takes)
SHAPES = [(64, 64, 64), (32, 128, 64), (64, 784, 64), (33, 100, 61), (8, 7, 5), (40, 130, 256), (5, 300, 1),
          (70, 16, 200), (3, FULL64 + HALF64 + 5, 9), (2, FULL32 + HALF32 + 3, 72)]


def _dz(rng, n, m, dtype, density):
    dZ = rng.standard_normal((n, m)).astype(dtype)
    dZ[rng.random((n, m)) >= density] = 0
    return dZ


@njit(error_model="numpy")
def _row_masks(masks, Z):
    return sparse.row_masks(masks, Z)


def _masks(dZ):
    """row_masks compiled: (masks, nonzero cells)."""
    masks = np.empty((dZ.shape[0], (dZ.shape[1] + 63) // 64), np.uint64)
    return masks, _row_masks(masks, dZ)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_the_sparse_tile_computes_the_packed_tiles_bits(shape, dtype):
    n, k, m = shape
    rng = np.random.default_rng(n * 1000 + k + m)
    A = rng.standard_normal((k, m)).astype(dtype)
    alpha = dtype(1.0 / m)
    for density in (0.0, 0.3, 0.55, 1.0):
        dZ = _dz(rng, n, m, dtype, density)
        want = np.full((n, k), np.nan, dtype)
        T._weight_gradients_packed_tile(want, dZ, A, 0, k, alpha)
        masks, nnz = _masks(dZ)
        assert nnz == np.count_nonzero(dZ)
        got = np.full((n, k), np.nan, dtype)
        T._weight_gradients_sparse_tile(got, dZ, masks, A, 0, k, alpha)
        assert np.array_equal(got, want), (density, float(np.abs(got - want).max()))
        if k > 3:  # a tile of the middle columns writes those and no other
            j0, j1 = k // 3, k - 1
            part = np.full((n, k), np.nan, dtype)
            T._weight_gradients_sparse_tile(part, dZ, masks, A, j0, j1, alpha)
            assert np.isnan(part[:, :j0]).all() and np.isnan(part[:, j1:]).all()
            assert np.array_equal(part[:, j0:j1], want[:, j0:j1])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [s for s in SHAPES if max(s[:2]) <= 256] + [(10, 64, 64), (128, 256, 3)], ids=str)
def test_the_transposed_sparse_tiles_compute_the_packed_tiles_bits(shape, dtype):
    """dA_prev = W^T dZ as (dZ^T W)^T and Z = b + W A_prev as
    (A_prev^T W^T)^T + b: the sparse factor's transpose as the kernels'
    rows, the results put back transposed; bit for bit the packed tiles'
    where the reduction (n for dA_prev, k for Z) is one MICRO_KC block."""
    n, k, m = shape
    assert max(n, k) <= loops.MICRO_KC  # longer reductions take the packed tiles
    rng = np.random.default_rng(n * 1000 + k + m)
    W = rng.standard_normal((n, k)).astype(dtype)
    b = rng.standard_normal((n, 1)).astype(dtype)
    for density in (0.0, 0.3, 0.6, 1.0):
        dZ = _dz(rng, n, m, dtype, density)
        want = np.full((k, m), np.nan, dtype)
        T._input_gradient_packed_tile(want, dZ, np.ascontiguousarray(W.T), 0, m)
        dZT = np.ascontiguousarray(dZ.T)
        masks, nnz = _masks(dZT)
        got = np.full((k, m), np.nan, dtype)
        T._input_gradient_sparse_tile(got, dZT, masks, W, 0, k)
        assert np.array_equal(got, want), ("dA", density)
        A_prev = np.maximum(_dz(rng, k, m, dtype, density), 0)  # relu's output: zeros and positive cells
        A_prevT = np.ascontiguousarray(A_prev.T)
        masks, _ = _masks(A_prevT)
        for act in (-1, loops.RELU, loops.TANH):
            Zw, Aw = np.full((n, m), np.nan, dtype), np.full((n, m), np.nan, dtype)
            T._packed_tile(Zw, Aw, A_prev, W, b, act, 0, m)
            Zg, Ag = np.full((n, m), np.nan, dtype), np.full((n, m), np.nan, dtype)
            T._sparse_tile(Zg, Ag, A_prevT, masks, W, b, act, 0, n)
            assert np.array_equal(Zg, Zw), ("Z", density, act)
            assert act < 0 or np.array_equal(Ag, Aw), ("A", density, act)
        if n > 3:  # a tile of the middle rows writes those and no other
            i0, i1 = n // 3, n - 1
            Zp = np.full((n, m), np.nan, dtype)
            T._sparse_tile(Zp, Zp, A_prevT, masks, W, b, -1, i0, i1)
            assert np.isnan(Zp[:i0]).all() and np.isnan(Zp[i1:]).all() and np.array_equal(Zp[i0:i1], Zw[i0:i1])


@pytest.mark.parametrize("variant", ["numba", "parallel"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_products_behind_a_relu_leave_the_zeros_out(dtype, variant):
    """linear_activation_forward over a relu layer's output and
    input_gradient over its dZ, serial and on threads (above
    PARALLEL_WORK), as the ops run them: the packed tiles' bits, and
    NumPy's values within the products' tolerance."""
    from kernels import vectorized
    K = cpu.numba_kernels if variant == "numba" else cpu.parallel_kernels
    rng = np.random.default_rng(5)
    tol = {np.float64: 1e-12, np.float32: 2e-5}[dtype]
    for n, k, m in ((64, 128, 64), (128, 64, 64), (256, 200, 250)):  # the last: prange tiles
        # a third of the cells nonzero: below SPARSE_DENSITY_TRANSPOSED
        A_prev = np.maximum(rng.standard_normal((k, m)) - 0.45, 0).astype(dtype)
        W = rng.standard_normal((n, k)).astype(dtype)
        b = rng.standard_normal((n, 1)).astype(dtype)
        Z, A = np.full((n, m), np.nan, dtype), np.full((n, m), np.nan, dtype)
        K.linear_activation_forward(Z, A, A_prev, W, b, loops.RELU)
        Zw, Aw = np.full((n, m), np.nan, dtype), np.full((n, m), np.nan, dtype)
        T._packed_tile(Zw, Aw, A_prev, W, b, loops.RELU, 0, m)
        assert np.array_equal(Z, Zw) and np.array_equal(A, Aw)
        np.testing.assert_allclose(Z, W.astype(np.float64) @ A_prev + b, rtol=0,
                                   atol=tol * np.sqrt(k) * max(1.0, np.abs(Zw).max()))
        dZ = (rng.standard_normal((n, m)) * (Z > 0) * (rng.random((n, m)) < 0.6)).astype(dtype)
        assert np.count_nonzero(dZ) <= options.SPARSE_DENSITY_TRANSPOSED * n * m
        dA = np.full((k, m), np.nan, dtype)
        K.input_gradient(dA, dZ, W)
        want = np.full((k, m), np.nan, dtype)
        T._input_gradient_packed_tile(want, dZ, np.ascontiguousarray(W.T), 0, m)
        assert np.array_equal(dA, want)
        dAr = np.empty_like(dA)
        vectorized.input_gradient(dAr, dZ, W)
        np.testing.assert_allclose(dA, dAr, rtol=0, atol=tol * np.sqrt(n) * max(1.0, np.abs(dAr).max()))
    # the zeros left out: an infinite weight meets only zeros (the packed
    # products' 0 x inf would be NaN)
    A_prev[7] = 0
    W[3, 7] = np.inf
    K.linear_activation_forward(Z, A, A_prev, W, b, loops.RELU)
    assert np.isfinite(Z).all()
    dZ[3] = 0
    K.input_gradient(dA, dZ, W)
    assert np.isfinite(dA).all()


@pytest.mark.parametrize("variant", ["numba", "parallel"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_weight_gradients_behind_a_relu_leave_the_zeros_out(dtype, variant):
    """The op on a relu layer's dZ (half its cells zero): the packed tile's
    bits, NumPy's values within the products' tolerance, and the zeros
    really left out: a column of A_prev holding inf where every dZ cell is
    zero leaves dW finite (the packed product's 0 x inf would be NaN;
    the module docstring says why training still reports such a step)."""
    from kernels import vectorized
    K = cpu.numba_kernels if variant == "numba" else cpu.parallel_kernels
    rng = np.random.default_rng(7)
    for n, k, m in ((64, 784, 64), (128, 64, 64), (40, 3000, 64)):  # the last above PARALLEL_WORK: prange tiles
        Z = rng.standard_normal((n, m)).astype(dtype)
        dZ = (rng.standard_normal((n, m)) * (Z > 0)).astype(dtype)
        A = rng.random((k, m)).astype(dtype)
        assert loops.weight_gradients_plan(n, k, m) == loops.plans.PACKED
        assert sparse.sparse_enough(np.count_nonzero(dZ), n, m, options.SPARSE_DENSITY)
        dW, db = np.full((n, k), np.nan, dtype), np.full((n, 1), np.nan, dtype)
        K.weight_gradients(dW, db, dZ, A)
        want = np.full((n, k), np.nan, dtype)
        T._weight_gradients_packed_tile(want, dZ, A, 0, k, dtype(1.0 / m))
        assert np.array_equal(dW, want)
        dWr, dbr = np.empty_like(dW), np.empty_like(db)
        vectorized.weight_gradients(dWr, dbr, dZ, A)
        tol = {np.float64: 1e-12, np.float32: 2e-5}[dtype] * np.sqrt(m)
        np.testing.assert_allclose(dW, dWr, rtol=0, atol=tol)
        np.testing.assert_allclose(db, dbr, rtol=0, atol=tol)
    dZ[:, 5] = 0
    A[3, 5] = np.inf
    K.weight_gradients(dW, db, dZ, A)
    assert np.isfinite(dW).all()
    dense = rng.standard_normal((n, m)).astype(dtype)  # no zeros: the packed tiles, whose 0 x inf is NaN
    dense[:, 5] = 0
    K.weight_gradients(dW, db, dense, A)
    assert np.isnan(dW[:, 3]).all() and np.isfinite(np.delete(dW, 3, axis=1)).all()


def test_the_choice_follows_the_density():
    """The masks decide (at most SPARSE_DENSITY of the cells nonzero); a
    sample of 64 cells spread over the operand decides first whether to
    build them: a dense operand (X, a tanh layer's dZ) is passed over
    after 64 loads, and a relu layer's is sampled across its units, not by
    one unit's row (a unit on for most examples would hide the rest)."""
    n, m = 64, 64
    for density in (options.SPARSE_DENSITY, options.SPARSE_DENSITY_TRANSPOSED, *options.SPARSE_DENSITY_INPUT):
        assert sparse.sparse_enough(0, n, m, density)
        assert sparse.sparse_enough(int(density * n * m), n, m, density)
        assert not sparse.sparse_enough(int(density * n * m) + 1, n, m, density)
        assert not sparse.sparse_enough(n * m, n, m, density)
    rng = np.random.default_rng(2)
    d = options.SPARSE_DENSITY
    assert not sparse.may_be_sparse(rng.random((784, 64)), d)
    assert not sparse.may_be_sparse(np.tanh(rng.standard_normal((128, 64))), d)
    relu = np.maximum(rng.standard_normal((128, 64)), 0)
    relu[0] = 1.0  # its first unit always on
    assert sparse.may_be_sparse(relu, d)
    assert sparse.may_be_sparse(np.zeros((1, 1)), d)
    assert _may_be_sparse(relu, d) and not _may_be_sparse(rng.random((784, 64)), d)
    assert _may_be_sparse(relu.T, d) and _may_be_sparse(relu[:, ::2], d)  # any layout
    assert not sparse.may_be_sparse(np.ones((128, 64)) * (rng.random((128, 64)) < 0.8), 0.5)


@pytest.mark.parametrize("variant", ["numba", "parallel"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dw_threshold_is_the_targets(dtype, variant):
    """dW's threshold is the target's (options.SPARSE_DENSITY: 0.8 on
    512-bit vectors, 0.9 on narrower ones, where the packed micro-kernel is
    the 3 x 16 one): a dZ with 0.85 of its cells nonzero takes the sparse
    tiles only where the target's vectors are narrower than 512 bits. Seen
    from outside: a column of A_prev holding inf where dZ's column is zero
    leaves dW finite in the sparse tiles and NaN (0 x inf) in the packed
    ones."""
    K = cpu.numba_kernels if variant == "numba" else cpu.parallel_kernels
    n, k, m = 64, 128, 64
    assert options.SPARSE_DENSITY == (0.8 if target.vector_bits() >= 512 else 0.9)
    rng = np.random.default_rng(11)
    dZ = rng.standard_normal((n, m)).astype(dtype) + dtype(5.0)  # no zero of its own
    off = rng.random((n, m)) < 0.14
    off[:, 5] = True
    dZ[off] = 0.0
    nonzero = np.count_nonzero(dZ) / dZ.size
    sample = np.mean([dZ[t * n // 64, t * m // 64] != 0 for t in range(64)])  # may_be_sparse's look
    assert 0.8 < nonzero < 0.9 and 0.8 < sample <= 0.9, (nonzero, sample)
    A = rng.random((k, m)).astype(dtype)
    A[3, 5] = np.inf
    dW, db = np.empty((n, k), dtype), np.empty((n, 1), dtype)
    K.weight_gradients(dW, db, dZ, A)
    sparse_tiles = np.isfinite(dW).all()
    assert sparse_tiles == (nonzero <= options.SPARSE_DENSITY) == (target.vector_bits() < 512)
    assert np.isfinite(np.delete(dW, 3, axis=1)).all()


@pytest.mark.parametrize("variant", ["numba", "parallel"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dA_prev_threshold_is_the_dtypes_and_targets(dtype, variant):
    """dA_prev's threshold (options.SPARSE_DENSITY_INPUT: float64 0.85 on
    vectors narrower than 512 bits, else SPARSE_DENSITY_TRANSPOSED, 0.5): a
    dZ with 0.75 of its cells nonzero takes the sparse tiles for float64 on
    AVX2 only. Seen from outside: an infinite weight whose unit's dZ row is
    all zero leaves dA_prev finite in the sparse tiles and NaN (0 x inf)
    in the packed ones."""
    K = cpu.numba_kernels if variant == "numba" else cpu.parallel_kernels
    n, k, m = 32, 128, 64  # a digits team part's share of dA1
    assert loops.plans.input_gradient_plan(n, k, m) == loops.plans.PACKED
    narrow = target.vector_bits() < 512
    assert options.SPARSE_DENSITY_INPUT == (0.85 if narrow else 0.5, 0.5)
    rng = np.random.default_rng(13)
    dZ = rng.standard_normal((n, m)).astype(dtype) + dtype(5.0)  # no zero of its own
    dZ[rng.random((n, m)) < 0.25] = 0.0
    dZ[3] = 0.0
    nonzero = np.count_nonzero(dZ) / dZ.size
    sample = np.mean([dZ[t * n // 64, t * m // 64] != 0 for t in range(64)])  # may_be_sparse's look
    assert 0.6 < nonzero < 0.85 and 0.5 < sample <= 0.85, (nonzero, sample)
    W = rng.standard_normal((n, k)).astype(dtype)
    W[3, 7] = np.inf
    dA = np.empty((k, m), dtype)
    K.input_gradient(dA, dZ, W)
    sparse_tiles = np.isfinite(dA).all()
    assert sparse_tiles == (np.dtype(dtype) == np.float64 and narrow)
    assert np.isfinite(np.delete(dA, 7, axis=0)).all()


@njit(error_model="numpy")
def _may_be_sparse(M, density):
    return sparse.may_be_sparse(M, density)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_row_masks_are_numpys_nonzero_cells(dtype):
    """A bit a cell, eight cells a vector compare: -0.0 is zero, NaN and
    infinities are not (unordered compare), any m (the last word partial,
    the last group of eight cell by cell); interpreted the same bits."""
    rng = np.random.default_rng(3)
    for n, m in ((3, 1), (5, 7), (4, 64), (6, 65), (2, 130), (9, 256)):
        Z = _dz(rng, n, m, dtype, 0.5)
        Z.flat[rng.integers(0, Z.size, 3)] = [-0.0, np.nan, -np.inf]
        masks, nnz = _masks(Z)
        bits = np.unpackbits(masks.view(np.uint8), axis=1, bitorder="little")[:, :m].astype(bool)
        assert np.array_equal(bits, Z != 0)
        assert nnz == np.count_nonzero(Z)
        py = np.empty_like(masks)
        assert sparse.row_masks(py, Z) == nnz  # register_jitable: called from Python it is interpreted
        assert np.array_equal(py, masks)
        strided = np.repeat(Z, 2, axis=1)[:, ::2]  # rows of another layout: the cells one by one
        again = np.empty_like(masks)
        assert _row_masks(again, strided) == nnz and np.array_equal(again, masks)


def test_the_bit_helpers_compiled_and_interpreted():
    values = [np.uint64(1) << np.uint64(b) for b in range(64)] + [np.uint64(x) for x in
                                                                   (3, 0xF0, 0x8000000000000001, 0xFFFFFFFFFFFFFFFF)]

    @njit
    def compiled(x):
        return sparse.lowest_bit(x), sparse.popcount(x)

    for x in values:
        want = (int(x) & -int(x)).bit_length() - 1, bin(int(x)).count("1")
        assert compiled(x) == want
        assert (sparse.lowest_bit(x), sparse.popcount(x)) == want


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_sparse_tile_interpreted(dtype):
    """The "python" backend runs the same loops on NumPy scalars: without
    FMAs, so within a rounding a term of the compiled tile."""
    n, k, m = 5, HALF64 + 3, 19
    rng = np.random.default_rng(11)
    dZ = _dz(rng, n, m, dtype, 0.4)
    A = rng.standard_normal((k, m)).astype(dtype)
    masks, _ = _masks(dZ)
    got = np.full((n, k), np.nan, dtype)
    sparse.sparse_tile(got, dZ, masks, A, 0, k, dtype(1.0 / m))
    want = np.full((n, k), np.nan, dtype)
    T._weight_gradients_sparse_tile(want, dZ, masks, A, 0, k, dtype(1.0 / m))
    np.testing.assert_allclose(got, want, rtol=0, atol=m * np.finfo(dtype).eps * np.abs(want).max())


x86_only = pytest.mark.skipif(not target.is_x86(), reason="reads x86-64 assembly; this CPU is not x86-64")


@x86_only
@pytest.mark.skipif("fma" not in target.features(), reason="the compile target has no FMA instructions")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_panel_kernels_hold_a_row_in_vector_registers(dtype):
    """Each panel kernel's row of cells is packed FMAs on the target's widest
    vectors (8 zmm on AVX-512, 8 ymm on AVX2; half kernels 4), a memory
    operand each (the panel row's load), none scalar, and no spill: the
    accumulators and the broadcast fit the target's registers."""
    bits = np.dtype(dtype).itemsize * 8
    reg = target.widest_register()
    lanes = target.vector_bits() // bits
    for cols, half in zip(sparse.SPARSE_WIDTHS[bits], (False, True)):
        @njit(error_model="numpy")
        def call(C, Z, masks, P):
            sparse.sparse_panel(C, 0, Z, masks, P, C.dtype.type(1.0), half)

        rng = np.random.default_rng(1)
        Z = _dz(rng, 3, 70, dtype, 0.5)
        masks, _ = _masks(Z)
        P = rng.random((70, cols)).astype(dtype)
        C = np.full((3, cols), np.nan, dtype)
        call(C, Z, masks, P)
        bound = 2 * 70 * np.finfo(dtype).eps * (np.abs(Z) @ np.abs(P))  # a sum of 70 terms (conftest: Higham)
        assert (np.abs(C - Z.astype(np.float64) @ P) <= bound).all()
        asm = call.inspect_asm(call.signatures[0])
        name = f"sparse_panel_{cols}"  # the kernel's own function (its label: the mangled name, then ":")
        body = asm[re.search(rf"^\S*{len(name)}{name}B\S*:$", asm, re.M).start():]
        body = body[:body.index(".Lfunc_end")]
        fmas = [line for line in body.splitlines() if "vfmadd" in line]
        assert len(fmas) >= cols // lanes and all(reg in line and line.split()[0].endswith(("pd", "ps"))
                                                  for line in fmas)
        assert not any("rsp)" in line and "vmov" in line and reg in line for line in body.splitlines()), "spills"
        assert cols // lanes + 1 <= target.vector_registers()


LAZY_PROBE = """
import numpy as np
from kernels import cpu, loops
K, T = cpu.parallel_kernels, cpu.tile_kernels
lazy = [getattr(T, name) for name in loops.LAZY_TILES]
rng = np.random.default_rng(0)
n, k, m = 256, 200, 250  # above PARALLEL_WORK: the tiles run on the pool's workers
A_prev = np.maximum(rng.standard_normal((k, m)) - 0.5, 0)  # sparse enough for every sparse tile
W, b = rng.standard_normal((n, k)), rng.standard_normal((n, 1))
Z, A = np.empty((n, m)), np.empty((n, m))
dense = rng.random((k, m)) + 0.5
K.linear_activation_forward(Z, A, dense, W, b, loops.RELU)  # the callers compiled, over dense operands
before = [len(d.signatures) for d in lazy]
K.linear_activation_forward(Z, A, A_prev, W, b, loops.RELU)
dZ = A * rng.standard_normal((n, m)) * (rng.random((n, m)) < 0.6)
dW, db, dA = np.empty((n, k)), np.empty((n, 1)), np.empty((k, m))
K.weight_gradients(dW, db, dZ, A_prev)
K.input_gradient(dA, dZ, W)
assert np.allclose(Z, W @ A_prev + b) and np.allclose(dW, dZ @ A_prev.T / m) and np.allclose(dA, W.T @ dZ)
print(before, [len(d.signatures) for d in lazy])
"""


def test_the_sparse_tiles_compile_at_their_first_call(tmp_path):
    """The sparse tiles are external and lazy (kernels.external): compiling
    their callers does not compile them (a run that never reaches them pays
    nothing), their first call does, here on the parallel pool's workers
    (the resolver takes the GIL), in a fresh process with an empty cache."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), NUMBA_NUM_THREADS="2")
    run = subprocess.run([sys.executable, "-c", LAZY_PROBE], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split("\n")[-2] == "[0, 0, 0] [1, 1, 1]", run.stdout
