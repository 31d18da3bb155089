"""jitloops kernels: the course's neural-network math as explicit loops,
vectorized NumPy, and the same loops compiled by Numba.

    import kernels
    ops = kernels.get_backend("parallel")
    Z, A = ops.linear_activation_forward(A_prev, W, b, "relu")

Backends (``kernels.BACKENDS``):
    "python"    kernels/loops.py run by the interpreter
    "numpy"     kernels/vectorized.py, the reference
    "numba"     kernels/loops.py compiled with @njit
    "parallel"  kernels/loops.py compiled with @njit(parallel=True) (prange on all cores)
    "cuda"      numba.cuda kernels on an NVIDIA GPU

Importing this package compiles nothing; a backend's kernels are compiled (or
loaded from Numba's cache) the first time they run for a dtype.
"""

from . import target  # first: NUMBA_CPU_NAME alone means that CPU (see target.py)
from . import threads  # chooses Numba's threading layer before anything starts its pool
from .backend import Ops
from .loops import ACTIVATION_CODES

__all__ = ["BACKENDS", "ACTIVATIONS", "Ops", "BackendUnavailableError",
           "get_backend", "available_backends", "unavailable_reason"]

BACKENDS = ("python", "numpy", "numba", "parallel", "cuda")
ACTIVATIONS = tuple(ACTIVATION_CODES)

_DESCRIPTIONS = {
    "python": "explicit loops, interpreted",
    "numpy": "vectorized NumPy (the reference)",
    "numba": "explicit loops compiled by Numba, one core",
    "parallel": "explicit loops compiled by Numba with prange, all cores",
    "cuda": "numba.cuda kernels on the GPU",
}

_cache = {}


class BackendUnavailableError(RuntimeError):
    """The backend exists but cannot run here; the message says why and how to fix it."""


# Backends whose kernels are kernels/loops.py: they can trade the vectorizable
# approximations of tanh/sigmoid/log for the C math library (exact_math=True).
LOOP_BACKENDS = ("python", "numba", "parallel")


def _make(name, exact_math=False):
    if name == "python":
        from . import loops
        return Ops(name, loops, _DESCRIPTIONS[name], exact_math, loops=True)
    if name == "numpy":
        from . import vectorized
        return Ops(name, vectorized, _DESCRIPTIONS[name])
    if name in ("numba", "parallel"):
        from . import cpu
        kernels = cpu.numba_kernels if name == "numba" else cpu.parallel_kernels
        if name == "parallel":
            threads.start_pool()
            return Ops(name, kernels, _DESCRIPTIONS[name], exact_math, ready=threads.check_fork_safe,
                       loops=True, parallel=True, compiled=True)
        return Ops(name, kernels, _DESCRIPTIONS[name], exact_math, loops=True, compiled=True)
    # name == "cuda": numba-cuda and a GPU (or its simulator) are only looked for now
    from .cuda_support import unavailable_reason as cuda_unavailable_reason
    reason = cuda_unavailable_reason()
    if reason is not None:
        raise BackendUnavailableError(reason)
    from . import cuda
    return cuda.CudaOps(name, cuda, _DESCRIPTIONS[name])


def get_backend(name, *, exact_math=None):
    """The ``Ops`` of backend ``name`` (one of ``BACKENDS``).

    ``exact_math=True`` (backends "python", "numba", "parallel") makes tanh,
    sigmoid, the softmax's exp and the cost's log call the C math library
    instead of the vectorizable approximations of ``kernels.approx`` (within
    2.5 ulp, see its table). The default (None) is exact for "python" and approximate for
    "numba" and "parallel": the approximations only pay once LLVM vectorizes
    them; interpreted, their polynomial costs more than the C library's call.
    Other backends ignore it.

    Raises ValueError for an unknown name and BackendUnavailableError (a
    RuntimeError) for a backend that cannot run on this machine, saying why.
    """
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; valid backends: {', '.join(BACKENDS)}")
    exact = (name == "python") if exact_math is None else bool(exact_math)
    key = (name, exact and name in LOOP_BACKENDS)
    if key not in _cache:
        _cache[key] = _make(name, *key[1:]) if key[1] else _make(name)
    return _cache[key]


def unavailable_reason(name):
    """None if backend ``name`` can run here, else the reason it cannot."""
    try:
        get_backend(name)
    except BackendUnavailableError as exc:
        return str(exc)
    return None


def available_backends():
    """The backends that can run on this machine, in ``BACKENDS`` order."""
    return tuple(n for n in BACKENDS if unavailable_reason(n) is None)
