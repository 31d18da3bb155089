"""``jitloops compare``, the main job: the course's planar network trained on
every available backend, from the same initial parameters, and the backends
raced and cross-checked.

For each backend: time per iteration (compilation excluded: a warm-up fit runs
first), speed-up over pure Python and over NumPy, final cost, training accuracy
and the largest parameter difference to the numpy backend after the same number
of iterations. The pure-Python backend runs fewer iterations (it is about a
hundred times slower) and its time per iteration is extrapolated to the full run.
"""

import platform
import sys
import time

import numpy as np

import kernels

from . import datasets
from .network import NeuralNetwork

# Backends agree when every parameter is within the tolerance of the numpy
# backend's after the same iterations. The backends sum in different orders
# (BLAS vs loops, threads' partial sums, libm's tanh vs NumPy's), which changes
# results at rounding level, and gradient descent carries such differences
# along. Mostly they stay there (about 1e-14 after 7000 iterations of the
# planar network), but at learning rate 1.2 the planar network's training has
# a spike near iteration 7700 (the cost jumps from 0.2166 to 0.2195 and
# settles again) where any 1e-13 difference grows to 1e-3: numpy against
# itself, started one ulp apart, does the same. So the tolerance is measured
# on each run: the numpy backend is trained a second time from parameters one
# ulp away, and a backend agrees when its difference is at most
# AGREEMENT_FACTOR times that (and in any case below FLOOR, far under the
# 1e-2 that a wrong gradient gives within a few iterations).
AGREEMENT_FACTOR = 10.0
FLOOR = 1e-9


def add_arguments(parser):
    parser.add_argument("--iterations", type=int, default=10_000, help="iterations per backend (default 10000)")
    parser.add_argument("--python-iterations", type=int, default=100,
                        help="iterations for the pure-Python backend, extrapolated (default 100)")
    parser.add_argument("--learning-rate", type=float, default=1.2, help="default 1.2 (the course's)")
    parser.add_argument("--hidden", type=int, default=4, help="tanh hidden units (default 4)")
    parser.add_argument("--m", type=int, default=400, help="examples in the planar dataset (default 400)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    parser.add_argument("--seed", type=int, default=2, help="initialization seed (default 2, the course's)")
    parser.add_argument("--backends", default=",".join(kernels.BACKENDS),
                        help="comma-separated backends to race (default: all)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _machine():
    import os
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{_cpu_name()}, {cores} cores, Python {platform.python_version()}, NumPy {np.__version__}"


def _max_diff(a, b):
    return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)))) for k in a)


def _format_time(seconds):
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def race(iterations=10_000, python_iterations=100, learning_rate=1.2, hidden=4, m=400, dtype="float64",
         seed=2, backends=kernels.BACKENDS, progress=True, log=None):
    """Train the planar network on each backend; returns (rows, skipped).

    rows: one dict per backend that ran (backend, iterations, seconds per
    iteration, cost, accuracy, max_diff to numpy, the tolerance for it,
    extrapolated); skipped:
    (backend, reason) for the unavailable ones.
    """
    log = log or (lambda text: None)
    X, Y = datasets.planar(m=m)
    start = NeuralNetwork([2, hidden, 1], activations="tanh", backend="numpy", seed=seed, dtype=dtype).parameters
    reference = {}

    def numpy_parameters(n):  # the numpy backend's parameters after n iterations
        if n not in reference:
            net = NeuralNetwork([2, hidden, 1], activations="tanh", backend="numpy", dtype=dtype)
            reference[n] = net.set_parameters(start).fit(X, Y, n, learning_rate).parameters
        return reference[n]

    # numpy from one ulp away: how far rounding alone moves the result
    nudged = {k: np.nextafter(v, np.inf) for k, v in start.items()}
    net = NeuralNetwork([2, hidden, 1], activations="tanh", backend="numpy", dtype=dtype)
    log("numpy: measuring the spread rounding alone gives (a second run, one ulp away)")
    spread = {n: _max_diff(net.set_parameters(nudged).fit(X, Y, n, learning_rate).parameters, numpy_parameters(n))
              for n in sorted({iterations, min(python_iterations, iterations)})}

    rows, skipped = [], []
    for name in backends:
        reason = kernels.unavailable_reason(name)
        if reason is not None:
            skipped.append((name, reason))
            continue
        n = min(python_iterations, iterations) if name == "python" else iterations
        net = NeuralNetwork([2, hidden, 1], activations="tanh", backend=name, dtype=dtype)
        log(f"{name}: warming up (compiling on the first run)")
        net.set_parameters(start).fit(X, Y, 2, learning_rate)  # compilation stays out of the timing
        net.set_parameters(start)
        t0 = time.perf_counter()
        net.fit(X, Y, n, learning_rate, progress=progress)
        seconds = (time.perf_counter() - t0) / max(n, 1)
        rows.append(dict(backend=name, iterations=n, seconds=seconds, cost=net.cost(X, Y),
                         accuracy=net.accuracy(X, Y), max_diff=_max_diff(net.parameters, numpy_parameters(n)),
                         tolerance=max(AGREEMENT_FACTOR * spread[n], FLOOR), extrapolated=n < iterations))
    return rows, skipped


def table(rows, iterations):
    """The comparison as text lines."""
    per = {r["backend"]: r["seconds"] for r in rows}
    header = ("backend", "time/iter", f"{iterations} it", "vs python", "vs numpy", "final cost", "accuracy",
              "max |dparam| vs numpy")
    lines = []
    for r in rows:
        total = r["seconds"] * iterations
        mark = "*" if r["extrapolated"] else ""
        lines.append((
            r["backend"] + mark,
            _format_time(r["seconds"]),
            f"{total:.2f} s{mark}",
            f"{per['python'] / r['seconds']:.0f}x" if "python" in per else "-",
            f"{per['numpy'] / r['seconds']:.2f}x" if "numpy" in per else "-",
            f"{r['cost']:.6f}",
            f"{100 * r['accuracy']:.2f}%",
            f"{r['max_diff']:.1e}",
        ))
    widths = [max(len(h), *(len(row[i]) for row in lines)) for i, h in enumerate(header)]
    fmt = lambda row: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
    return [fmt(header), fmt(["-" * w for w in widths])] + [fmt(row) for row in lines]


def run(args):
    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in names if b not in kernels.BACKENDS]
    if unknown:
        print(f"jitloops compare: unknown backend(s) {', '.join(unknown)}; valid: {', '.join(kernels.BACKENDS)}",
              file=sys.stderr)
        return 2
    if args.iterations < 1 or args.python_iterations < 1:
        print("jitloops compare: --iterations and --python-iterations must be >= 1", file=sys.stderr)
        return 2
    progress = not args.no_progress
    log = (lambda text: print(text, file=sys.stderr, flush=True)) if progress else None
    print(f"Planar network [2, {args.hidden}, 1], tanh hidden layer, sigmoid output, m = {args.m}, "
          f"{args.iterations} iterations at learning rate {args.learning_rate:g}, {args.dtype}, seed {args.seed}")
    print(f"Machine: {_machine()}")
    rows, skipped = race(args.iterations, args.python_iterations, args.learning_rate, args.hidden, args.m,
                         args.dtype, args.seed, names, progress, log)
    print()
    if rows:
        for line in table(rows, args.iterations):
            print(line)
    if any(r["extrapolated"] for r in rows):
        n = next(r["iterations"] for r in rows if r["extrapolated"])
        print(f"* ran {n} iterations, time extrapolated to {args.iterations}; its cost, accuracy and parameter "
              f"difference are after {n} iterations (compared with numpy after {n})")
    for name, reason in skipped:
        print(f"{name}: not available: {reason}")
    compared = [r for r in rows if r["backend"] != "numpy"]
    if "numpy" not in {r["backend"] for r in rows} or not compared:
        return 0
    bad = [r["backend"] for r in compared if r["max_diff"] > r["tolerance"]]
    worst = max(compared, key=lambda r: r["max_diff"] / r["tolerance"])
    print(f"\nAll backends agree with numpy: {'NO: ' + ', '.join(bad) if bad else 'yes'} "
          f"(largest parameter difference {worst['max_diff']:.1e} on {worst['backend']}; tolerance "
          f"{worst['tolerance']:.1e} = {AGREEMENT_FACTOR:g}x what numpy started one ulp away reaches, at least {FLOOR:g})")
    return 1 if bad else 0
