"""kernels.wide: prefer_wide_vectors, the per-function request for 512-bit
vectors that the product helpers make, and SLPCompiler, the compile pipeline
of the packed products' micro-kernels (see kernels/wide.py for why)."""

import numpy as np
import pytest
from numba import njit

from kernels import loops, target
from kernels.wide import ATTRIBUTE, prefer_wide_vectors


def test_interpreted_it_does_nothing():
    assert prefer_wide_vectors() is None


def test_compiled_it_marks_the_enclosing_function_only():
    @njit
    def marked(x):
        prefer_wide_vectors()
        return x + 1.0

    @njit
    def plain(x):
        return x + 1.0

    assert marked(1.0) == 2.0 and plain(1.0) == 2.0
    marked_ir = marked.inspect_llvm(marked.signatures[0])
    assert ATTRIBUTE in marked_ir  # if llvmlite stops taking it, the products lose zmm: say so here
    assert ATTRIBUTE not in plain.inspect_llvm(plain.signatures[0])


# What the compile target has (kernels.target), not the test machine: under
# NUMBA_CPU_NAME=znver1 an AVX-512 machine compiles AVX2 code.
x86_only = pytest.mark.skipif(not target.is_x86(), reason="reads x86-64 assembly; this CPU is not x86-64")


@x86_only
@pytest.mark.skipif("avx512f" not in target.features(),
                    reason="the compile target has no AVX-512: 256-bit vectors are its widest")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_products_use_512_bit_fmas_on_avx512(dtype):
    """On an AVX-512 CPU the register-blocked forward product's inner loops
    are 512-bit (zmm) FMAs, though LLVM's tuning prefers 256 bits elsewhere."""
    from kernels import cpu
    # compiled fresh: code loaded from Numba's cache cannot be inspected;
    # the product's loops are in its tile (kernels.cpu.compile_tiles)
    options = dict(cpu.SERIAL_OPTIONS, cache=False)
    tiles = cpu.compile_tiles("__widecheck", options)
    K = cpu.compile_loops("__widecheck", options, tiles=cpu.callees(tiles))
    rng = np.random.default_rng(0)
    n, k, m = 4, 256, 32  # version 2, dot-product form (n < MICRO_ROWS, k >= DOT_FORM_K)
    A_prev = rng.random((k, m)).astype(dtype)
    W = rng.random((n, k)).astype(dtype)
    b = np.zeros((n, 1), dtype)
    Z = np.empty((n, m), dtype)
    K.linear_forward(Z, A_prev, W, b)
    np.testing.assert_allclose(Z, W @ A_prev, rtol=1e-5 if dtype == np.float32 else 1e-12)
    sig = next(s for s in tiles._dot_tile.signatures if str(s[0].dtype) == np.dtype(dtype).name)
    asm = tiles._dot_tile.inspect_asm(sig)
    wide_fmas = [line for line in asm.splitlines() if "vfmadd" in line and "zmm" in line]
    assert wide_fmas, "no 512-bit FMA in the compiled forward product"


def test_slp_compiler_leaves_numbas_settings_as_they_were():
    from numba.core import config
    before = config.LOOP_VECTORIZE, config.SLP_VECTORIZE
    mr, nr = loops.MICRO_ROWS, loops.MICRO_BYTES // 8
    C = np.zeros((mr, nr))

    @njit
    def call(C, A, P):
        loops.micro_block(C, 0, 0, A, 0, P, P.shape[0], False, C.dtype.type(1.0))

    A = np.arange(mr * 5, dtype=np.float64).reshape(mr, 5)
    P = np.arange(5 * nr, dtype=np.float64).reshape(5, nr)
    call(C, A, P)
    np.testing.assert_array_equal(C, A @ P)  # small integers: exact
    assert (config.LOOP_VECTORIZE, config.SLP_VECTORIZE) == before


def _fmas(asm, packed):
    """FMA instructions of ``asm``: packed (on vectors) or scalar ones."""
    kind = ("pd", "ps") if packed else ("sd", "ss")
    return [line for line in asm.splitlines()
            if "vfmadd" in line and line.split()[0].endswith(kind)]


@x86_only
@pytest.mark.skipif("fma" not in target.features(), reason="the compile target has no FMA instructions")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_micro_kernels_hold_their_block_in_vector_registers(dtype):
    """The SLP vectorizer made each row of the MR x NR block vector registers
    (2 zmm on AVX-512, 4 ymm on AVX2): the micro-kernel's FMAs are all
    packed, at least MR x NR / lanes per q, none scalar. Without SLPCompiler Numba leaves the
    MR x NR scalar FMAs as they are written (float64), or the loop
    vectorizer takes the q loop (float32). And the block fits the target's
    registers: 8 x 2 zmm accumulators on AVX-512, 3 x 4 ymm on AVX2's 16
    (kernels.target.micro_shape)."""
    mr, nr = loops.MICRO_ROWS, loops.MICRO_BYTES // np.dtype(dtype).itemsize
    name = f"micro_{mr}x{nr}"

    @njit(error_model="numpy")
    def call(C, A, P):
        loops.micro_block(C, 0, 0, A, 0, P, P.shape[0], True, C.dtype.type(1.0))

    rng = np.random.default_rng(1)
    A = rng.random((mr, 37)).astype(dtype)
    P = rng.random((37, nr)).astype(dtype)
    C = np.ones((mr, nr), dtype)
    call(C, A, P)
    np.testing.assert_allclose(C, 1 + A.astype(np.float64) @ P, rtol=1e-5 if dtype == np.float32 else 1e-13)
    asm = call.inspect_asm(call.signatures[0])
    body = asm[asm.index(name):]  # the kernel's own function, linked into the caller's module
    lanes = target.vector_bits() // (8 * np.dtype(dtype).itemsize)
    accumulators = mr * nr // lanes
    assert len(_fmas(body, packed=True)) >= accumulators
    assert _fmas(body, packed=False) == []
    assert accumulators + 1 <= target.vector_registers() - 2  # and a broadcast, with room to spare
