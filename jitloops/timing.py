"""The timers of ``jitloops bench`` and ``jitloops simd``, and how a time is written.

Every timer here calls ``fn()`` ``warmup`` times before it starts the clock,
so a compilation (or a load from Numba's cache) is never timed.
"""

import time

import numpy as np


def timings(fn, min_time=0.05, min_reps=3, max_reps=1000, warmup=1):
    """Seconds of each of repeated calls of ``fn()`` after ``warmup`` calls
    (so a compilation is never timed): at least ``min_reps`` calls, more until
    ``min_time`` seconds have been spent or ``max_reps`` calls made."""
    for _ in range(warmup):
        fn()
    times = []
    spent = 0.0
    while len(times) < min_reps or (spent < min_time and len(times) < max_reps):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        times.append(dt)
        spent += dt
    return times


def median_time(fn, min_time=0.05, min_reps=3, max_reps=1000, warmup=1):
    """Median seconds of ``fn()`` over ``timings(...)``."""
    return float(np.median(timings(fn, min_time, min_reps, max_reps, warmup)))


def best_time(fn, min_time=0.05, min_reps=3, max_reps=1000, warmup=1):
    """Fastest call of ``fn()`` over ``timings(...)`` (as ``timeit`` reports):
    on a shared machine the least disturbed call."""
    return float(np.min(timings(fn, min_time, min_reps, max_reps, warmup)))


def format_seconds(t):
    """``t`` seconds as table text: "1.23 s", "4.56 ms", "7.8 us"; None as "-"."""
    if t is None:
        return "-"
    if t >= 1:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.2f} ms"
    return f"{t * 1e6:.1f} us"
