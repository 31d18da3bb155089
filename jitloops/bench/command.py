"""``jitloops bench``: its options, the choice of cases, and the run that prints the report."""

import sys
import time

import kernels
from jitloops import options
from jitloops.plotting import pyplot

from .cases import SWEEPS, THEMES
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
    of its own; dot: float64 only in the smoke and quick sweeps)."""
    cases = []
    default = ("float64",) if sweep == "quick" else ("float64", "float32")
    if "ops" in themes:
        cases += ops_cases(sweep, backends=kw.get("backends"), dtypes=kw.get("dtypes") or default)
    if "training" in themes:
        cases += training_cases(sweep, backends=kw.get("backends"), dtypes=kw.get("dtypes") or default)
    if "dot" in themes:
        cases += dot_cases(sweep, dtypes=kw.get("dtypes"))
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


def run(args):
    try:
        json_path, plot_path = _outputs(args)
    except ValueError as exc:
        print(f"jitloops bench: {exc}", file=sys.stderr)
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
    load_start = load_average()
    info = machine_info()
    bandwidth_mb = 64 if sweep in ("quick", "smoke") else 256
    bandwidth = measure_bandwidth(bandwidth_mb * 1024 ** 2)
    head = header_lines(info, bandwidth, bandwidth_mb)
    print("\n".join(head), flush=True)
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
          f"multi-threaded rows most; reproduce: jitloops bench --sweep {sweep}"
          f"{' --threads ' + str(args.threads) if args.threads else ''}; compiling or loading every case "
          f"took {warm_s:.0f} s of it, before the timing"
          f"{f', {warm_mine_s:.0f} s in this process beside a helper for the parallel cases' if helper_rc is not None else ''})")
    for path in filter(None, (json_path, plot_path)):
        print(f"wrote {path}")
    return 0
