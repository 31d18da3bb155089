"""The register-blocked products (version 2), the packed ones (version 4) and
their dispatch by shape agree with NumPy: shapes on both sides of every
threshold (BLOCKED_WORK, PARALLEL_WORK, MICRO_MIN_ROWS, MICRO_MIN_K), with
leftover rows/columns (sizes not multiples of 4 or 8, partial panels), more
examples than one tile (JB) and one reduction block (QB, JR_BYTES, KC,
MICRO_KC), m = 1, n = 1, k = 1, float32 and float64, on the "numba" and
"parallel" backends, and the packed path interpreted ("python").

Tolerance: the sums run in another order than BLAS's (in order along the
reduction in the packed kernels, in 4 or 16 lanes in version 2), so each
cell differs by a few roundings of its partial sums: at most about
sqrt(k) * eps * max|cell| for random signs, k the reduction length, well
inside TOL * sqrt(k) * max(1, max|want|) with TOL = 1e-12 (float64, eps
2.2e-16) and 2e-5 (float32, eps 1.2e-7)."""

import numpy as np
import pytest
from conftest import assert_gradients_like_numpy, layer_arrays

from kernels import cpu, loops, vectorized

SHAPES = [  # (n, k, m)
    (1, 1, 1), (4, 2, 400), (1, 4, 400), (3, 5, 7), (5, 7, 300), (7, 20, 209),
    (13, 11, 1), (1, 300, 9), (9, 1, 530), (20, 301, 209), (66, 129, 517), (6, 2100, 33), (5, 6, 4500),
    (32, 16, 16), (40, 320, 64), (264, 40, 48),
    (6, 200, 1800), (20, 400, 300),  # above PARALLEL_WORK: BLOCKED_ROWS, BLOCKED_DOT under prange
    (9, 400, 600),  # BLOCKED_DOT under prange where 20 rows are packed (AVX2's MICRO_MIN_ROWS, 12)
    (20, 2300, 209), (8, 2050, 37),  # fewer than MICRO_MIN_ROWS rows, a reduction past MICRO_LONG_K: PACKED
    (1, 64, 64), (1, 64, 300), (1, 784, 600),  # one unit (a binary output layer): SIMPLE, dA an outer product
    (1, 1031, 2100),  # one unit past PARALLEL_WORK: the forward's reduction in parts on threads
]
TOL = {np.float64: 1e-12, np.float32: 2e-5}


def _close(got, want, k, dtype):
    scale = np.sqrt(k) * max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL[dtype] * scale)


@pytest.mark.parametrize("variant", ["numba", "parallel"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_products_match_numpy(shape, dtype, variant):
    n, k, m = shape
    K = cpu.numba_kernels if variant == "numba" else cpu.parallel_kernels
    A, W, b, dZ = layer_arrays(n, k, m, dtype, seed=n * 1000 + k + m)
    Z = np.full((n, m), np.nan, dtype)
    K.linear_forward(Z, A, W, b)
    Zr = np.empty_like(Z)
    vectorized.linear_forward(Zr, A, W, b)
    assert Z.dtype == dtype
    _close(Z, Zr, k, dtype)

    Z2, A2 = np.full((n, m), np.nan, dtype), np.full((n, m), np.nan, dtype)
    K.linear_activation_forward(Z2, A2, A, W, b, loops.TANH)
    _close(Z2, Zr, k, dtype)
    _close(A2, np.tanh(Zr), k, dtype)

    assert_gradients_like_numpy(K, dZ, A, W, _close)


def test_dispatch_covers_every_path():
    """The shapes above cross both thresholds (else the test proves little)."""
    works = [n * k * m for n, k, m in SHAPES]
    assert min(works) < loops.BLOCKED_WORK
    assert any(loops.BLOCKED_WORK <= w < loops.PARALLEL_WORK for w in works)
    assert max(works) >= loops.PARALLEL_WORK
    # each blocked form once under prange (forward plan of a shape above PARALLEL_WORK)
    from kernels.loops import plans
    big = {plans.forward_plan(n, k, m, loops.MICRO_BYTES // 8)[0] for n, k, m in SHAPES
           if n * k * m >= loops.PARALLEL_WORK}
    assert {plans.BLOCKED_ROWS, plans.BLOCKED_DOT, plans.PACKED} <= big
    assert any(m > loops.JB for _, _, m in SHAPES) and any(k > loops.QB for _, k, _ in SHAPES)
    assert any(m > loops.JR_BYTES // 4 for _, _, m in SHAPES) and any(k > loops.KC for _, k, _ in SHAPES)
    blocked = [(n, k, m) for n, k, m in SHAPES if n * k * m >= loops.BLOCKED_WORK]
    # the packed path (version 4) of each product, with and without leftover
    # rows (n mod 8), partial panels (m mod 16 or 32) and reductions longer
    # than one MICRO_KC block; and the older forms beside it
    R, K, KC = loops.MICRO_MIN_ROWS, loops.MICRO_MIN_K, loops.MICRO_KC
    forward = [(n, k, m) for n, k, m in blocked
               if (n >= R or (n >= loops.MICRO_LONG_K_ROWS and k >= loops.MICRO_LONG_K)) and k >= K]
    assert {plans.forward_plan(n, k, m, 16)[0] for n, k, m in forward} == {plans.PACKED}
    dW = [(n, k, m) for n, k, m in blocked if n >= R and m >= K]
    dA = [(n, k, m) for n, k, m in blocked if k >= R and n >= K]
    for packed, rows, red, cols in ((forward, 0, 1, 2), (dW, 0, 2, 1), (dA, 1, 0, 2)):
        assert any(s[rows] % 8 for s in packed) and any(s[rows] % 8 == 0 for s in packed)
        assert any(s[red] > KC for s in packed) and any(s[cols] % 32 for s in packed)
        assert any(s[cols] % 32 == 0 for s in packed)
    assert len(forward) < len(blocked) and len(dW) < len(blocked) and len(dA) < len(blocked)
    # both forms of the blocked forward: dot products (long k) and rows_update
    assert any(k >= loops.DOT_FORM_K for _, k, _ in blocked) and any(k < loops.DOT_FORM_K for _, k, _ in blocked)


def test_one_unit_takes_the_plans_for_one_row():
    """A layer of one unit (the course's binary output): its forward takes
    SIMPLE where the reduction would take dot4x4 blocks (3 of 4 rows empty),
    at every size (above PARALLEL_WORK its reduction in parts on threads),
    rows_update where it is short; below PARALLEL_WORK its dW SIMPLE for a
    batch of at most BLOCK examples, dot4x4 for longer ones; its dA_prev
    SIMPLE (input_gradient's outer product). Above PARALLEL_WORK dW and
    dA_prev take the blocked plans, which run on threads."""
    from kernels.loops import plans
    nr = loops.MICRO_BYTES // 8
    assert plans.forward_plan(1, 784, 600, nr)[0] == plans.SIMPLE
    assert plans.forward_plan(1, 64, 64, nr)[0] == plans.BLOCKED_ROWS
    assert plans.forward_plan(1, 12288, 209, nr)[0] == plans.SIMPLE  # 2.6M multiply-adds
    assert plans.forward_plan(1, 12288, 209, nr, plans.ALWAYS)[0] == plans.SIMPLE
    assert plans.forward_plan(2, 12288, 209, nr)[0] != plans.SIMPLE
    assert plans.weight_gradients_plan(1, 64, 64) == plans.SIMPLE
    assert plans.weight_gradients_plan(1, 64, loops.BLOCK + 1) == plans.BLOCKED_DOT
    assert plans.input_gradient_plan(1, 64, 64) == plans.SIMPLE
    assert plans.input_gradient_plan(1, 64, 300) == plans.SIMPLE
    assert plans.input_gradient_plan(2, 64, 64) == plans.BLOCKED_ROWS
    assert plans.input_gradient_plan(1, 2048, 1024) == plans.BLOCKED_ROWS  # 2.1M multiply-adds


@pytest.mark.parametrize("pool", [1, 2, 3, 8])
def test_a_long_reduction_takes_packed_panels_and_a_tile_a_thread(pool, monkeypatch):
    """From MICRO_LONG_K on, MICRO_LONG_K_ROWS rows take PACKED (fewer, or a
    shorter reduction, keep the blocked forms: the deep network's first
    layer, 20 x 12288 by 12288 x 209), and a parallel packed product takes
    one tile of whole panels a thread of the pool, as the panels allow, or
    more where a tile would pass 256 columns; interpreted (the compiled
    plans see the pool as a constant). Serial: the widest tiles."""
    from kernels.loops import plans
    from kernels.loops.products import packed
    long_k, rows = loops.MICRO_LONG_K, loops.MICRO_LONG_K_ROWS
    for nr in (16, 32):
        assert plans.forward_plan(rows, long_k, 209, nr)[0] == plans.PACKED
        assert plans.forward_plan(rows - 1, long_k, 209, nr)[0] != plans.PACKED
        assert plans.forward_plan(rows, long_k - 1, 209, nr)[0] != plans.PACKED
    monkeypatch.setattr(packed, "POOL_THREADS", pool)
    for nr, m in ((16, 209), (32, 209), (16, 1024), (16, 40)):
        panels = -(-m // nr)
        for n, k in ((20, 12288), (128, 784)):
            plan, tiles, width, _, _ = plans.forward_plan(n, k, m, nr)
            assert plan == plans.PACKED and width % nr == 0 and width <= 256
            assert tiles == -(-m // width)
            assert tiles == max(-(-m // 256), -(-panels // -(-panels // min(pool, panels))))
            assert plans.forward_plan(n, k, m, nr, serial=True)[2] == packed.packed_width(m, nr, True)


def test_the_parallel_variant_is_compiled_for_its_pool():
    """The parallel kernels' names carry the pool's size (their tiling's
    constant), so a pool of another size has cache entries of its own."""
    from kernels import cpu, options
    assert cpu.VARIANTS["parallel"][0] == f"__parallel{options.POOL_THREADS}"
    assert f"__parallel{options.POOL_THREADS}_" in cpu.parallel_kernels.linear_activation_forward.py_func.__name__


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(33, 34, 20), (32, 32, 16)], ids=str)
def test_packed_products_interpreted(shape, dtype):
    """The packed path run by the interpreter (backend "python") gives what
    NumPy gives: the micro-kernels are plain Python until Numba compiles them."""
    n, k, m = shape
    assert n >= loops.MICRO_MIN_ROWS and k >= loops.MICRO_MIN_ROWS
    assert min(n, k, m) >= loops.MICRO_MIN_K
    A, W, b, dZ = layer_arrays(n, k, m, dtype, seed=7)
    Z = np.full((n, m), np.nan, dtype)
    loops.linear_forward(Z, A, W, b)
    _close(Z, (W @ A + b).astype(dtype), k, dtype)
    dW, db = np.full((n, k), np.nan, dtype), np.full((n, 1), np.nan, dtype)
    loops.weight_gradients(dW, db, dZ, A)
    _close(dW, (dZ @ A.T / m).astype(dtype), m, dtype)
    dA = np.full((k, m), np.nan, dtype)
    loops.input_gradient(dA, dZ, W)
    _close(dA, (W.T @ dZ).astype(dtype), n, dtype)


def _blocks_land_transposed(dtype, compiled):
    """transpose8 (into panels) and transpose8_rows (into a 2-D array),
    interpreted and, where ``compiled``, compiled (LLVM's shuffles), at
    offsets in both arrays: the block lands transposed, nothing else changes."""
    from numba import njit
    from kernels.loops.products.transpose import transpose8, transpose8_rows
    src = np.random.default_rng(2).standard_normal((19, 23)).astype(dtype)
    panels, rows = [transpose8], [transpose8_rows]
    if compiled:
        panels.append(njit(lambda dst, d0, d1, d2, src, s0, s1: transpose8(dst, d0, d1, d2, src, s0, s1)))
        rows.append(njit(lambda dst, d1, d2, src, s0, s1: transpose8_rows(dst, d1, d2, src, s0, s1)))
    for run in panels:
        dst = np.full((3, 13, 16), -1.0, dtype)
        run(dst, 2, 4, 5, src, 9, 13)
        want = np.full_like(dst, -1.0)
        want[2, 4:12, 5:13] = src[9:17, 13:21].T
        np.testing.assert_array_equal(dst, want)
    for run in rows:
        dst = np.full((13, 16), -1.0, dtype)
        run(dst, 4, 5, src, 9, 13)
        want = np.full_like(dst, -1.0)
        want[4:12, 5:13] = src[9:17, 13:21].T
        np.testing.assert_array_equal(dst, want)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_an_8x8_block_transposed_in_registers_is_numpys_transpose(dtype):
    """transpose8 and transpose8_rows, compiled and interpreted, land the
    block transposed and change nothing else (_blocks_land_transposed)."""
    _blocks_land_transposed(dtype, compiled=True)


# The same check compiled for a 256-bit target in a process of its own.
_QUARTERS = """
import sys
import numpy as np
sys.path.insert(0, "tests")
from kernels import target
from test_blocked_products import _blocks_land_transposed
assert target.vector_bits() == 256, target.vector_bits()
for dtype in (np.float64, np.float32):
    _blocks_land_transposed(dtype, compiled=True)
print("ok")
"""


def test_avx2_code_transposes_float64_in_quarters(tmp_path):
    """AVX2's float64 blocks go through four 4 x 4 quarters (a ymm register
    a row): compiled for a 256-bit target in a process of its own
    (NUMBA_CPU_NAME=haswell), so that an AVX-512 machine tests them too;
    the block lands transposed, nothing else changes."""
    import os
    import subprocess
    import sys
    import llvmlite.binding as llvm
    from kernels import target
    host = llvm.get_host_cpu_features()  # the CPU itself, whatever NUMBA_CPU_NAME says
    if not target.is_x86() or not (host.get("avx2") and host.get("fma")):
        pytest.skip("runs code compiled for haswell (AVX2, FMA): this CPU is not x86-64 or lacks them")
    env = dict(os.environ, NUMBA_CPU_NAME="haswell", NUMBA_CACHE_DIR=str(tmp_path))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", _QUARTERS], env=env, cwd=root, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


@pytest.mark.parametrize("in_registers", [False, True], ids=["cell-by-cell", "8x8-blocks"])
@pytest.mark.parametrize("nr", [4, 8, 16, 32])
def test_the_transposed_packs_for_every_panel_width(nr, in_registers, monkeypatch):
    """pack_panels of B^T (dW's right-hand factor), interpreted, for panels of
    NR = 4 (128-bit SIMD's float64), 8, 16 and 32 cells, by 8 x 8 blocks and
    cell by cell (TRANSPOSE_ITEMSIZE: the targets differ): rows and reduction
    blocks that are not multiples of 8, a partial last panel zero-filled;
    and pack_transposed (input_gradient's W^T) both ways."""
    from kernels.loops.products import blocked, packed, transpose
    monkeypatch.setattr(packed, "MICRO_BYTES", nr * 8)
    monkeypatch.setattr(transpose, "TRANSPOSE_ITEMSIZE", 8 if in_registers else 0)
    B = np.random.default_rng(nr).standard_normal((45, 30))
    for q0, kc, j0, j1 in ((0, 30, 0, 45), (3, 19, 5, 42), (8, 16, 0, 8), (2, 7, 1, 4)):
        panels = -(-(j1 - j0) // nr)
        P = np.full((panels, kc, nr), np.nan)
        packed.pack_panels(P, B, q0, kc, j0, j1, True)
        cols = np.zeros((kc, panels * nr))
        cols[:, :j1 - j0] = B[j0:j1, q0:q0 + kc].T
        np.testing.assert_array_equal(P, cols.reshape(kc, panels, nr).transpose(1, 0, 2))
        T = np.full((j1 - j0, kc), np.nan)
        blocked.pack_transposed(T, B.T, q0, q0 + kc, j0, j1)  # T[j, p - q0] = B.T[p, j0 + j]
        np.testing.assert_array_equal(T, B[j0:j1, q0:q0 + kc])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_transposed_pack_takes_8x8_blocks_where_a_vector_holds_four_cells(dtype):
    """The choice made from what LLVM reports for the compile target
    (options.TRANSPOSE_ITEMSIZE: 8 bytes where the vectors have 256 bits or
    more, else none): AVX-512 and AVX2 transpose float64 and float32 blocks
    in registers, AVX2's float64 blocks as four 4 x 4 quarters (a ymm
    register a row). Where it does, the compiled pack's x86 assembly has
    shuffles of the target's vectors: zmm for AVX-512's float64, ymm for
    the others (eight float32 cells, or four float64 ones)."""
    import re
    from numba import njit
    from kernels import options, target
    from kernels.loops.products.packed import pack_panels
    from kernels.loops.products.transpose import in_registers
    if not target.is_x86():
        pytest.skip("reads x86-64 assembly; this CPU is not x86-64")
    assert options.TRANSPOSE_ITEMSIZE == (8 if target.vector_bits() >= 256 else 0)
    expected = target.vector_bits() >= 256
    assert in_registers(np.empty(1, dtype)) == expected
    pack = njit(lambda P, B: pack_panels(P, B, 0, 16, 0, 16, True))
    nr = options.MICRO_BYTES // np.dtype(dtype).itemsize
    P, B = np.empty((-(-16 // nr), 16, nr), dtype), np.random.default_rng(0).standard_normal((16, 16)).astype(dtype)
    pack(P, B)
    np.testing.assert_array_equal(P.transpose(1, 0, 2).reshape(16, -1)[:, :16], B.T)
    register = "zmm" if np.dtype(dtype).itemsize == 8 and target.vector_bits() >= 512 else "ymm"
    asm = pack.inspect_asm(pack.signatures[0])
    shuffles = re.findall(rf"\tv(?:unpck[lh]p[sd]|perm[it]2p[sd]|shuf[fi]\w*|perm\w*)\s[^\n]*%{register}", asm)
    if expected:
        assert shuffles, f"no {register} shuffles in the transposed pack"


@pytest.mark.parametrize("transposed", [False, True], ids=["B", "B^T"])
def test_the_packed_tile_hints_every_line_of_the_next_block_once(transposed, monkeypatch):
    """While the micro-kernel works on one block of the reduction, the tile
    hints the next block's cells of B (kernels.loops.memory): interpreted, with the
    hints recorded, every cell of blocks 2, 3, ... is hinted exactly once
    (none of the first block, packed before any work to hide its reads
    behind), across panels, a partial panel and leftover rows; the product
    is NumPy's either way (a hint changes no value)."""
    from kernels.loops.products import packed
    kc = 8
    monkeypatch.setattr(packed, "MICRO_KC", kc)
    hinted = []
    monkeypatch.setattr(packed, "prefetch_rows", lambda B, r0, r1, c0, c1: hinted.append((r0, r1, c0, c1)))
    rng = np.random.default_rng(5)
    n, k, m = 2 * loops.MICRO_ROWS + 3, 3 * kc + 5, 45
    A = rng.standard_normal((n, k))
    B = rng.standard_normal((m, k)) if transposed else rng.standard_normal((k, m))
    C = np.full((n, m), np.nan)
    j0, j1 = 3, 40
    packed.packed_tile(C, A, B, transposed, j0, j1, True, 1.0)
    want = A @ (B.T if transposed else B)
    _close(C[:, j0:j1], want[:, j0:j1], k, np.float64)
    count = np.zeros(B.shape, dtype=int)
    for r0, r1, c0, c1 in hinted:
        count[r0:r1, c0:c1] += 1
    expected = np.zeros(B.shape, dtype=int)
    if transposed:
        expected[j0:j1, kc:] = 1
    else:
        expected[kc:, j0:j1] = 1
    np.testing.assert_array_equal(count, expected)


@pytest.mark.parametrize("compiled", [False, True], ids=["interpreted", "compiled"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_packed_tiles_alpha_scales_the_product_bit_for_bit(dtype, compiled):
    """alpha (dW's 1/m) scales each block in the micro-kernel's registers:
    with one block of the reduction the tile is bit for bit alpha times its
    product (a multiply and one rounding either way: what the separate
    pass over dW did), full panels, the partial one and the leftover rows
    alike, both kinds of B; with several blocks, alpha times the product
    within the tolerance (each block's sum scaled before it is added)."""
    from numba import njit
    from kernels.loops.products import packed
    def tile(C, A, B, t, j0, j1, a):
        packed.packed_tile(C, A, B, t, j0, j1, True, a)
    tile = njit(tile) if compiled else tile
    rng = np.random.default_rng(8)
    n, m = 2 * loops.MICRO_ROWS + 3, 45
    alpha = dtype(1.0 / 37.0)
    for k in (29, loops.MICRO_KC + 29):
        A = rng.standard_normal((n, k)).astype(dtype)
        for transposed in (False, True):
            B = (rng.standard_normal((m, k)) if transposed else rng.standard_normal((k, m))).astype(dtype)
            one, scaled = np.full((n, m), np.nan, dtype), np.full((n, m), np.nan, dtype)
            tile(one, A, B, transposed, 3, 40, dtype(1.0))
            tile(scaled, A, B, transposed, 3, 40, alpha)
            assert scaled.dtype == dtype
            if k <= loops.MICRO_KC:
                np.testing.assert_array_equal(scaled[:, 3:40], one[:, 3:40] * alpha)
            else:
                _close(scaled[:, 3:40], one[:, 3:40] * alpha, k, dtype)
            assert np.isnan(scaled[:, :3]).all() and np.isnan(scaled[:, 40:]).all()


def test_prefetch_hints_compile_to_the_targets_prefetch_and_change_nothing():
    """Compiled, prefetch_rows is llvm.prefetch into the second-level cache:
    x86's prefetcht1 (AArch64's prfm pldl2keep; skipped elsewhere), one per
    cache line of the rows' columns; it reads and writes no cell."""
    import platform
    from numba import njit
    from kernels import target
    from kernels.loops.memory import prefetch_rows
    hint = njit(lambda B, r0, r1, c0, c1: prefetch_rows(B, r0, r1, c0, c1))
    B = np.arange(40.0 * 48).reshape(40, 48)
    before = B.copy()
    hint(B, 3, 30, 5, 47)
    hint(B, 0, 40, 7, 7)  # no columns: no hint, no cell out of range
    np.testing.assert_array_equal(B, before)
    asm = hint.inspect_asm(hint.signatures[0])
    if target.is_x86():
        assert "prefetcht1" in asm
    elif platform.machine().lower() in ("aarch64", "arm64"):
        assert "pldl2keep" in asm
    else:
        pytest.skip("reads x86-64 or AArch64 assembly; this CPU is neither")
