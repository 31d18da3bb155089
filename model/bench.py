"""``jitloops bench``: race the backends, theme by theme, and say how fast is fast.

Three themes, each a list of ``Case``s (one contender on one problem); the
pytest-benchmark suites in ``benchmarks/`` run the very same cases:

- **ops**: every op of the op API x backend, over a size sweep whose working
  sets fit L1, L2, L3 and main memory, float64 and float32. The raw kernels
  (``ops.kernels``, outputs preallocated) are timed, so the numbers are the
  loops' and not the argument checks'.
- **training**: fit iterations of the course's networks: planar [2, 4, 1]
  m = 400, logistic regression [12288, 1] m = 209, deep [12288, 20, 7, 5, 1]
  m = 209, MNIST-like [784, 128, 64, 1] m = 1024 (and m = 60000 in the full
  sweep), with PyTorch on the CPU as an optional contender.
- **dot**: the course's 1,000,000-element dot product: the Python loop,
  np.dot on one BLAS thread and on all, the loop compiled plain, with
  fastmath, and in parallel (and torch.dot where installed).

Rules every timing follows: the first call (which compiles, or loads from
Numba's cache) is never timed; the time is the median of repeated calls (the
minimum is reported beside it: on a shared machine it is the better estimate
of what the code can do); the
pure-Python backend runs only where one call is estimated under a second;
BLAS threads (which keep spinning ~0.1 s after a NumPy call and slow a Numba
parallel loop that follows ~3x on 2 cores) are given ``BLAS_SETTLE_S`` to go
to sleep before a compiled contender is timed, and are limited to one thread
while a Numba parallel contender runs.

Compile time and cache-load time are measured apart, in fresh processes
(``startup_times``): a process with an empty Numba cache directory compiles,
a second one with that directory loads. ``fit_memory`` compares the peak
memory of a short and a long fit, each in a fresh process.
"""

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Callable, Optional

import numpy as np

import kernels
from kernels import simd
from kernels.loops import ACTIVATION_CODES

THEMES = ("ops", "training", "dot")
SWEEPS = ("smoke", "quick", "default", "full")

BLAS_SETTLE_S = 0.15   # BLAS worker threads spin ~0.1 s after a NumPy call
PY_SECONDS_PER_ITER = 5e-7  # interpreted inner-loop iteration (measured 250-550 ns)
PY_MAX_ROUND_S = 1.0   # the pure-Python backend only where a call is under this
FMA_UNITS = 2          # per core, assumed (Intel server cores since Skylake-SP)

# ---------------------------------------------------------------------------
# The machine


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


def _cpu_ghz():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return float(line.split(":")[1]) / 1000
    except (OSError, ValueError):
        pass
    return None


def _blas_info():
    try:
        from threadpoolctl import threadpool_info
        blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    except Exception:
        blas = []
    if not blas:
        return {"name": "unknown", "threads": None}
    b = blas[0]
    return {"name": f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture', '?')})",
            "threads": b.get("num_threads")}


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


def machine_info():
    """Everything the header line says: CPU, SIMD, versions, threads, BLAS."""
    import llvmlite
    import numba
    cpu = simd.cpu_info()
    layer, nthreads = _numba_threading()
    return dict(
        cpu=cpu["model"], llvm_cpu=cpu["llvm_cpu"], cores=cpu["cores"], simd=cpu["simd"],
        vector_bits=cpu["vector_bits"], ghz=_cpu_ghz(), caches=CACHES,
        numba=numba.__version__, numpy=np.__version__, llvmlite=llvmlite.__version__,
        python=sys.version.split()[0], numba_threading_layer=layer, numba_threads=nthreads,
        blas=_blas_info(), torch=torch_version(), backends=list(kernels.available_backends()),
        gpu=_gpu_name())


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


def compute_peak(itemsize, threads, info):
    """Peak GFLOP/s = threads x GHz x FMA_UNITS x 2 flop per FMA x lanes, lanes =
    vector_bits / (8 x itemsize). None when the clock is unknown."""
    if not info.get("ghz"):
        return None
    lanes = info["vector_bits"] // (8 * itemsize)
    return threads * info["ghz"] * FMA_UNITS * 2 * lanes


PEAK_FORMULA = ("compute peak = threads x clock (cpu MHz in /proc/cpuinfo) x {fma} FMA units x 2 flop "
                "x lanes ({bits}-bit vectors: {l64} float64 / {l32} float32); an upper bound "
                "(turbo and AVX-512 clock licences move it). Memory-bound rows whose data exceeds the "
                "last cache: % of the measured single-thread copy bandwidth (NumPy copy of {mb} MB, "
                "read + write counted); in-cache memory-bound rows: no % (no simple bound).")


def measure_bandwidth(nbytes=256 * 1024 ** 2):
    """Single-thread copy bandwidth in GB/s (bytes read + written per second)."""
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    t = simd.median_time(lambda: np.copyto(dst, src), min_time=0.2, min_reps=3)
    return 2 * nbytes / t / 1e9


# ---------------------------------------------------------------------------
# Thread control


def _load():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


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


# ---------------------------------------------------------------------------
# Cases


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


def assert_close(name, got, want, dtype, scale=None):
    """Relative to ``scale`` (default: the largest magnitude of ``want``); names
    the worst mismatch."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape}, expected {want.shape}"
    if scale is None:
        scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1e-30)
    err = np.abs(got - want) / scale
    worst = float(np.max(err)) if err.size else 0.0
    if not (worst <= _tol(dtype)) or not np.all(np.isfinite(got) == np.isfinite(want)):
        idx = np.unravel_index(int(np.nanargmax(np.where(np.isnan(err), np.inf, err))), err.shape) if err.ndim else ()
        raise AssertionError(f"{name}: max relative error {worst:.3g} > {_tol(dtype):.0e}; first worst "
                             f"index {idx}: got {got[idx]!r}, expected {want[idx]!r}")


# ----- ops


_CODE = ACTIVATION_CODES  # the raw kernels take activation codes, not names

OPS_LAYER = (32, 32)     # (n, k) of the layer the ops sweep uses
OPS_SIZES = {            # m, the number of examples, per sweep
    "smoke": (64,),
    "quick": (64, 2048),
    "default": (64, 2048, 65536),
    "full": (64, 2048, 65536, 1 << 20),
}
# op name -> (kernel name, activation, bound)
OPS = {
    "linear_forward": ("linear_forward", None, "compute"),
    "linear_activation_forward[relu]": ("linear_activation_forward", "relu", "compute"),
    "activation_forward[tanh]": ("activation_forward", "tanh", "memory"),
    "activation_forward[sigmoid]": ("activation_forward", "sigmoid", "memory"),
    "activation_backward[relu]": ("activation_backward", "relu", "memory"),
    "linear_backward": ("linear_backward", None, "compute"),
    "linear_activation_backward[tanh]": ("linear_activation_backward", "tanh", "compute"),
    "cross_entropy": ("cross_entropy", None, "memory"),
    "cross_entropy_backward": ("cross_entropy_backward", None, "memory"),
    "gradient_step": ("gradient_step", None, "memory"),
}


def _op_problem(op, n, k, m, dtype, rng):
    """(inputs, output shapes, call(kernels, outs, ins) -> result, flops,
    bytes, python work) of ``op`` on a layer (n, k) with m examples."""
    kname, act, _ = OPS[op]
    dt = np.dtype(dtype)
    it = dt.itemsize
    f = lambda *shape: rng.standard_normal(shape).astype(dt)
    code = _CODE.get(act)
    if kname in ("linear_forward", "linear_activation_forward"):
        ins = dict(A_prev=f(k, m), W=(f(n, k) / np.sqrt(k)).astype(dt), b=f(n, 1))
        outs = [(n, m)] if kname == "linear_forward" else [(n, m), (n, m)]
        if kname == "linear_forward":
            call = lambda K, o, i: K.linear_forward(o[0], i["A_prev"], i["W"], i["b"])
        else:
            call = lambda K, o, i: K.linear_activation_forward(o[0], o[1], i["A_prev"], i["W"], i["b"], code)
        flops = 2 * n * k * m
        nbytes = it * (k * m + n * k + n + len(outs) * n * m)
        return ins, outs, call, flops, nbytes, n * k * m
    if kname == "activation_forward":
        ins = dict(Z=f(n, m))
        call = lambda K, o, i: K.activation_forward(o[0], i["Z"], code)
        return ins, [(n, m)], call, n * m, 2 * it * n * m, n * m
    if kname == "activation_backward":
        ins = dict(dA=f(n, m), Z=f(n, m))
        call = lambda K, o, i: K.activation_backward(o[0], i["dA"], i["Z"], code)
        return ins, [(n, m)], call, n * m, 3 * it * n * m, n * m
    if kname in ("linear_backward", "linear_activation_backward"):
        ins = dict(A_prev=f(k, m), W=(f(n, k) / np.sqrt(k)).astype(dt), dZ=f(n, m), Z=f(n, m))
        if kname == "linear_backward":
            outs = [(k, m), (n, k), (n, 1)]
            call = lambda K, o, i: K.linear_backward(o[0], o[1], o[2], i["dZ"], i["A_prev"], i["W"])
        else:
            outs = [(k, m), (n, k), (n, 1), (n, m)]
            call = lambda K, o, i: K.linear_activation_backward(o[0], o[1], o[2], o[3], i["dZ"], i["Z"],
                                                                i["A_prev"], i["W"], code)
        flops = 4 * n * k * m + n * m
        nbytes = it * (2 * k * m + 2 * n * k + n + (3 if act else 1) * n * m)
        return ins, outs, call, flops, nbytes, 2 * n * k * m
    # (1, M) rows for the cost ops and the flat update: M = n * m elements
    M = n * m
    eps = float(np.finfo(dt).eps)
    if kname in ("cross_entropy", "cross_entropy_backward"):
        ins = dict(AL=rng.uniform(0.01, 0.99, (1, M)).astype(dt),
                   Y=(rng.random((1, M)) < 0.5).astype(dt))
        if kname == "cross_entropy":
            return ins, [], lambda K, o, i: K.cross_entropy(i["AL"], i["Y"], eps), 6 * M, 2 * it * M, M
        call = lambda K, o, i: K.cross_entropy_backward(o[0], i["AL"], i["Y"], eps)
        return ins, [(1, M)], call, 5 * M, 3 * it * M, M
    # gradient_step: out = param - lr * grad, (n, m) arrays
    ins = dict(param=f(n, m), grad=f(n, m))
    call = lambda K, o, i: K.gradient_step(o[0], i["param"], i["grad"], 0.01)
    return ins, [(n, m)], call, 2 * n * m, 3 * it * n * m, n * m


def _op_make(op, backend, n, k, m, dtype, seed):
    def make():
        rng = np.random.default_rng(seed)
        ins, out_shapes, call, *_ = _op_problem(op, n, k, m, dtype, rng)
        # the reference: the numpy backend on the same inputs
        ref_outs = [np.empty(s, dtype) for s in out_shapes]
        ref_result = call(kernels.get_backend("numpy").kernels, ref_outs, ins)
        ops = kernels.get_backend(backend)
        dev_ins = {name: ops.asarray(x) for name, x in ins.items()}
        outs = [ops.empty(s, dtype) for s in out_shapes]
        K = ops.kernels
        holder = {}

        def run():
            holder["result"] = call(K, outs, dev_ins)
            ops.synchronize()

        if backend != "python":
            run()  # compile / load from cache: never timed

        def check():
            if "result" not in holder:
                run()
            for idx, (got, want) in enumerate(zip(outs, ref_outs)):
                assert_close(f"{op} {backend} {dtype} m={m} output {idx}", ops.to_host(got), want, dtype)
            if ref_result is not None:
                assert_close(f"{op} {backend} {dtype} m={m} result", holder["result"], ref_result, dtype)
        return run, check
    return make


# the pure-Python backend's budget per call, by sweep (quick keeps it short)
PY_MAX_S = {"smoke": 0.1, "quick": 0.1, "default": PY_MAX_ROUND_S, "full": PY_MAX_ROUND_S}


def ops_cases(sweep="default", backends=None, dtypes=("float64", "float32"), ops_names=None, seed=0):
    """The ops theme: op x size x dtype x backend."""
    backends = backends or default_backends()
    n, k = OPS_LAYER
    cases = []
    nthreads = _threads()
    for op in ops_names or OPS:
        bound = OPS[op][2]
        for dtype in dtypes:
            for m in OPS_SIZES[sweep]:
                flops, nbytes, work = op_sizes(op, n, k, m, dtype)
                level = level_of(nbytes)
                for backend in backends:
                    if backend == "python" and work * PY_SECONDS_PER_ITER > PY_MAX_S[sweep]:
                        continue
                    threads = nthreads if backend in ("parallel", "cuda") or (
                        backend == "numpy" and bound == "compute") else 1
                    cases.append(Case(
                        theme="ops", group=f"ops {op} {dtype} m={m} ({level})", contender=backend,
                        make=_op_make(op, backend, n, k, m, dtype, seed), size=m, dtype=dtype,
                        flops=flops, nbytes=nbytes, bound=_bound(backend, bound), threads=threads,
                        blas_threads=1 if backend == "parallel" else None,
                        label=f"{op} (n,k)=({n},{k}) m={m} [{level}]",
                        id=f"{op}-{dtype}-m{m}-{backend}"))
    return cases


class _NoRng:
    """Stands in for a Generator when only the sizes of a problem are wanted."""
    def __init__(self, dtype):
        self.dtype = dtype

    def standard_normal(self, shape):
        return np.zeros(shape)

    def uniform(self, lo, hi, shape):
        return np.zeros(shape)

    def random(self, shape):
        return np.zeros(shape)


def op_sizes(op, n, k, m, dtype):
    """(flops, bytes, python inner iterations) of ``op`` at m examples: each is
    affine in m, so it is read off two one- and two-example problems without
    allocating the real one."""
    one = _op_problem(op, n, k, 1, dtype, _NoRng(dtype))[3:]
    two = _op_problem(op, n, k, 2, dtype, _NoRng(dtype))[3:]
    return tuple(a + (b - a) * (m - 1) for a, b in zip(one, two))


GPU_CONTENDERS = ("cuda", "torch-cuda")


def _bound(contender, bound):
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


def _threads():
    import numba
    return numba.get_num_threads()


# ----- training

# name -> (layer dims, hidden activation, m, learning rate, iterations per round, sweeps).
# A round is one fit(iterations=K) call, K large enough that fit's own per-call
# work (checking X, allocating its buffers) is small next to K iterations; the
# tables divide by K. The smoke sweep runs 2 per round (it checks, not times).
TRAINING = {
    "planar": ([2, 4, 1], "tanh", 400, 1.2, 100, SWEEPS),
    "logistic": ([12288, 1], None, 209, 0.005, 10, SWEEPS),
    "deep": ([12288, 20, 7, 5, 1], "relu", 209, 0.0075, 10, SWEEPS),
    "mnist": ([784, 128, 64, 1], "relu", 1024, 0.1, 5, SWEEPS),
    "mnist60k": ([784, 128, 64, 1], "relu", 60000, 0.1, 2, ("full",)),
}
SMOKE_PER_ROUND = 2


def training_data(name, dtype, seed=1):
    dims, _, m, *_ = TRAINING[name]
    if name == "planar":
        try:
            from model import datasets
            X, Y = datasets.planar()
            return np.ascontiguousarray(X, dtype=dtype), np.ascontiguousarray(Y, dtype=dtype)
        except Exception:
            pass
    rng = np.random.default_rng(seed)
    X = rng.random((dims[0], m)).astype(dtype)          # pixel-like, in [0, 1)
    w = rng.standard_normal(dims[0])
    Y = ((w @ (X - 0.5)) > 0).astype(dtype).reshape(1, m)  # learnable labels
    return X, Y


def training_flops(dims, m):
    """Multiply-adds x 2 of forward (W A), backward (dW and dA_prev) and the update."""
    mac = sum(dims[l] * dims[l - 1] for l in range(1, len(dims)))
    return 2 * 3 * mac * m


def _new_net(name, backend, dtype, seed=3):
    import model
    dims, act, *_ = TRAINING[name]
    if act is None:  # starts at zero: no seed
        return model.LogisticRegression(dims[0], backend=backend, dtype=dtype)
    return model.NeuralNetwork(dims, activations=act or "relu", backend=backend, seed=seed, dtype=dtype)


def _params_scale(params):
    """The largest parameter magnitude of a network: errors of parameters
    that are still tiny (biases after a few steps) are measured against it."""
    return max(float(np.max(np.abs(np.asarray(v)))) for v in params.values()) or 1.0


def _training_make(name, contender, dtype, per_round):
    dims, act, m, lr, _, _ = TRAINING[name]

    def make():
        X, Y = training_data(name, dtype)
        if contender in ("torch", "torch-cuda"):
            return _torch_training(name, X, Y, dtype, per_round,
                                   device="cuda" if contender == "torch-cuda" else "cpu")
        net = _new_net(name, contender, dtype)

        def run():
            net.fit(X, Y, iterations=per_round, learning_rate=lr)
            kernels.get_backend(contender).synchronize()

        run()  # compile / load from cache

        def check():
            if contender == "numpy":
                assert np.isfinite(net.cost(X, Y))  # the reference itself
                return
            # fresh nets from one seed, the same iterations: they agree with numpy's
            got = _new_net(name, contender, dtype).fit(X, Y, iterations=per_round, learning_rate=lr)
            want = _new_net(name, "numpy", dtype).fit(X, Y, iterations=per_round, learning_rate=lr)
            gp, wp = got.parameters, want.parameters
            assert set(gp) == set(wp)
            for key in wp:
                assert_close(f"training {name} {contender} {dtype} {key}", gp[key], wp[key], dtype,
                             scale=_params_scale(wp))
        return run, check
    return make


def _torch_training(name, X, Y, dtype, per_round, device="cpu"):
    """PyTorch doing the same step on ``device`` ("cpu", or "cuda": the GPU
    reference for the cuda backend): forward, binary cross-entropy, autograd
    backward, in-place gradient step; parameters from the numpy backend's
    initialization, so ``check`` compares against it. On the GPU the data is
    copied there once, before timing, as the cuda backend's fit does, and
    each round ends with a synchronize (GPU work is queued)."""
    import torch
    import torch.nn.functional as F

    dims, act, m, lr, _, _ = TRAINING[name]
    L = len(dims) - 1
    tdtype = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
    init = _new_net(name, "numpy", dtype).parameters
    if "w" in init:  # LogisticRegression's {"w": (n_x, 1), "b": float}
        init = {"W1": init["w"].T.copy(), "b1": np.full((1, 1), init["b"], dtype)}
    g = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "linear": lambda z: z,
         "leaky_relu": lambda z: F.leaky_relu(z, 0.01), None: torch.relu}[act]
    tX, tY = torch.from_numpy(X).to(device), torch.from_numpy(Y).to(device)

    def sync():
        if device != "cpu":
            torch.cuda.synchronize()

    def fresh():
        return [torch.tensor(init[f"{w}{l}"], dtype=tdtype, device=device, requires_grad=True)
                for l in range(1, L + 1) for w in "Wb"]

    def step(params):
        A = tX
        for l in range(L):
            Z = params[2 * l] @ A + params[2 * l + 1]
            A = torch.sigmoid(Z) if l == L - 1 else g(Z)
        cost = F.binary_cross_entropy(A, tY)   # -(1/m) sum(Y log A + (1-Y) log(1-A))
        grads = torch.autograd.grad(cost, params)
        with torch.no_grad():
            for p, dp in zip(params, grads):
                p -= lr * dp

    params = fresh()

    def run():
        for _ in range(per_round):
            step(params)
        sync()

    run()

    def check():
        mine = fresh()
        for _ in range(per_round):
            step(mine)
        sync()
        want = _new_net(name, "numpy", dtype).fit(X, Y, iterations=per_round, learning_rate=lr).parameters
        if "w" in want:
            want = {"W1": want["w"].T, "b1": np.full((1, 1), want["b"])}
        for l in range(1, L + 1):
            for j, w in enumerate("Wb"):
                assert_close(f"training {name} torch ({device}) {dtype} {w}{l}",
                             mine[2 * (l - 1) + j].detach().cpu().numpy(), want[f"{w}{l}"], dtype,
                             scale=_params_scale(want))
    return run, check


def training_cases(sweep="default", backends=None, dtypes=("float64", "float32"), names=None,
                   with_torch=None):
    """The training theme: network x dtype x contender (the backends, and
    torch where ``with_torch`` (default: where installed): on the CPU, and
    "torch-cuda" on the GPU where PyTorch sees one)."""
    backends = backends or default_backends()
    if with_torch is None:
        with_torch = torch_version() is not None
    torch_contenders = ["torch"] + (["torch-cuda"] if torch_cuda_device() else []) if with_torch else []
    nthreads = _threads()
    cases = []
    for name in names or TRAINING:
        dims, act, m, lr, per_round, sweeps = TRAINING[name]
        if sweep not in sweeps:
            continue
        for dtype in dtypes:
            contenders = list(backends) + torch_contenders
            for c in contenders:
                k = {"smoke": SMOKE_PER_ROUND, "quick": max(2, per_round // 5)}.get(sweep, per_round)
                if c == "python":  # the interpreter: a tenth of the iterations, if under a second
                    k = max(1, k // 10)
                    if training_flops(dims, m) * k / 2 * PY_SECONDS_PER_ITER > PY_MAX_ROUND_S:
                        continue
                flops = training_flops(dims, m) * k
                per_round_c = k
                cases.append(Case(
                    theme="training", group=f"training {name} {dims} m={m} {dtype} ({k} iterations/round)",
                    contender=c,
                    make=_training_make(name, c, dtype, per_round_c), size=m, dtype=dtype, flops=flops,
                    bound=_bound(c, "compute"), threads=1 if c in ("python", "numba") else nthreads,
                    blas_threads=1 if c == "parallel" else None, per_round=per_round_c,
                    label=f"{name} {dims} m={m}", id=f"{name}-{dtype}-{c}"))
    return cases


# ----- dot

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


def dot_cases(sweep="default", dtypes=None, with_torch=None):
    """The dot theme: the course's 1M-element demo, contender by contender."""
    if dtypes is None:
        dtypes = ("float64",) if sweep in ("smoke", "quick") else ("float64", "float32")
    if with_torch is None:
        with_torch = torch_version() is not None
    nthreads = _threads()
    cases = []
    for dtype in dtypes:
        it = np.dtype(dtype).itemsize
        for c in DOT_CONTENDERS:
            if c == "torch" and not with_torch:
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


def all_cases(themes=THEMES, sweep="default", **kw):
    cases = []
    if "ops" in themes:
        default = ("float64",) if sweep == "quick" else ("float64", "float32")
        cases += ops_cases(sweep, backends=kw.get("backends"), dtypes=kw.get("dtypes") or default)
    if "training" in themes:
        cases += training_cases(sweep, backends=kw.get("backends"),
                                dtypes=kw.get("dtypes") or ("float64", "float32"))
    if "dot" in themes:
        cases += dot_cases(sweep, dtypes=kw.get("dtypes"))
    return cases


# ---------------------------------------------------------------------------
# Running a sweep


class Skip(Exception):
    """A contender that cannot run here (torch not installed, model missing)."""


def prepare(case):
    """``case.make()`` with missing optional contenders turned into ``Skip``."""
    try:
        return case.make()
    except ModuleNotFoundError as exc:
        if exc.name in ("torch", "model") or (exc.name or "").startswith(("torch.", "model.")):
            raise Skip(f"{case.contender}: {exc.name} is not installed") from exc
        raise
    except (ImportError, AttributeError) as exc:
        if case.theme == "training":
            raise Skip(f"{case.contender}: the model layer is not available ({exc})") from exc
        raise


def time_case(case, min_time=0.1, check=True, settle=None):
    """(median, minimum) seconds per call of one case (its warm-up call
    excluded), with the BLAS limit of the case and the settle pause before
    compiled code (``settle``: pause or not, default: for compiled contenders).
    On a shared machine the minimum is the better estimate of what the code
    can do; the median says what it did."""
    with blas_threads(case.blas_threads):
        run, chk = prepare(case)
        if case.compiled if settle is None else settle:
            time.sleep(BLAS_SETTLE_S)
        # the pure-Python contender: three calls, they are long
        times = simd.timings(run, min_time=min_time, min_reps=3,
                             max_reps=3 if case.contender == "python" else 10_000, warmup=0)
        if check:
            chk()
    return float(np.median(times)), float(np.min(times))


# Training contenders of one problem are timed in turns, ROUNDS of them: a
# slow drift of the shared machine (another job taking a core for a minute)
# then lands on every contender alike instead of on whichever ran during it,
# so the ratios the goals are stated in hold better. (Ops and dot groups are
# many and short; their contenders run one after the other.)
INTERLEAVED_THEMES = ("training",)
ROUNDS = 5


def _row(case):
    return dict(theme=case.theme, group=case.group, contender=case.contender, label=case.label,
                dtype=case.dtype, size=case.size, flops=case.flops, nbytes=case.nbytes,
                bound=case.bound, threads=case.threads, per_round=case.per_round, id=case.id)


def _settle(case, previous):
    """Pause before compiled code (BLAS threads spinning) and after parallel
    code (the OpenMP/TBB workers spin too before they sleep)?"""
    return case.compiled or previous in ("parallel", "cuda")


def run_cases(cases, min_time=0.1, check=True, progress=None, rounds=ROUNDS):
    """Time every case; returns a list of result dicts (one per case that ran).
    Consecutive cases of one group of an INTERLEAVED_THEMES theme are timed
    in ``rounds`` turns (see time_group)."""
    results = []
    previous = None
    i = 0
    while i < len(cases):
        case = cases[i]
        j = i + 1
        if case.theme in INTERLEAVED_THEMES and rounds > 1:
            while j < len(cases) and cases[j].group == case.group:
                j += 1
        group = cases[i:j]
        if progress:
            progress(i, len(cases), case)
        if len(group) > 1:
            results += time_group(group, min_time, check, rounds, previous)
            previous = group[-1].contender
        else:
            row = _row(case)
            settle = _settle(case, previous)
            previous = case.contender
            try:
                row["time_s"], row["time_min_s"] = time_case(case, min_time, check, settle)
            except Skip as exc:
                row["skipped"] = str(exc)
            results.append(row)
        i = j
    return results


def time_group(cases, min_time=0.1, check=True, rounds=ROUNDS, previous=None):
    """Result rows of the cases of one group, timed in turns: every contender
    is made (and warmed up: compiled) first, then each round times each
    contender for min_time / rounds (the pure-Python one: one call a round),
    with the same BLAS limits and settle pauses as time_case. Median and
    minimum are over all the calls of all rounds. ``previous``: the contender
    timed just before the group (its workers may still spin)."""
    rows = [_row(c) for c in cases]
    prepared = {}
    for k, case in enumerate(cases):
        with blas_threads(case.blas_threads):
            try:
                prepared[k] = prepare(case)
            except Skip as exc:
                rows[k]["skipped"] = str(exc)
    if prepared:  # its warm-up ran last
        previous = cases[max(prepared)].contender
    times = {k: [] for k in prepared}
    for _ in range(rounds):
        for k, (run, _) in prepared.items():
            case = cases[k]
            with blas_threads(case.blas_threads):
                if _settle(case, previous):
                    time.sleep(BLAS_SETTLE_S)
                times[k] += simd.timings(run, min_time=min_time / rounds, min_reps=1,
                                         max_reps=1 if case.contender == "python" else 10_000, warmup=0)
            previous = case.contender
    for k, (_, chk) in prepared.items():
        if check:
            with blas_threads(cases[k].blas_threads):
                chk()
        rows[k]["time_s"], rows[k]["time_min_s"] = float(np.median(times[k])), float(np.min(times[k]))
    return rows


def add_metrics(results, info, bandwidth):
    """speed-up over numpy, GFLOP/s, GB/s and % of peak, in place."""
    key = lambda r: (r["theme"], r["label"], r["dtype"])  # the problem, whatever the rounds
    base = {key(r): r["time_s"] / r["per_round"] for r in results
            if r["contender"] in ("numpy", "np.dot all threads") and "time_s" in r}
    for r in results:
        if "time_s" not in r:
            continue
        t = r["time_s"]
        r["per_iteration_s"] = t / r["per_round"]
        r["per_iteration_min_s"] = r.get("time_min_s", t) / r["per_round"]
        r["speedup_vs_numpy"] = base[key(r)] / r["per_iteration_s"] if key(r) in base else None
        r["gflops"] = r["flops"] / t / 1e9 if r["flops"] else None
        r["gbs"] = r["nbytes"] / t / 1e9 if r["nbytes"] else None
        r["peak_fraction"] = None
        if r["bound"] == "compute" and r["gflops"]:
            peak = compute_peak(np.dtype(r["dtype"]).itemsize, r["threads"], info)
            r["peak_fraction"] = r["gflops"] / peak if peak else None
        elif r["bound"] == "memory" and r["gbs"] and bandwidth and level_of(r["nbytes"]) == "memory":
            # only where the data comes from main memory: in-cache rows have no such bound
            r["peak_fraction"] = r["gbs"] / bandwidth
    return results


# ---------------------------------------------------------------------------
# Compile and cache-load time, in fresh processes

_STARTUP_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import kernels
t_import = time.perf_counter() - t0
backend = sys.argv[1]
ops = kernels.get_backend(backend)
K = ops.kernels
n, k, m = 4, 3, 5
f = lambda *s: np.full(s, 0.5)
A, W, b, Z, A2 = f(k, m), f(n, k), f(n, 1), f(n, m), f(n, m)
dA, dW, db, dZ = f(k, m), f(n, k), f(n, 1), f(n, m)
AL, Y, row = f(1, m), f(1, m), f(1, m)
calls = {
    "linear_forward": lambda: K.linear_forward(Z, A, W, b),
    "linear_activation_forward": lambda: K.linear_activation_forward(Z, A2, A, W, b, 1),
    "activation_forward": lambda: K.activation_forward(A2, Z, 1),
    "activation_backward": lambda: K.activation_backward(dZ, A2, Z, 1),
    "linear_backward": lambda: K.linear_backward(dA, dW, db, dZ, A, W),
    "linear_activation_backward": lambda: K.linear_activation_backward(dA, dW, db, dZ, A2, Z, A, W, 1),
    "cross_entropy": lambda: K.cross_entropy(AL, Y, 1e-16),
    "cross_entropy_backward": lambda: K.cross_entropy_backward(row, AL, Y, 1e-16),
    "gradient_step": lambda: K.gradient_step(W, W, dW, 0.1),
    "dot": lambda: K.dot(A[0], A[0]),
}
first = {}
for name, call in calls.items():
    t = time.perf_counter(); call(); first[name] = time.perf_counter() - t
fit = None
if len(sys.argv) > 2:
    t = time.perf_counter()
    import model
    from model import bench
    X, Y = bench.training_data("planar", "float64")
    net = model.NeuralNetwork([2, 4, 1], activations="tanh", backend=backend, seed=2)
    net.fit(X, Y, iterations=1, learning_rate=1.2)
    fit = time.perf_counter() - t
print(json.dumps(dict(import_s=t_import, first_calls_s=first, first_fit_s=fit,
                      total_s=time.perf_counter() - t0)))
"""


def _model_available():
    try:
        import model
        return hasattr(model, "NeuralNetwork")
    except Exception:
        return False


def startup_times(backends=("numba", "parallel"), with_fit=None):
    """For each compiled backend, two fresh processes sharing an empty Numba
    cache directory: the first compiles every op (float64), the second loads
    them from the cache. With the model available, each then also runs one
    planar fit iteration (compiling or loading the model's loops too).
    Returns a list of dicts: backend, phase ('compile'/'cache load'),
    import_s, ops_s (first calls of the ops), fit_s, wall_s (the whole process,
    interpreter start included)."""
    if with_fit is None:
        with_fit = _model_available()
    rows = []
    for backend in backends:
        with tempfile.TemporaryDirectory(prefix="jitloops-cache-") as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            for phase in ("compile", "cache load"):
                argv = [sys.executable, "-c", _STARTUP_SCRIPT, backend] + (["fit"] if with_fit else [])
                t = time.perf_counter()
                proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
                wall = time.perf_counter() - t
                if proc.returncode != 0:
                    rows.append(dict(backend=backend, phase=phase, error=proc.stderr.strip()[-500:]))
                    continue
                out = json.loads(proc.stdout.strip().splitlines()[-1])
                rows.append(dict(backend=backend, phase=phase, import_s=out["import_s"],
                                 ops_s=sum(out["first_calls_s"].values()),
                                 per_op_s=out["first_calls_s"], fit_s=out["first_fit_s"], wall_s=wall))
    return rows


_MEMORY_SCRIPT = r"""
import json, resource, sys, tracemalloc
import numpy as np
import model
from model import bench
backend, iterations = sys.argv[1], int(sys.argv[2])
X, Y = bench.training_data("planar", "float64")
net = model.NeuralNetwork([2, 4, 1], activations="tanh", backend=backend, seed=2)
net.fit(X, Y, iterations=1, learning_rate=1.2)          # compile / load: not counted
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
net.fit(X, Y, iterations=iterations, learning_rate=1.2)
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(iterations=iterations, traced_peak_bytes=peak, maxrss_growth_kib=rss1 - rss0,
                      final_cost=float(net.cost(X, Y)))))
"""


def fit_memory(backend="numba", counts=(100, 10_000)):
    """Peak memory of one planar fit of each iteration count, each in a fresh
    process after a warm-up fit: tracemalloc's peak (NumPy's allocations,
    costs_ included) and the growth of the process's maximum RSS. Flat
    numbers mean fit's memory does not grow with the iterations."""
    rows = []
    for n in counts:
        proc = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, backend, str(n)],
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            rows.append(dict(backend=backend, iterations=n, error=proc.stderr.strip()[-500:]))
            continue
        rows.append(dict(backend=backend, **json.loads(proc.stdout.strip().splitlines()[-1])))
    return rows


def memory_table(rows):
    out = []
    for r in rows:
        if "error" in r:
            out.append([r["backend"], str(r["iterations"]), "error", r["error"][:60]])
            continue
        out.append([r["backend"], f"{r['iterations']:,}", f"{r['traced_peak_bytes'] / 1024:.1f} KiB",
                    f"{r['maxrss_growth_kib']} KiB"])
    return _table(["backend", "fit iterations", "traced peak (tracemalloc)", "max RSS growth"], out)


# ---------------------------------------------------------------------------
# Report


def _fmt_t(t):
    if t is None:
        return "-"
    if t >= 1:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.2f} ms"
    return f"{t * 1e6:.1f} us"


def _fmt(x, spec):
    return "-" if x is None else format(x, spec)


def header_lines(info, bandwidth=None, bandwidth_mb=None):
    blas = info["blas"]
    lines = [
        f"CPU: {info['cpu']} (LLVM: {info['llvm_cpu']}), {info['cores']} cores, "
        f"{_fmt(info['ghz'], '.2f')} GHz, SIMD: {' '.join(info['simd'])}; caches: "
        + ", ".join(f"L{l} {s // 1024} KiB" for l, s in sorted(info["caches"].items())),
        f"numba {info['numba']} (threading layer {info['numba_threading_layer']}, "
        f"{info['numba_threads']} threads), numpy {info['numpy']} (BLAS {blas['name']}, "
        f"{blas['threads']} threads), llvmlite {info['llvmlite']}, Python {info['python']}, "
        f"torch {info['torch'] or 'not installed'}",
    ]
    if info.get("gpu"):
        lines.append(f"GPU: {info['gpu']} (rows cuda and torch-cuda; no % peak: the peaks below are the CPU's)")
    bits = info["vector_bits"]
    lines.append(PEAK_FORMULA.format(fma=FMA_UNITS, bits=bits, l64=bits // 64, l32=bits // 32,
                                     mb=bandwidth_mb or 256))
    p64 = compute_peak(8, 1, info)
    if p64:
        lines.append(f"  = {p64:.1f} GFLOP/s float64 and {compute_peak(4, 1, info):.1f} float32 per thread; "
                     f"measured copy bandwidth {_fmt(bandwidth, '.1f')} GB/s")
    return lines


def _table(headers, rows):
    if not rows:
        return "(nothing ran)"
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                                  for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(headers), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def theme_table(results, theme):
    rows = []
    prev = None
    for r in results:
        if r["theme"] != theme:
            continue
        first = (r["label"], r["dtype"]) != prev
        prev = (r["label"], r["dtype"])
        name = (f"{r['label']} {r['dtype']}" if first else "")
        if "time_s" not in r:
            rows.append([name, r["contender"], "skipped", "", "", "", "", ""])
            continue
        rows.append([name, r["contender"], _fmt_t(r["per_iteration_s"]), _fmt_t(r.get("per_iteration_min_s")),
                     _fmt(r["speedup_vs_numpy"], ".2f"), _fmt(r["gflops"], ".2f"),
                     _fmt(r["gbs"], ".2f"), "-" if r["peak_fraction"] is None else f"{100 * r['peak_fraction']:.1f}%"])
    what = "per iteration" if theme == "training" else "per call"
    return _table(["problem", "contender", f"median {what}", "min", "x numpy", "GFLOP/s", "GB/s", "% peak"],
                  rows)


def startup_table(rows):
    out = []
    for r in rows:
        if "error" in r:
            out.append([r["backend"], r["phase"], "error", "", "", r["error"][:60]])
            continue
        out.append([r["backend"], r["phase"], _fmt_t(r["import_s"]), _fmt_t(r["ops_s"]),
                    _fmt_t(r["fit_s"]), _fmt_t(r["wall_s"])])
    return _table(["backend", "phase", "import", "first call of every op",
                   "first planar fit iteration", "whole process"], out)


def goal_ratios(results):
    """The ratios the performance goals (issue 6) are stated in, from one
    run's results: (what, ratio from medians, ratio from minima, goal text)."""
    def t(label_start, dtype, contender, theme):
        for r in results:
            if (r["theme"] == theme and r["label"].startswith(label_start) and r["dtype"] == dtype
                    and r["contender"] == contender and "time_s" in r):
                return r["per_iteration_s"], r.get("per_iteration_min_s", r["per_iteration_s"])
        return None

    rows = []
    for dtype in ("float64", "float32"):
        numpy_t, torch_t = t("planar", dtype, "numpy", "training"), t("planar", dtype, "torch", "training")
        compiled = [x for x in (t("planar", dtype, c, "training") for c in ("numba", "parallel")) if x]
        if compiled and numpy_t:
            best = (min(x[0] for x in compiled), min(x[1] for x in compiled))
            rows.append((f"planar {dtype}: numpy / best compiled", numpy_t[0] / best[0], numpy_t[1] / best[1], ">= 4"))
            if torch_t:
                rows.append((f"planar {dtype}: torch / best compiled", torch_t[0] / best[0], torch_t[1] / best[1],
                             ">= 10"))
    for name in ("deep", "mnist [784, 128, 64, 1] m=1024", "mnist60k"):
        for dtype in ("float64", "float32"):
            par, num = t(name, dtype, "parallel", "training"), t(name, dtype, "numpy", "training")
            if par and num:
                rows.append((f"{name.split(' m=')[0].split(' [')[0]} {dtype}: parallel / numpy",
                             par[0] / num[0], par[1] / num[1], "<= 1.25"))
    for name in ("planar", "mnist60k"):  # issue 4's goals, where a GPU ran
        for dtype in ("float64", "float32"):
            gpu, num, tgpu = (t(name, dtype, c, "training") for c in ("cuda", "numpy", "torch-cuda"))
            short = name.split(" ")[0]
            if gpu and num:
                rows.append((f"{short} {dtype}: numpy / cuda", num[0] / gpu[0], num[1] / gpu[1],
                             ">= 20" if name == "mnist60k" else "-"))
            if gpu and tgpu:
                rows.append((f"{short} {dtype}: cuda / torch-cuda", gpu[0] / tgpu[0], gpu[1] / tgpu[1],
                             "<= 2" if name == "mnist60k" else "-"))
    for dtype in ("float64", "float32"):
        par, nd = t("dot", dtype, "parallel", "dot"), t("dot", dtype, "np.dot all threads", "dot")
        fm, nd1 = t("dot", dtype, "njit fastmath", "dot"), t("dot", dtype, "np.dot 1 thread", "dot")
        if par and nd:
            rows.append((f"dot {dtype}: parallel / np.dot", par[0] / nd[0], par[1] / nd[1], "<= 1"))
        if fm and nd1:
            rows.append((f"dot {dtype}: fastmath serial / np.dot 1 thread", fm[0] / nd1[0], fm[1] / nd1[1], "<= 1.3"))
    return rows


def goals_table(results):
    rows = [[what, f"{med:.2f}", f"{mn:.2f}", goal] for what, med, mn, goal in goal_ratios(results)]
    return _table(["ratio", "from medians", "from minima", "goal"], rows) if rows else ""


def format_report(report):
    out = header_lines(report["machine"], report.get("bandwidth_gbs"), report.get("bandwidth_mb"))
    out.append(f"sweep '{report['sweep']}': median and minimum of calls after a warm-up call (compilation "
               f"never timed); x numpy = numpy's median / this median (dot: np.dot on all threads); "
               f"GFLOP/s, GB/s and % peak from the median")
    titles = {"ops": "ops (raw kernels, outputs preallocated; layer (n, k) = "
                     f"{OPS_LAYER}; [level] = the cache the working set fits)",
              "training": "training (fit iterations; GFLOP/s counts the matrix products, "
                          "2 x 3 x sum n[l] n[l-1] m per iteration)",
              "dot": "dot product (the course's demo)"}
    for theme in report["themes"]:
        out += ["", titles[theme], theme_table(report["results"], theme)]
    goals = goals_table(report["results"])
    if goals:
        out += ["", "the performance goals' ratios (issue 6), from this run", goals]
    if report.get("startup"):
        out += ["", "start-up, fresh processes (NUMBA_CACHE_DIR empty, then warm): compile vs cache-load time",
                startup_table(report["startup"])]
    if report.get("memory"):
        out += ["", "fit's memory vs iterations (planar [2, 4, 1], fresh processes, after a warm-up fit)",
                memory_table(report["memory"])]
    return "\n".join(out)


def plot(report, path):
    """Log-log time vs size per backend, one panel per op (ops theme; float64
    solid, float32 dashed). Needs matplotlib (the ``plot`` extra)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in report["results"] if r["theme"] == "ops" and "time_s" in r]
    names = list(dict.fromkeys(r["label"].split(" ")[0] for r in rows))
    if not names:
        rows = [r for r in report["results"] if "time_s" in r]
        names = ["all"]
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = {c: palette[i % len(palette)]
              for i, c in enumerate(dict.fromkeys(r["contender"] for r in rows))}  # one colour per backend
    cols = min(3, len(names))
    nrows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(5 * cols, 3.6 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        sel = [r for r in rows if name == "all" or r["label"].split(" ")[0] == name]
        for contender in dict.fromkeys(r["contender"] for r in sel):
            for dtype, style in (("float64", "-"), ("float32", "--")):
                pts = sorted((r["size"], r["time_s"]) for r in sel
                             if r["contender"] == contender and r["dtype"] == dtype)
                if pts:
                    ax.loglog(*zip(*pts), style, marker="o", color=colors[contender],
                              label=f"{contender} {dtype}")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("m (examples)")
        ax.set_ylabel("seconds per call")
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"jitloops ops: time vs size ({report['machine']['cpu']}, {report['machine']['cores']} cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------
# CLI: jitloops bench


def add_arguments(parser):
    parser.add_argument("--quick", action="store_true",
                        help="a short run (under 2 minutes on 2 cores): two sizes, ops in float64 "
                             "only, fewer repetitions, start-up of the serial backend only")
    parser.add_argument("--sweep", choices=SWEEPS, default=None,
                        help="sizes to run: smoke, quick, default (L1-L3), full (+ main memory, "
                             "MNIST m=60000); --quick means --sweep quick")
    parser.add_argument("--themes", default=",".join(THEMES),
                        help=f"comma-separated subset of {','.join(THEMES)}")
    parser.add_argument("--backends", default=None,
                        help="comma-separated backends (default: every available one)")
    parser.add_argument("--dtypes", default=None, help="comma-separated, default float64,float32")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for Numba's parallel loops and for NumPy's BLAS (and torch)")
    parser.add_argument("--min-time", type=float, default=None,
                        help="seconds spent timing each case (default 0.2, 0.03 with --quick)")
    parser.add_argument("--no-startup", action="store_true",
                        help="skip the compile / cache-load and fit-memory measurements (fresh processes)")
    parser.add_argument("--no-check", action="store_true", help="skip checking results against numpy")
    parser.add_argument("--json", metavar="PATH", help="write everything measured as JSON to PATH")
    parser.add_argument("--plot", metavar="PATH",
                        help="write a PNG of time vs size per backend (needs the 'plot' extra: "
                             "pip install 'jitloops[plot]')")


def run(args):
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("jitloops bench: --plot needs matplotlib, which is not installed; install the "
                  "'plot' extra (pip install 'jitloops[plot]') or leave out --plot", file=sys.stderr)
            return 2
    sweep = args.sweep or ("quick" if args.quick else "default")
    min_time = args.min_time if args.min_time is not None else (0.03 if sweep in ("quick", "smoke") else 0.2)
    themes = [t.strip() for t in args.themes.split(",") if t.strip()]
    unknown = set(themes) - set(THEMES)
    if unknown:
        print(f"jitloops bench: unknown theme(s) {sorted(unknown)}; choose from {', '.join(THEMES)}",
              file=sys.stderr)
        return 2
    backends = args.backends.split(",") if args.backends else None
    if backends:
        bad = [b for b in backends if b not in kernels.BACKENDS]
        if bad:
            print(f"jitloops bench: unknown backend(s) {bad}; valid: {', '.join(kernels.BACKENDS)}",
                  file=sys.stderr)
            return 2
    dtypes = tuple(args.dtypes.split(",")) if args.dtypes else None
    if args.threads:
        got = set_threads(args.threads)
        if got != args.threads:
            print(f"note: {got} threads (Numba's maximum here; set NUMBA_NUM_THREADS before "
                  f"starting for more)", file=sys.stderr)
    t_start = time.perf_counter()
    load_start = _load()
    info = machine_info()
    bandwidth_mb = 64 if sweep in ("quick", "smoke") else 256
    bandwidth = measure_bandwidth(bandwidth_mb * 1024 ** 2)
    head = header_lines(info, bandwidth, bandwidth_mb)
    print("\n".join(head), flush=True)
    cases = all_cases(themes, sweep, backends=backends, dtypes=dtypes)

    def progress(i, n, case):
        print(f"\r[{i + 1}/{n}] {case.group} {case.contender}".ljust(100)[:100], end="",
              file=sys.stderr, flush=True)

    results = run_cases(cases, min_time=min_time, check=not args.no_check,
                        progress=progress if sys.stderr.isatty() else None)
    if sys.stderr.isatty():
        print("\r" + " " * 100 + "\r", end="", file=sys.stderr)
    add_metrics(results, info, bandwidth)
    # --quick measures the serial backend's start-up only (parallel compiles ~2x longer)
    compiled = ("numba",) if sweep in ("quick", "smoke") else ("numba", "parallel")
    startup = [] if args.no_startup else startup_times(
        tuple(b for b in compiled if not backends or b in backends))
    memory = [] if args.no_startup or not _model_available() else fit_memory(
        "numba" if not backends or "numba" in backends else backends[0])
    report = dict(machine=info, sweep=sweep, themes=themes, min_time=min_time, memory=memory,
                  load_average=dict(start=load_start, end=_load()),
                  bandwidth_gbs=bandwidth, bandwidth_mb=bandwidth_mb, results=results, startup=startup,
                  elapsed_s=time.perf_counter() - t_start)
    text = format_report(report)
    print("\n".join(text.splitlines()[len(head):]))
    print(f"\n(ran in {report['elapsed_s']:.0f} s; 1-minute load average {load_start:.2f} at the start, "
          f"{report['load_average']['end']:.2f} at the end: other work on the cores skews the "
          f"multi-threaded rows most; reproduce: jitloops bench --sweep {sweep}"
          f"{' --threads ' + str(args.threads) if args.threads else ''})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1, default=str)
        print(f"wrote {args.json}")
    if args.plot:
        plot(report, args.plot)
        print(f"wrote {args.plot}")
    return 0
