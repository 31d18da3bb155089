"""The packed products' micro-kernels: C[i0:i0+MR, c0:c0+NR] (+)=
alpha A[i0:i0+MR, q0:q0+kc] P[0:kc, 0:NR], with the MR x NR block of C held
in vector registers across the whole reduction and scaled there by alpha
(BLAS's factor of the product) before C is stored: dW's 1/m costs no pass
over dW. MR = MICRO_ROWS and NR =
MICRO_BYTES / itemsize (two vectors) are the target's (kernels.options,
kernels.target.micro_shape): 8 x 16 float64 and 8 x 32 float32 on AVX-512,
3 x 16 and 3 x 32 on AVX2.

The rows x cols cells of C are named scalars (c{r}_{c}): written out, not an
array, so that LLVM keeps them in registers across the q loop, and in
straight lines that its SLP vectorizer packs into vectors (the cols scalars
of one row of C become cols / lanes vector registers, the loads of one panel
row become vector loads, A's value a broadcast). 128 to 256 near-identical
lines would say less than the short generator below, so the kernels are
generated from it; ``MICRO_SOURCES[name]`` holds each one's text, and
``MICRO_KERNELS[dtype bits]`` the kernel (e.g. micro_8x16 for float64).

One kernel per dtype keeps Numba's compile time down (each takes seconds to
compile); the last n mod MR rows of C go through the same kernel from a
zero-padded copy of their rows of A (see packed.panel_rows).
"""

import numpy as np
from numba.extending import overload, register_jitable

from ...options import HELPER_OPTIONS, MICRO_BYTES, MICRO_OPTIONS, MICRO_ROWS
from ...wide import keep_out_of_line, prefer_wide_vectors

# (rows, columns) of the micro-kernels, float64's then float32's.
MICRO_SHAPES = ((MICRO_ROWS, MICRO_BYTES // 8), (MICRO_ROWS, MICRO_BYTES // 4))


def micro_kernel_source(rows, cols):
    """Python source of micro_{rows}x{cols}(C, i0, c0, A, q0, P, kc, accumulate, alpha).

    Every index is an unsigned integer (uint64), every cell read and written
    by its two indices: no views. A view of a row counts a reference on its
    array (a call, an atomic add where the array has a meminfo: 2 x rows a
    call, a large part of a short reduction's time), and a signed index
    makes Numba add a test for negative values (Python's wraparound) that
    keeps LLVM's SLP vectorizer from packing the loads into vectors;
    unsigned ones cannot be negative. The rows' start addresses are the
    same across the q loop, so LLVM computes them once."""
    ind = "    "
    out = [f"def micro_{rows}x{cols}(C, i0, c0, A, q0, P, kc, accumulate, alpha):",
           ind + "prefer_wide_vectors()  # zmm on AVX-512 (kernels.wide)",
           ind + "keep_out_of_line()  # a function of its own (kernels.wide)",
           ind + "zero = C.dtype.type(0.0)",
           ind + "i0 = uint64(i0); c0 = uint64(c0); q0 = uint64(q0)"]
    out += [ind + "; ".join(f"r{r} = i0 + uint64({r})" for r in range(rows))]
    out += [ind + "; ".join(f"j{c} = uint64({c})" for c in range(cols))]
    out += [ind + "; ".join(f"c{r}_{c} = zero" for c in range(cols)) for r in range(rows)]
    out.append(ind + "for q in range(uint64(kc)):")
    out.append(2 * ind + "qa = q0 + q")
    out.append(2 * ind + "; ".join(f"p{c} = P[q, j{c}]" for c in range(cols)))
    for r in range(rows):
        out.append(2 * ind + f"u = A[r{r}, qa]")
        out.append(2 * ind + "; ".join(f"c{r}_{c} += u * p{c}" for c in range(cols)))
    out.append(ind + "if alpha != C.dtype.type(1.0):  # the block scaled in its registers")
    for r in range(rows):
        out.append(2 * ind + "; ".join(f"c{r}_{c} *= alpha" for c in range(cols)))
    for op, flag in (("+=", "if accumulate:"), ("=", "else:")):
        out.append(ind + flag)
        for r in range(rows):
            out.append(2 * ind + "; ".join(f"C[r{r}, c0 + j{c}] {op} c{r}_{c}" for c in range(cols)))
    return "\n".join(out) + "\n"


def _micro_kernel(rows, cols):
    """The generated micro_{rows}x{cols}, compiled with MICRO_OPTIONS where compiled code calls it."""
    name = f"micro_{rows}x{cols}"
    namespace = {"prefer_wide_vectors": prefer_wide_vectors, "keep_out_of_line": keep_out_of_line,
                 "uint64": np.uint64}
    exec(compile(MICRO_SOURCES[name], f"<kernels.loops.products.micro {name}>", "exec"), namespace)
    return register_jitable(**MICRO_OPTIONS)(namespace[name])


MICRO_SOURCES = {f"micro_{r}x{c}": micro_kernel_source(r, c) for r, c in MICRO_SHAPES}
MICRO_KERNELS = {64: _micro_kernel(*MICRO_SHAPES[0]), 32: _micro_kernel(*MICRO_SHAPES[1])}


def micro_block(C, i0, c0, A, q0, P, kc, accumulate, alpha):
    """C[i0:i0+MR, c0:c0+NR] (+)= alpha A[i0:i0+MR, q0:q0+kc] P[0:kc]: the
    dtype's micro-kernel (NR = P.shape[1]; alpha a scalar of C's dtype).
    Compiled, the choice is made at typing time, so only that kernel is
    compiled."""
    MICRO_KERNELS[C.dtype.itemsize * 8](C, i0, c0, A, q0, P, kc, accumulate, alpha)


@overload(micro_block, jit_options=HELPER_OPTIONS)
def _micro_block_compiled(C, i0, c0, A, q0, P, kc, accumulate, alpha):
    kernel = MICRO_KERNELS[C.dtype.bitwidth]

    def impl(C, i0, c0, A, q0, P, kc, accumulate, alpha):
        kernel(C, i0, c0, A, q0, P, kc, accumulate, alpha)
    return impl
