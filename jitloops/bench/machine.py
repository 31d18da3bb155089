"""The machine the benchmarks run on: CPU, caches, clock, BLAS, threads, peaks.

What the compiled code can do (LLVM's CPU name, its features, its vector
width) comes from ``kernels.target``, which knows what Numba compiles for
(``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` can differ from the host);
``/proc/cpuinfo`` and sysfs give only what the target does not know: the
model name, the clock and the cache sizes. The thread controls live here
too: Numba's and BLAS's thread counts are part of what a row ran on, and
so is how far apart the cores are (``handoff_ns``): on a virtual machine
the host may move its vCPUs between neighbouring cores and cores that share
no cache, from one second to the next.
"""

import contextlib
import functools
import os
import platform
import sys
import threading
import time

import numpy as np

import kernels
from jitloops.timing import median_time
from kernels import target

FMA_UNITS = 2          # full-width FMAs a core issues a cycle, assumed (Intel server cores since Skylake-SP)
# Compile targets (LLVM's CPU names) whose AVX-512 runs on 256-bit data
# paths: a 512-bit FMA takes both FMA units, so a core issues one a cycle
# (LLVM does not report this; AMD Zen 4 is the one in use).
HALF_WIDTH_AVX512 = frozenset({"znver4"})


def _cache_sizes():
    """{level: bytes} of the data caches of CPU 0, from sysfs (Linux)."""
    sizes = {}
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for entry in sorted(os.listdir(base)):
            if not entry.startswith("index"):
                continue
            def read(name, entry=entry):
                with open(os.path.join(base, entry, name)) as f:
                    return f.read().strip()
            if read("type") == "Instruction":
                continue
            text = read("size")
            mult = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}.get(text[-1], 1)
            sizes[int(read("level"))] = int(text.rstrip("KMG")) * mult
    except (OSError, ValueError):
        pass
    return sizes or {1: 32 * 1024, 2: 1024 ** 2, 3: 32 * 1024 ** 2}


CACHES = _cache_sizes()


def level_of(nbytes):
    """The smallest cache level a working set of ``nbytes`` fits in, as text."""
    for level in sorted(CACHES):
        if nbytes <= CACHES[level]:
            return f"L{level}"
    return "memory"


def _cpuinfo(key):
    """The first ``key : value`` of /proc/cpuinfo (Linux), or None."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model():
    """The CPU's marketing name ("Intel(R) Xeon(R) Processor"), or the best
    the platform module knows."""
    return _cpuinfo("model name") or platform.processor() or platform.machine() or "unknown CPU"


def _cpu_ghz():
    try:
        return float(_cpuinfo("cpu MHz")) / 1000
    except (TypeError, ValueError):  # no such line, or not a number
        return None


def cpu_info():
    """CPU model, logical cores, and the SIMD extensions and LLVM CPU name
    that Numba compiles for (``kernels.target``: NUMBA_CPU_NAME can differ
    from the host)."""
    feats = target.features()
    simd = [name.replace(".", "_").replace("-", "_") for name in
            ("sse2", "sse4.2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl",
             "avx512fp16", "avx512bf16", "amx-tile", "neon", "sve") if name in feats]
    return dict(model=cpu_model(), cores=os.cpu_count(), simd=simd, llvm_cpu=target.cpu_name(),
                vector_bits=target.vector_bits())


def _blas_info():
    try:
        from threadpoolctl import threadpool_info
        blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    except Exception:
        blas = []
    if not blas:
        return {"name": "unknown", "threads": None}
    from model._fit_env import is_numpy_library
    b = next((i for i in blas if is_numpy_library(i.get("filepath"))), blas[0])  # NumPy's, where several are loaded
    return {"name": f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture', '?')})",
            "threads": b.get("num_threads")}


def numpy_simd():
    """The SIMD targets NumPy's own loops (its ufuncs, not BLAS) dispatch to
    on this CPU, best last (``numpy.show_runtime()``'s "found" list: its
    baseline and the dispatched targets the CPU has and
    NPY_DISABLE_CPU_FEATURES left on); [] where NumPy does not say."""
    try:
        from numpy._core._multiarray_umath import __cpu_baseline__, __cpu_dispatch__, __cpu_features__
    except ImportError:
        return []
    return list(__cpu_baseline__) + [t for t in __cpu_dispatch__ if __cpu_features__.get(t)]


def _numba_threading():
    """(threading layer, thread count); runs one tiny parallel kernel so that
    Numba has picked its layer."""
    import numba
    ops = kernels.get_backend("parallel")
    a = np.ones(8)
    ops.kernels.dot(a, a)
    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = "unknown"
    return layer, numba.get_num_threads()


def torch_version():
    try:
        import torch
        return torch.__version__
    except Exception:
        return None


def torch_cuda_device():
    """The name of the GPU PyTorch would run on, or None (torch absent, built
    without CUDA, or no device). The "torch-cuda" training contender, the
    reference for the cuda backend's figures, runs only where this is set."""
    if torch_version() is None:
        return None
    try:
        import torch
        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:
        pass
    return None


def _gpu_name():
    """The GPU the cuda rows ran on (Numba's view, else PyTorch's), or None."""
    if "cuda" in kernels.available_backends():
        try:
            from numba import cuda
            name = cuda.get_current_device().name
            return name.decode() if isinstance(name, bytes) else str(name)
        except Exception:
            pass
    return torch_cuda_device()


def machine_info():
    """Everything the header line says: CPU, SIMD, versions, threads, BLAS."""
    import llvmlite
    import numba
    cpu = cpu_info()
    layer, nthreads = _numba_threading()
    return dict(
        cpu=cpu["model"], llvm_cpu=cpu["llvm_cpu"], cores=cpu["cores"], simd=cpu["simd"],
        vector_bits=cpu["vector_bits"], ghz=_cpu_ghz(), caches=CACHES,
        numba=numba.__version__, numpy=np.__version__, llvmlite=llvmlite.__version__,
        python=sys.version.split()[0], numba_threading_layer=layer, numba_threads=nthreads,
        blas=_blas_info(), numpy_simd=numpy_simd(), torch=torch_version(), backends=list(kernels.available_backends()),
        gpu=_gpu_name())


def fma_units(info):
    """Full-width vector FMAs a core issues a cycle on the machine ``info``
    describes (vector_bits, llvm_cpu): FMA_UNITS, one where 512-bit vectors
    run on 256-bit data paths (HALF_WIDTH_AVX512)."""
    if info.get("vector_bits") == 512 and info.get("llvm_cpu") in HALF_WIDTH_AVX512:
        return 1
    return FMA_UNITS


def compute_peak(itemsize, threads, info):
    """Peak GFLOP/s = threads x GHz x fma_units(info) x 2 flop per FMA x lanes,
    lanes = vector_bits / (8 x itemsize). None when the clock is unknown."""
    if not info.get("ghz"):
        return None
    lanes = info["vector_bits"] // (8 * itemsize)
    return threads * info["ghz"] * fma_units(info) * 2 * lanes


PEAK_FORMULA = ("compute peak = threads x clock (cpu MHz in /proc/cpuinfo) x {fma} vector FMAs a cycle x 2 flop "
                "x lanes ({bits}-bit vectors: {l64} float64 / {l32} float32), at that clock: a turbo "
                "clock above it gives more than 100%, an AVX-512 clock licence below it less. "
                "Memory-bound rows whose data exceeds the "
                "last cache: % of the measured single-thread copy bandwidth (NumPy copy of {mb} MB, "
                "read + write counted); in-cache memory-bound rows: no % (no simple bound).")


def measure_bandwidth(nbytes=256 * 1024 ** 2):
    """Single-thread copy bandwidth in GB/s (bytes read + written per second)."""
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    t = median_time(lambda: np.copyto(dst, src), min_time=0.2, min_reps=3)
    return 2 * nbytes / t / 1e9


@functools.lru_cache(maxsize=None)
def _bounce():
    """The compiled half of a handoff: turns ``first`` .. ``first + n - 1``
    of a counter two threads take in turns (this thread's are the turns of
    its ``parity``), each waited for and finished with the team's own
    meeting (kernels.loops.team.wait, finish: spin, then yield the core, so
    two threads on one core still finish)."""
    import numba

    from kernels.loops.team import finish, wait

    @numba.njit(nogil=True)
    def bounce(sync, parity, first, n):
        for k in range(first, first + n):
            wait(sync, 2 * k + parity)
            finish(sync)
    return bounce


def usable_cpus():
    """The CPUs this process may run on (its affinity where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def handoff_ns(round_trips=1000, repeats=5):
    """How far apart two cores are: ns for a cache line to go from this
    thread to another and back (the team's meeting counter, each thread
    adding one when it sees its turn), the least of ``repeats`` runs of ``round_trips`` after
    a warm-up (another thread on either core, a BLAS worker still spinning,
    slows a run; the cores' distance is what no run beats). Neighbouring
    cores that share an L3 pass it in tens of ns; cores with no cache in
    common, hundreds (the line goes through the fabric between them), and
    every step a team of threads shares pays that for each line one member
    writes and another reads (model.team). None where this process has one
    CPU."""
    if usable_cpus() < 2:
        return None
    from kernels.loops.team import SYNC_SIZE
    bounce = _bounce()
    warm = 50
    times = []
    for _ in range(repeats):
        sync = np.zeros(SYNC_SIZE, np.int64)
        other = threading.Thread(target=bounce, args=(sync, 1, 0, warm + round_trips), name="jitloops-handoff")
        other.start()
        try:
            bounce(sync, 0, 0, warm)
            t0 = time.perf_counter()
            bounce(sync, 0, warm, round_trips)
            times.append((time.perf_counter() - t0) / round_trips * 1e9)
        finally:
            other.join()
    return float(min(times))


def load_average():
    """The 1-minute load average (NaN where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


# ---------------------------------------------------------------------------
# Thread control


def numba_threads():
    """The threads Numba's parallel loops run on now."""
    import numba
    return numba.get_num_threads()


def set_threads(n):
    """Numba's thread count and the BLAS thread count (and torch's) to ``n``.
    Numba cannot go above NUMBA_NUM_THREADS (the cores, unless set before
    start); returns the count actually set."""
    import numba
    from threadpoolctl import threadpool_limits
    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    threadpool_limits(limits=n, user_api="blas")  # kept: the process-wide setting
    try:
        import torch
        torch.set_num_threads(n)
    except Exception:
        pass
    return n


@contextlib.contextmanager
def blas_threads(n):
    """BLAS limited to ``n`` threads inside the block (``None``: unchanged)."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=n, user_api="blas"):
        yield
