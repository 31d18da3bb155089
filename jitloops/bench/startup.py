"""Start-up and memory, measured in fresh processes.

Compile time and cache-load time are measured apart (``startup_times``): a
process with an empty Numba cache directory compiles, a second one with that
directory loads. ``fit_memory`` compares the peak memory of a short and a long
fit, each in a fresh process. The scripts the processes run are
``STARTUP_SCRIPT`` and ``MEMORY_SCRIPT``; the startup benchmark suite runs
the first one too.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

STARTUP_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import kernels
t_import = time.perf_counter() - t0
from numba.core import event
compiled = []  # Numba's compile events fire only for what the cache did not have


class Compiles(event.Listener):
    def on_start(self, ev):
        compiled.append(1)

    def on_end(self, ev):
        pass


event.register("numba:compile", Compiles())
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
for name, call in (calls.items() if "ops" in sys.argv[2:] else ()):
    t = time.perf_counter(); call(); first[name] = time.perf_counter() - t
fit = None
if "fit" in sys.argv[2:]:
    t = time.perf_counter()
    import model
    from jitloops.bench import training_data
    X, Y = training_data("planar", "float64")
    net = model.NeuralNetwork([2, 4, 1], activations="tanh", backend=backend, seed=2)
    net.fit(X, Y, iterations=1, learning_rate=1.2)
    fit = time.perf_counter() - t
print(json.dumps(dict(import_s=t_import, first_calls_s=first, first_fit_s=fit,
                      total_s=time.perf_counter() - t0, compiled=bool(compiled))))
"""


def model_available():
    try:
        import model
        return hasattr(model, "NeuralNetwork")
    except Exception:
        return False


def startup_times(backends=("numba", "parallel"), with_fit=None, with_ops=True, cold=True):
    """For each compiled backend, two fresh processes sharing an empty Numba
    cache directory: the first compiles every op (float64; unless not
    ``with_ops``), the second loads them from the cache. With the model
    available, each then also runs one planar fit iteration (compiling or
    loading the model's loops too: what ``jitloops compare`` waits for).
    Not ``cold``: the processes use this process's cache, and only a cache
    load is reported: the first process's where it compiled nothing (the
    cache was full), else the second's.
    Returns a list of dicts: backend, phase ('compile'/'cache load'),
    import_s, ops_s (first calls of the ops; None without them), fit_s,
    wall_s (the whole process, interpreter start included)."""
    if with_fit is None:
        with_fit = model_available()
    rows = []
    for backend in backends:
        with tempfile.TemporaryDirectory(prefix="jitloops-cache-") as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache) if cold else dict(os.environ)
            for phase in ("compile", "cache load"):
                argv = [sys.executable, "-c", STARTUP_SCRIPT, backend] + (["fit"] if with_fit else []) + (
                    ["ops"] if with_ops else [])
                t = time.perf_counter()
                proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
                wall = time.perf_counter() - t
                if proc.returncode != 0:
                    rows.append(dict(backend=backend, phase=phase, error=proc.stderr.strip()[-500:]))
                    continue
                out = json.loads(proc.stdout.strip().splitlines()[-1])
                if not cold and phase == "compile":
                    if out["compiled"]:
                        continue  # it filled the cache: the next process loads
                    phase = "cache load"
                rows.append(dict(backend=backend, phase=phase, import_s=out["import_s"],
                                 ops_s=sum(out["first_calls_s"].values()) if with_ops else None,
                                 per_op_s=out["first_calls_s"], fit_s=out["first_fit_s"], wall_s=wall))
                if not cold:
                    break
    return rows


MEMORY_SCRIPT = r"""
import json, resource, sys, tracemalloc
import numpy as np
import model
from jitloops.bench import training_data
backend, iterations = sys.argv[1], int(sys.argv[2])
X, Y = training_data("planar", "float64")
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
    numbers mean fit's memory does not grow with the iterations. The
    processes run at once: each measures only its own memory."""
    procs = [subprocess.Popen([sys.executable, "-c", MEMORY_SCRIPT, backend, str(n)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in counts]
    rows = []
    try:
        for n, proc in zip(counts, procs):
            try:
                out, err = proc.communicate(timeout=600)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
                err = f"timed out after 600 s. {err}"
            if proc.returncode != 0:
                rows.append(dict(backend=backend, iterations=n, error=err.strip()[-500:]))
                continue
            rows.append(dict(backend=backend, **json.loads(out.strip().splitlines()[-1])))
    except BaseException:  # a Ctrl-C or a failure: no measuring process left running on its own
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        raise
    return rows
