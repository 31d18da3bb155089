"""What a benchmark case is, and the rules every theme's cases share.

A ``Case`` is one contender on one problem; the themes build them
(``ops.ops_cases``, ``training.training_cases``, ``dot.dot_cases``) and the
runner and the pytest-benchmark suites time them. ``assert_close`` is the
check every case makes against NumPy after it was timed. The pure-Python
backend runs only where one call is estimated under ``PY_MAX_ROUND_S``
(``PY_SECONDS_PER_ITER`` per interpreted inner-loop iteration).
"""

import dataclasses
from typing import Callable, Optional

import numpy as np

import kernels

THEMES = ("ops", "training", "dot")
SWEEPS = ("smoke", "quick", "default", "full")
DTYPES = ("float64", "float32")  # the dtypes every backend computes in

PY_SECONDS_PER_ITER = 5e-7  # interpreted inner-loop iteration (measured 250-550 ns)
PY_MAX_ROUND_S = 1.0   # the pure-Python backend only where a call is under this

GPU_CONTENDERS = ("cuda", "torch-cuda")


@dataclasses.dataclass
class Case:
    """One contender on one problem.

    ``make()`` builds the inputs, warms the contender up (so compilation is
    never timed) and returns ``(run, check)``: ``run()`` is what is timed,
    ``check()`` raises AssertionError unless run's results match NumPy's.
    """
    theme: str
    group: str           # contenders of one group are compared with each other
    contender: str       # a backend name, or "np.dot 1 thread", "torch", ...
    make: Callable
    size: float          # the x axis of the plot (m, or elements)
    dtype: str = "float64"
    flops: Optional[float] = None
    nbytes: Optional[float] = None
    bound: str = "compute"   # "compute" or "memory": which CPU peak a row is set against; "gpu": none
    threads: int = 1         # threads the contender computes on (for the peak)
    blas_threads: Optional[int] = None  # BLAS limit while timing (None: as set)
    per_round: int = 1       # iterations per call (training); the table divides
    label: str = ""          # the problem, for the table
    id: str = ""

    @property
    def compiled(self):
        return (self.contender not in ("numpy", "python", "torch", "torch-cuda")
                and not self.contender.startswith("np."))


def _tol(dtype):
    return 2e-4 if np.dtype(dtype) == np.float32 else 1e-9


def assert_close(name, got, want, dtype, scale=None, tol=None):
    """Relative to ``scale`` (default: the largest magnitude of ``want``), within
    ``tol`` (default: the dtype's); names the worst mismatch."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape}, expected {want.shape}"
    if scale is None:
        scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1e-30)
    err = np.abs(got - want) / scale
    worst = float(np.max(err)) if err.size else 0.0
    tol = _tol(dtype) if tol is None else tol
    if not (worst <= tol) or not np.all(np.isfinite(got) == np.isfinite(want)):
        idx = np.unravel_index(int(np.nanargmax(np.where(np.isnan(err), np.inf, err))), err.shape) if err.ndim else ()
        raise AssertionError(f"{name}: max relative error {worst:.3g} > {tol:.0e}; first worst "
                             f"index {idx}: got {got[idx]!r}, expected {want[idx]!r}")


def bound_of(contender, bound):
    """A row's bound: the CPU's peaks say nothing of a GPU's rows ("gpu": no % peak)."""
    return "gpu" if contender in GPU_CONTENDERS else bound


def default_backends():
    """Every available backend, less CUDA under Numba's CUDA simulator (which
    runs kernels in Python threads: correct, far too slow to time)."""
    import numba
    names = list(kernels.available_backends())
    if getattr(numba.config, "ENABLE_CUDASIM", 0):
        names = [b for b in names if b != "cuda"]
    return names
