"""``jitloops compare``, the main job: the course's planar network trained on
every available backend, from the same initial parameters, and the backends
raced and cross-checked.

For each backend: time per iteration (compilation excluded: a warm-up fit runs
first), speed-up over pure Python and over NumPy, final cost, training accuracy
and the largest parameter difference to the numpy backend after the same number
of iterations: where agreement is checked (see below) and at the end. The
pure-Python backend runs fewer iterations (it is about a hundred times slower)
and its time per iteration is extrapolated to the full run. ``race`` and
``table`` are the pieces, for use from Python.
"""

import os
import platform
import sys
import time

import numpy as np

import kernels
from model import NeuralNetwork, datasets
from model._progress import Progress
from model.checks import SEED_MAX

from . import options
from .bench.machine import cpu_model

# Agreement. The backends sum in different orders (BLAS vs loops, threads'
# partial sums, libm's tanh vs NumPy's), which changes results at rounding
# level, and gradient descent carries such differences along. Mostly they stay
# there (about 1e-14 after 7000 iterations of the planar network), but at
# learning rate 1.2 the planar network's training has a spike near iteration
# 7700 (the cost jumps from 0.2166 to 0.2195 and settles again) where any
# 1e-13 difference grows to 1e-4..1e-1: numpy against itself, started one ulp
# apart, does the same. So every run measures that spread: numpy is trained a
# second time from parameters one ulp away, with parameters compared at
# CHECKPOINTS points along the way. A backend agrees when, at the last
# checkpoint where the spread is still below STABLE (rounding level), its
# difference to numpy is at most AGREEMENT_FACTOR times the spread (and at
# least STABLE): far under the 1e-2 a wrong gradient gives within a few
# iterations. The final difference is reported too.
CHECKPOINTS = 10
AGREEMENT_FACTOR = 10.0
STABLE = {"float64": 1e-9, "float32": 1e-4}


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


def _machine():
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu_model()}, {cores} cores, Python {platform.python_version()}, NumPy {np.__version__}"


def numba_version():
    import numba
    return numba.__version__


def _max_diff(a, b):
    return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)))) for k in a)


def _format_time(seconds):
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def _trajectory(net, X, Y, n, learning_rate, bar=None):
    """Fit ``net`` n iterations in CHECKPOINTS segments. Returns ({iteration:
    parameters} at each checkpoint, seconds spent in fit)."""
    marks = sorted({round(n * k / CHECKPOINTS) for k in range(1, CHECKPOINTS + 1)} - {0})
    params, done, seconds = {}, 0, 0.0
    for mark in marks:
        t0 = time.perf_counter()
        net.fit(X, Y, mark - done, learning_rate, cost_every=n + 1)
        seconds += time.perf_counter() - t0
        if bar is not None:
            bar.update(mark - done)
        done = mark
        params[mark] = net.parameters
    return params, seconds


def race(iterations=10_000, python_iterations=100, learning_rate=1.2, hidden=4, m=400, dtype="float64",
         seed=2, backends=kernels.BACKENDS, progress=True, log=None):
    """Train the planar network on each backend; returns (rows, skipped).

    rows: one dict per backend that ran: backend, iterations, seconds (per
    iteration), cost, accuracy, checked_at (the checkpoint where agreement is
    checked), diff (the largest parameter difference to numpy there),
    tolerance, final_diff, final_spread (numpy vs numpy one ulp away, at the
    end), extrapolated. skipped: (backend, reason) for the unavailable ones.
    """
    log = log or (lambda text: None)
    X, Y = datasets.planar(m=m)
    make = lambda backend: NeuralNetwork([2, hidden, 1], activations="tanh", backend=backend, dtype=dtype)
    start = NeuralNetwork([2, hidden, 1], activations="tanh", seed=seed, dtype=dtype).parameters
    nudged = {k: np.nextafter(v, np.inf) for k, v in start.items()}  # every parameter one ulp up
    reference, spread = {}, {}

    def numpy_reference(n):  # numpy's trajectory, and how far one ulp at the start moves it
        if n not in reference:
            log(f"numpy: reference run of {n} iterations, and a second one from one ulp away")
            reference[n] = _trajectory(make("numpy").set_parameters(start), X, Y, n, learning_rate)[0]
            other = _trajectory(make("numpy").set_parameters(nudged), X, Y, n, learning_rate)[0]
            spread[n] = {k: _max_diff(other[k], reference[n][k]) for k in other}
        return reference[n], spread[n]

    stable = STABLE[np.dtype(dtype).name]
    rows, skipped = [], []
    for name in backends:
        reason = kernels.unavailable_reason(name)
        if reason is not None:
            skipped.append((name, reason))
            continue
        n = min(python_iterations, iterations) if name == "python" else iterations
        ref, sp = numpy_reference(n)
        log(f"{name}: warm-up run" + (" (compiles the training loop on first use)"
                                       if name in ("numba", "parallel", "cuda") else ""))
        make(name).set_parameters(start).fit(X, Y, 2, learning_rate)  # compilation stays out of the timing
        net = make(name).set_parameters(start)
        bar = Progress(n, desc=f"{name}", enabled=progress)
        try:
            params, seconds = _trajectory(net, X, Y, n, learning_rate, bar)
        finally:
            bar.close()
        marks = sorted(params)
        calm = [k for k in marks if sp[k] <= stable]
        checked = calm[-1] if calm else marks[0]
        rows.append(dict(backend=name, iterations=n, seconds=seconds / n, cost=net.cost(X, Y),
                         accuracy=net.accuracy(X, Y), checked_at=checked,
                         diff=_max_diff(params[checked], ref[checked]),
                         tolerance=max(AGREEMENT_FACTOR * sp[checked], stable),
                         final_diff=_max_diff(params[n], ref[n]), final_spread=sp[n],
                         extrapolated=n < iterations))
    return rows, skipped


def table(rows, iterations):
    """The comparison as text lines."""
    per = {r["backend"]: r["seconds"] for r in rows}
    header = ("backend", "time/iter", f"{iterations} it", "vs python", "vs numpy", "final cost", "accuracy",
              "|dparam| vs numpy (at it)", "final |dparam|")
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
            f"{r['diff']:.1e} ({r['checked_at']})",
            f"{r['final_diff']:.1e}",
        ))
    widths = [max(len(h), *(len(row[i]) for row in lines)) for i, h in enumerate(header)]
    fmt = lambda row: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
    return [fmt(header), fmt(["-" * w for w in widths])] + [fmt(row) for row in lines]


def run(args):
    try:  # every option checked before the header: a mistake is one line, not a traceback mid-run
        names = options.names(args.backends, "--backends", kernels.BACKENDS, "backend")
        options.at_least(args.iterations, "--iterations")
        options.at_least(args.python_iterations, "--python-iterations")
        options.at_least(args.hidden, "--hidden")
        options.at_least(args.m, "--m", 2)  # the planar dataset's smallest
        options.finite(args.learning_rate, "--learning-rate", positive=True)
        if not 0 <= args.seed <= SEED_MAX:  # NumPy's RandomState seeds, as the network's
            raise ValueError(f"--seed must be in [0, 2**32 - 1], got {args.seed}")
    except ValueError as exc:
        print(f"jitloops compare: {exc}", file=sys.stderr)
        return 2
    progress = not args.no_progress
    log = (lambda text: print(text, file=sys.stderr, flush=True)) if progress else None
    print(f"Planar network [2, {args.hidden}, 1], tanh hidden layer, sigmoid output, m = {args.m}, "
          f"{args.iterations} iterations at learning rate {args.learning_rate:g}, {args.dtype}, seed {args.seed}")
    print(f"Machine: {_machine()}")
    from kernels import target, threads
    print(f"Numba {numba_version()}: compiles for {target.describe()}; threading layer {threads.describe()}")
    try:
        rows, skipped = race(args.iterations, args.python_iterations, args.learning_rate, args.hidden, args.m,
                             args.dtype, args.seed, names, progress, log)
    except MemoryError:  # the data, the network or its activations: sizes the options asked for
        print(f"jitloops compare: not enough memory for {args.m:,} examples (--m) through {args.hidden:,} hidden "
              f"units (--hidden) in {args.dtype}; use a smaller --m or --hidden", file=sys.stderr)
        return 2
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
    full = [r for r in rows if not r["extrapolated"]]
    if full and full[0]["checked_at"] < full[0]["iterations"]:
        print(f"numpy itself, started one ulp away, ends {full[0]['final_spread']:.1e} away: this training "
              f"amplifies rounding after iteration {full[0]['checked_at']}, so agreement is checked there")
    bad = [r["backend"] for r in compared if r["diff"] > r["tolerance"]]
    worst = max(compared, key=lambda r: r["diff"] / r["tolerance"])
    print(f"\nAll backends agree with numpy: {'NO: ' + ', '.join(bad) if bad else 'yes'} "
          f"(largest parameter difference {worst['diff']:.1e} on {worst['backend']} at iteration "
          f"{worst['checked_at']}; tolerance {worst['tolerance']:.1e}: {AGREEMENT_FACTOR:g}x what numpy "
          f"started one ulp away reaches, at least {STABLE[args.dtype]:g})")
    return 1 if bad else 0
