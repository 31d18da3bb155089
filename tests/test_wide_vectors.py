"""kernels.wide.prefer_wide_vectors: the per-function request for 512-bit
vectors that the product helpers make (see kernels/wide.py for why)."""

import numpy as np
import pytest
from numba import njit

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


def _host_has_avx512():
    import llvmlite.binding as llvm
    try:
        return bool(llvm.get_host_cpu_features().get("avx512f", False))
    except Exception:  # features unknown: the test below does not apply
        return False


@pytest.mark.skipif(not _host_has_avx512(), reason="this CPU has no AVX-512: 256-bit vectors are its widest")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_products_use_512_bit_fmas_on_avx512(dtype):
    """On an AVX-512 CPU the register-blocked forward product's inner loops
    are 512-bit (zmm) FMAs, though LLVM's tuning prefers 256 bits elsewhere."""
    from kernels import cpu
    # compiled fresh: code loaded from Numba's cache cannot be inspected
    K = cpu.compile_loops("__widecheck", dict(cpu.SERIAL_OPTIONS, cache=False))
    rng = np.random.default_rng(0)
    n, k, m = 8, 256, 32  # version 2, dot-product form (k >= DOT_FORM_K)
    A_prev = rng.random((k, m)).astype(dtype)
    W = rng.random((n, k)).astype(dtype)
    b = np.zeros((n, 1), dtype)
    Z = np.empty((n, m), dtype)
    K.linear_forward(Z, A_prev, W, b)
    np.testing.assert_allclose(Z, W @ A_prev, rtol=1e-5 if dtype == np.float32 else 1e-12)
    sig = next(s for s in K.linear_forward.signatures if str(s[0].dtype) == np.dtype(dtype).name)
    asm = K.linear_forward.inspect_asm(sig)
    wide_fmas = [line for line in asm.splitlines() if "vfmadd" in line and "zmm" in line]
    assert wide_fmas, "no 512-bit FMA in the compiled forward product"
