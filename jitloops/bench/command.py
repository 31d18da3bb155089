"""``jitloops bench``: its options, the choice of cases, and the run that prints the report."""

import sys
import time

import kernels
from jitloops import options
from jitloops.cli import say_first
from jitloops.plotting import pyplot

from .cases import DTYPES, SWEEPS, THEMES
from .dot import dot_cases
from .machine import load_average, machine_info, measure_bandwidth, set_threads
from .ops import ops_cases
from .report import format_report, header_lines, plot, write_json
from .runner import add_metrics, run_cases
from .startup import fit_memory, model_available, startup_times
from .training import training_cases
from .warm import warm_up


def all_cases(themes=THEMES, sweep="default", **kw):
    """The cases of ``themes`` in ``sweep``, theme by theme; ``backends=`` and
    ``dtypes=`` narrow them (quick: float64 only, each dtype being a compile
    of its own; dot: float64 only in the smoke and quick sweeps, its
    contenders narrowed by the backend each runs on: dot.DOT_BACKENDS)."""
    cases = []
    default = ("float64",) if sweep == "quick" else ("float64", "float32")
    if "ops" in themes:
        cases += ops_cases(sweep, backends=kw.get("backends"), dtypes=kw.get("dtypes") or default)
    if "training" in themes:
        cases += training_cases(sweep, backends=kw.get("backends"), dtypes=kw.get("dtypes") or default)
    if "dot" in themes:
        cases += dot_cases(sweep, dtypes=kw.get("dtypes"), backends=kw.get("backends"))
    return cases


def add_arguments(parser):
    parser.add_argument("--quick", action="store_true",
                        help="a short run: two sizes, float64 only, fewer repetitions (one call of the "
                             "pure-Python contender), start-up of the serial backend's planar fit from a "
                             "warm cache only")
    parser.add_argument("--sweep", choices=SWEEPS, default=None,
                        help="sizes to run: smoke, quick, default (L1-L3), full (+ main memory, "
                             "MNIST m=60000); --quick means --sweep quick")
    parser.add_argument("--themes", default=",".join(THEMES),
                        help=f"comma-separated subset of {','.join(THEMES)}")
    parser.add_argument("--backends", default=None,
                        help="comma-separated backends (default: every available one; one that cannot run "
                             "here is left out with a note). The dot theme's contenders go by theirs: numpy = "
                             "np.dot, numba = njit and njit fastmath; torch runs wherever it is installed")
    parser.add_argument("--dtypes", default=None, help=f"comma-separated, of {','.join(DTYPES)} (the default)")
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


def _outputs(args):
    """(--json's file, --plot's file) checked before the run, or a ValueError;
    --plot's is the name savefig writes (``pic`` -> ``pic.png``)."""
    if args.plot is not None:
        try:
            pyplot()
        except RuntimeError as exc:
            raise ValueError(f"{exc}, or leave out --plot") from None
    json_path = None if args.json is None else options.output_path(args.json, "--json")
    plot_path = None if args.plot is None else options.output_path(args.plot, "--plot", picture=True)
    if json_path and plot_path and options.same_file(json_path, plot_path):
        raise ValueError(f"--json and --plot both name {plot_path!r}: the picture would overwrite the JSON; "
                         f"give them different names")
    return json_path, plot_path


def _available(backends):
    """``backends`` less those that cannot run here, each left out with a
    note (as ``jitloops compare`` does); a ValueError where none is left."""
    reasons = {b: kernels.unavailable_reason(b) for b in backends}
    left = [b for b in backends if reasons[b] is None]
    if not left:
        raise ValueError(f"no backend of --backends {','.join(backends)} can run here: "
                         + "; ".join(reasons.values()))
    for b in backends:
        if reasons[b] is not None:
            print(f"note: --backends {b} left out: {reasons[b]}", file=sys.stderr)
    return left


def _settings(args):
    """The run's sweep, themes, backends, dtypes and min_time from the
    options, each checked before anything runs (a ValueError: one line)."""
    if args.quick and args.sweep not in (None, "quick"):
        raise ValueError(f"--quick means --sweep quick; give one of them, not --quick with --sweep {args.sweep}")
    sweep = args.sweep or ("quick" if args.quick else "default")
    themes = options.names(args.themes, "--themes", THEMES, "theme")
    backends = None if args.backends is None else options.names(args.backends, "--backends", kernels.BACKENDS,
                                                                 "backend")
    dtypes = None if args.dtypes is None else tuple(options.names(args.dtypes, "--dtypes", DTYPES, "dtype"))
    if args.threads is not None:
        options.at_least(args.threads, "--threads")
    if args.min_time is not None:
        options.finite(args.min_time, "--min-time")
    min_time = args.min_time if args.min_time is not None else (0.03 if sweep in ("quick", "smoke") else 0.2)
    return sweep, themes, backends, dtypes, min_time


def _reproduce(args, sweep, themes, backends, dtypes):
    """The command line that runs these cases again (the options that choose or time them)."""
    parts = ["jitloops bench", f"--sweep {sweep}"]
    if tuple(themes) != THEMES:
        parts.append(f"--themes {','.join(themes)}")
    if backends:
        parts.append(f"--backends {','.join(backends)}")
    if dtypes:
        parts.append(f"--dtypes {','.join(dtypes)}")
    if args.threads is not None:
        parts.append(f"--threads {args.threads}")
    if args.min_time is not None:
        parts.append(f"--min-time {args.min_time!r}")
    parts += [flag for flag, on in (("--no-startup", args.no_startup), ("--no-check", args.no_check)) if on]
    return " ".join(parts)


def run(args):
    try:
        sweep, themes, backends, dtypes, min_time = _settings(args)
        json_path, plot_path = _outputs(args)
        if backends:
            backends = _available(backends)
    except ValueError as exc:
        print(f"jitloops bench: {exc}", file=sys.stderr)
        return 2
    if args.threads is not None:
        got = set_threads(args.threads)
        if got != args.threads:
            print(f"note: {got} threads (Numba's maximum here; set NUMBA_NUM_THREADS before "
                  f"starting for more)", file=sys.stderr)
    t_start = time.perf_counter()
    load_start = load_average()
    info = machine_info()
    bandwidth_mb = 64 if sweep in ("quick", "smoke") else 256
    bandwidth = measure_bandwidth(bandwidth_mb * 1024 ** 2)
    head = header_lines(info, bandwidth, bandwidth_mb)
    say_first("\n".join(head))
    cases = all_cases(themes, sweep, backends=backends, dtypes=dtypes)

    def progress(i, n, case):
        print(f"\r[{i + 1}/{n}] {case.group} {case.contender}".ljust(100)[:100], end="",
              file=sys.stderr, flush=True)

    if sys.stderr.isatty():
        print("compiling (or loading from the cache) before timing...", end="", file=sys.stderr, flush=True)
    warm_s, warm_mine_s, helper_rc = warm_up(cases, themes, sweep, dtypes, backends)  # compile first
    short = sweep in ("quick", "smoke")
    # the pure-Python contender is 10-1000x off the others: one call says so in a short run
    results = run_cases(cases, min_time=min_time, check=not args.no_check,
                        progress=progress if sys.stderr.isatty() else None, python_calls=1 if short else 3)
    if sys.stderr.isatty():
        print("\r" + " " * 100 + "\r", end="", file=sys.stderr)
    add_metrics(results, info, bandwidth)
    # --quick measures the serial backend's planar fit from a warm cache only
    # (a cold compile is the startup benchmark's, and `jitloops compare`'s)
    compiled = ("numba",) if short else ("numba", "parallel")
    startup = [] if args.no_startup else startup_times(
        tuple(b for b in compiled if not backends or b in backends), with_ops=not short, cold=not short)
    memory = [] if args.no_startup or not model_available() else fit_memory(
        "numba" if not backends or "numba" in backends else backends[0])
    report = dict(machine=info, sweep=sweep, themes=themes, min_time=min_time, memory=memory,
                  load_average=dict(start=load_start, end=load_average()),
                  bandwidth_gbs=bandwidth, bandwidth_mb=bandwidth_mb, results=results, startup=startup,
                  elapsed_s=time.perf_counter() - t_start,
                  warm_up=dict(seconds=warm_s, this_process_s=warm_mine_s, helper=helper_rc is not None))
    text = format_report(report)
    # the files before the printing: a reader that stops early (`| head`) must not cost them
    if json_path:
        write_json(report, json_path)
    if plot_path:
        plot(report, plot_path)
    print("\n".join(text.splitlines()[len(head):]))
    print(f"\n(ran in {report['elapsed_s']:.0f} s; 1-minute load average {load_start:.2f} at the start, "
          f"{report['load_average']['end']:.2f} at the end: other work on the cores skews the "
          f"multi-threaded rows most; reproduce: {_reproduce(args, sweep, themes, backends, dtypes)}; "
          f"compiling or loading every case took {warm_s:.0f} s of it, before the timing"
          f"{f', {warm_mine_s:.0f} s in this process beside a helper for the parallel cases' if helper_rc is not None else ''})")
    for path in filter(None, (json_path, plot_path)):
        print(f"wrote {path}")
    return 0
