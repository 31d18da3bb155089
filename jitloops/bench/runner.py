"""Timing cases: one after the other, or a group's contenders in turns.

Rules every timing follows: the first call (which compiles, or loads from
Numba's cache) is never timed; the time is the median of repeated calls (the
minimum is reported beside it: on a shared machine it is the better estimate
of what the code can do); BLAS threads (which keep spinning ~0.1 s after a
NumPy call and slow a Numba parallel loop that follows ~3x on 2 cores) are
given up to ``BLAS_SETTLE_S`` to go to sleep before a compiled contender is
timed (``settle_threads``: where Linux tells which threads run, no longer
than they spin: nothing after a call too small for BLAS's threads), and are
limited to one thread while a Numba parallel contender runs.
``add_metrics`` turns the times into speed-ups, GFLOP/s, GB/s and % of peak.
"""

import os
import threading
import time

import numpy as np

from jitloops.timing import timings

from .machine import blas_threads, compute_peak, handoff_ns, level_of

BLAS_SETTLE_S = 0.15   # BLAS worker threads spin ~0.1 s after a NumPy call
SETTLE_POLL_S = 0.002


def _other_threads_running():
    """Whether a thread of this process other than the calling one is
    running or runnable (Linux's /proc state R: a spinning BLAS or TBB
    worker); None where /proc cannot tell."""
    me = threading.get_native_id()
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return None
    for tid in tids:
        if tid == str(me):
            continue
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]  # after the name, which may hold spaces
        except (OSError, IndexError):
            continue  # the thread ended
        if state == "R":
            return True
    return False


def settle_threads(limit_s=BLAS_SETTLE_S):
    """Let the worker threads of the last BLAS (or parallel) call go to
    sleep before the next timing: until none of this process's other
    threads runs, ``limit_s`` at most (all of it where that cannot be told)."""
    deadline = time.perf_counter() + limit_s
    while time.perf_counter() < deadline:
        running = _other_threads_running()
        if running is None:
            time.sleep(max(0.0, deadline - time.perf_counter()))
            return
        if not running:
            return
        time.sleep(SETTLE_POLL_S)


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


def time_case(case, min_time=0.1, check=True, settle=None, python_calls=3):
    """(median, minimum) seconds per call of one case (its warm-up call
    excluded), with the BLAS limit of the case and the settle pause before
    compiled code (``settle``: pause or not, default: for compiled contenders).
    On a shared machine the minimum is the better estimate of what the code
    can do; the median says what it did."""
    with blas_threads(case.blas_threads):
        run, chk = prepare(case)
        if case.compiled if settle is None else settle:
            settle_threads()
        # the pure-Python contender: ``python_calls`` calls, they are long
        python = case.contender == "python"
        times = timings(run, min_time=min_time, min_reps=python_calls if python else 3,
                        max_reps=python_calls if python else 10_000, warmup=0)
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


# Contenders whose timed code calls no BLAS and starts no thread pool: right
# after one of them, in a group's rounds (no check runs between), the BLAS
# threads have long stopped spinning, so the next compiled contender needs no
# pause. (After single cases a check has just run NumPy.)
QUIET = ("numba",)


def _settle(case, previous, in_rounds=False):
    """Pause before compiled code (BLAS threads spinning) and after parallel
    code (the OpenMP/TBB workers spin too before they sleep)? Not between
    rounds' turns that follow a QUIET contender."""
    if previous in ("parallel", "cuda"):
        return True
    return case.compiled and not (in_rounds and previous in QUIET)


def run_cases(cases, min_time=0.1, check=True, progress=None, rounds=ROUNDS, python_calls=3):
    """Time every case; returns a list of result dicts (one per case that ran).
    Consecutive cases of one group of an INTERLEAVED_THEMES theme are timed
    in ``rounds`` turns (see time_group); a single pure-Python case with
    ``python_calls`` calls (each up to the sweep's budget)."""
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
                row["time_s"], row["time_min_s"] = time_case(case, min_time, check, settle, python_calls)
            except Skip as exc:
                row["skipped"] = str(exc)
            results.append(row)
        i = j
    return results


def _handoff():
    """machine.handoff_ns once the threads of the contender before have gone
    to sleep (a thread spinning on the other core makes the line wait for it)."""
    settle_threads()
    return handoff_ns()


def time_group(cases, min_time=0.1, check=True, rounds=ROUNDS, previous=None):
    """Result rows of the cases of one group, timed in turns: every contender
    is made (and warmed up: compiled) first, then each round times each
    contender for min_time / rounds (the pure-Python one: one call a round),
    with the same BLAS limits and settle pauses as time_case. Median and
    minimum are over all the calls of all rounds. ``previous``: the contender
    timed just before the group (its workers may still spin).

    Where a contender runs on several threads, how far apart the cores are
    (machine.handoff_ns) is measured before each round and after the last:
    the rows get its median and range (``handoff_ns``, ``handoff_ns_range``),
    the same for every contender of the group."""
    rows = [_row(c) for c in cases]
    handoffs = []
    far_apart = any(c.threads > 1 for c in cases)
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
        if far_apart:
            handoffs.append(_handoff())
        for k, (run, _) in prepared.items():
            case = cases[k]
            with blas_threads(case.blas_threads):
                if _settle(case, previous, in_rounds=True):
                    settle_threads()
                times[k] += timings(run, min_time=min_time / rounds, min_reps=1,
                                    max_reps=1 if case.contender == "python" else 10_000, warmup=0)
            previous = case.contender
    if far_apart:
        handoffs.append(_handoff())
    handoffs = [h for h in handoffs if h is not None]
    for k, (_, chk) in prepared.items():
        if check:
            with blas_threads(cases[k].blas_threads):
                chk()
        rows[k]["time_s"], rows[k]["time_min_s"] = float(np.median(times[k])), float(np.min(times[k]))
        if handoffs:
            rows[k]["handoff_ns"] = float(np.median(handoffs))
            rows[k]["handoff_ns_range"] = [float(min(handoffs)), float(max(handoffs))]
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
