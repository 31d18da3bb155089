"""Compile before timing, on two cores at once.

Numba compiles on one core, and an empty cache makes `jitloops bench`
spend most of its time compiling: the "numba" and the "parallel" variants
of every kernel and training program, each on its own. So before any case is
timed, ``warm_up`` makes every compiled case once (``runner.prepare``: its
first call compiles it, or loads it from the cache), the "parallel" ones in
a helper process (``python -m jitloops.bench.warm``) while this process
makes the others; the helper's compiled code reaches this process through
Numba's on-disk cache. Nothing is timed while the two compile, so neither
disturbs a measurement; with a warm cache both only load.

Why the split is by variant: Numba's cache keeps one index file per
function, and two processes adding *different* signatures of one function
at the same moment can leave its index naming the other's machine code.
The variants' functions have names of their own (kernels.cpu), so the two
processes never compile the same function, but for the programs a
"parallel" contender runs on the serial variant (a network too small for
threads: ``training.program_variant``); those stay here.
"""

import os
import subprocess
import sys
import time

from .runner import prepare

HELPER_TIMEOUT_S = 900  # past it the helper is stopped; the timing phase compiles what is missing


def _helper_cases(cases):
    """The cases the helper makes: the "parallel" contender's, on its own variant."""
    from .training import program_variant
    out = []
    for case in cases:
        if case.contender != "parallel":
            continue
        if case.theme == "training" and program_variant(case.label.split()[0], "parallel", case.dtype) != "parallel":
            continue
        out.append(case)
    return out


def make_all(cases):
    """prepare() every case (compiling it or loading it from the cache);
    the inputs it built are dropped. A case that cannot run here (Skip) or
    fails is left to the timing phase, which reports it."""
    from .machine import blas_threads
    for case in cases:
        try:
            with blas_threads(case.blas_threads):
                prepare(case)
        except Exception:  # Skip included: the timing phase makes it again and reports it
            pass


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def warm_up(cases, themes, sweep, dtypes, backends):
    """Make every compiled case once, the helper's share in a second process
    when there are two cores for it. Returns (seconds in all, seconds this
    process spent making its share, the helper's exit status or None where
    no helper ran)."""
    compiled = [c for c in cases if c.compiled]
    helper = _helper_cases(compiled) if _cpu_count() >= 2 else []
    proc = None
    if helper:
        cmd = [sys.executable, "-m", "jitloops.bench.warm", "--themes", ",".join(themes), "--sweep", sweep]
        if dtypes:
            cmd += ["--dtypes", ",".join(dtypes)]
        if backends:
            cmd += ["--backends", ",".join(backends)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        return _warm_beside(proc, compiled, helper)
    except BaseException:  # a Ctrl-C or a failure here: the helper must not compile on, orphaned
        if proc is not None:
            _stop(proc)
        raise


def _stop(proc, grace_s=5.0):
    """Terminate the helper and wait for it (killed if it ignores that for ``grace_s``)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.communicate(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.communicate()


def _warm_beside(proc, compiled, helper):
    """warm_up's work once the helper (``proc``, or None) runs: this process's share, then the wait."""
    t0 = time.perf_counter()
    theirs = {id(c) for c in helper}
    make_all([c for c in compiled if id(c) not in theirs])
    mine = time.perf_counter() - t0
    if proc is None:
        return mine, mine, None
    try:
        _, err = proc.communicate(timeout=HELPER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        print(f"note: the compile helper ran past {HELPER_TIMEOUT_S} s and was stopped; "
              f"the parallel cases compile as they are timed", file=sys.stderr)
        return time.perf_counter() - t0, mine, proc.returncode
    if proc.returncode != 0:
        print(f"note: the compile helper failed (exit {proc.returncode}); the parallel cases compile "
              f"as they are timed. Its last words: {err.strip().splitlines()[-1:] or ''}", file=sys.stderr)
    return time.perf_counter() - t0, mine, proc.returncode


def main(argv=None):
    """The helper: make the "parallel" contender's cases of the given run."""
    import argparse
    parser = argparse.ArgumentParser(prog="python -m jitloops.bench.warm")
    parser.add_argument("--themes", required=True)
    parser.add_argument("--sweep", required=True)
    parser.add_argument("--dtypes")
    parser.add_argument("--backends")
    args = parser.parse_args(argv)
    from .command import all_cases
    backends = args.backends.split(",") if args.backends else None
    dtypes = tuple(args.dtypes.split(",")) if args.dtypes else None
    cases = all_cases(args.themes.split(","), args.sweep, backends=backends, dtypes=dtypes)
    make_all(_helper_cases(cases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
