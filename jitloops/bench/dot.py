"""The dot theme: the course's 1,000,000-element dot product, contender by contender.

The Python loop (the interpreted "python" backend), np.dot on one BLAS thread
and on all, the loop compiled plain (``kernels.simd.compile_variant``: no
fastmath, the SIMD lesson's scalar reduction), with fastmath (the numba
backend's own dot), in parallel, and torch.dot where installed.
"""

import numpy as np

import kernels
from kernels import simd

from .cases import Case
from .machine import numba_threads, torch_version

DOT_N = 1_000_000


def _dot_make(contender, n, dtype, seed=0):
    def make():
        rng = np.random.default_rng(seed)
        a = rng.standard_normal(n).astype(dtype)
        b = rng.standard_normal(n).astype(dtype)
        want = float(np.dot(a.astype(np.float64), b.astype(np.float64)))
        if contender == "python":
            fn = kernels.get_backend("python").kernels.dot
        elif contender.startswith("np.dot"):
            fn = np.dot
        elif contender == "njit":
            from kernels import loops
            fn = simd.compile_variant(loops.dot, fastmath=False, suffix="_bench")
        elif contender == "njit fastmath":
            fn = kernels.get_backend("numba").kernels.dot
        elif contender == "parallel":
            fn = kernels.get_backend("parallel").kernels.dot
        elif contender == "torch":
            import torch
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            def fn(_a, _b):
                return torch.dot(ta, tb).item()
        else:
            raise ValueError(f"unknown dot contender {contender!r}")
        holder = {}

        def run():
            holder["s"] = fn(a, b)

        if contender != "python":
            run()  # compile (or load); the Python loop has nothing to warm

        def check():
            if "s" not in holder:
                run()
            # a float32 sum of 10^6 terms rounds ~ sqrt(n) eps relative to the terms' scale
            scale = np.sqrt(n) * np.std(a.astype(np.float64) * b)
            tol = (1e-3 if np.dtype(dtype) == np.float32 else 1e-9) * max(abs(want), scale)
            assert abs(float(holder["s"]) - want) <= tol, (
                f"dot {contender} {dtype}: got {holder['s']!r}, expected {want!r} (tolerance {tol:.3g})")
        return run, check
    return make


DOT_CONTENDERS = ("python", "np.dot 1 thread", "np.dot all threads", "njit", "njit fastmath",
                  "parallel", "torch")
# the backend each contender runs on, for --backends; torch is no backend and
# runs wherever it is installed, as in the training theme
DOT_BACKENDS = {"python": "python", "np.dot 1 thread": "numpy", "np.dot all threads": "numpy",
                "njit": "numba", "njit fastmath": "numba", "parallel": "parallel", "torch": None}


def dot_cases(sweep="default", dtypes=None, with_torch=None, backends=None):
    """The dot theme: the course's 1M-element demo, contender by contender
    (``backends``: only the contenders on those, and torch; None: all)."""
    if dtypes is None:
        dtypes = ("float64",) if sweep in ("smoke", "quick") else ("float64", "float32")
    if with_torch is None:
        with_torch = torch_version() is not None
    nthreads = numba_threads()
    cases = []
    for dtype in dtypes:
        it = np.dtype(dtype).itemsize
        for c in DOT_CONTENDERS:
            if c == "torch" and not with_torch:
                continue
            if backends is not None and DOT_BACKENDS[c] not in (None, *backends):
                continue
            if c == "python" and dtype != "float64":
                continue  # one slow Python loop is lesson enough
            multi = c in ("np.dot all threads", "parallel", "torch")
            cases.append(Case(
                theme="dot", group=f"dot n={DOT_N:,} {dtype}", contender=c,
                make=_dot_make(c, DOT_N, dtype), size=DOT_N, dtype=dtype, flops=2 * DOT_N,
                nbytes=2 * it * DOT_N, bound="memory", threads=nthreads if multi else 1,
                blas_threads=1 if c in ("np.dot 1 thread", "parallel") else None,
                label=f"dot n={DOT_N:,}", id=f"dot-{dtype}-{c.replace(' ', '_').replace('.', '')}"))
    return cases
