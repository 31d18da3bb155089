"""Shared machinery of the pytest-benchmark suites.

The cases themselves (problems, contenders, the numpy reference each result is
checked against) live in ``jitloops.bench``, which ``jitloops bench`` runs too;
each suite here parametrizes its test over one theme's cases.

Sweeps (``JITLOOPS_BENCH_SWEEP``): ``smoke`` (the smallest size of each
problem; the default under ``--benchmark-disable``, which CI runs: each case
once, results checked), ``quick``, ``default`` (the default when benchmarking:
ops at L1, L2 and L3 sizes) and ``full`` (adds main-memory sizes and
MNIST-like m = 60000).

    python3 -m pytest benchmarks --benchmark-disable            # smoke test
    python3 -m pytest benchmarks                                 # default sweep
    JITLOOPS_BENCH_SWEEP=full python3 -m pytest benchmarks/test_training_benchmarks.py
"""

import os
import time

import pytest

from jitloops import bench


def sweep(config):
    mode = os.environ.get("JITLOOPS_BENCH_SWEEP")
    if mode:
        if mode not in bench.SWEEPS:
            raise pytest.UsageError(
                f"JITLOOPS_BENCH_SWEEP={mode!r}; expected one of {', '.join(bench.SWEEPS)}")
        return mode
    disabled = config.getoption("benchmark_disable", default=False)
    return "smoke" if disabled else "default"


def pytest_generate_tests(metafunc):
    """Parametrize ``case`` with the module's ``cases(sweep)``."""
    if "case" in metafunc.fixturenames:
        cases = metafunc.module.cases(sweep(metafunc.config))
        metafunc.parametrize("case", cases, ids=[c.id for c in cases])


_previous = {"contender": None}  # the contender benchmarked last in this session


@pytest.fixture
def run_case(benchmark):
    """Benchmark one ``jitloops.bench.Case``: warm-up outside the timing (in
    ``make``), BLAS limited as the case says, a pause for BLAS threads to sleep
    before compiled code, results checked against NumPy after the timing;
    a multi-threaded case's extra_info has the cores' handoff (ns) before
    and after it (bench.handoff_ns)."""

    def go(case):
        benchmark.group = case.group
        benchmark.extra_info.update(contender=case.contender, flops=case.flops, bytes=case.nbytes,
                                    iterations_per_round=case.per_round, dtype=case.dtype)
        with bench.blas_threads(case.blas_threads):
            try:
                run, check = bench.prepare(case)
            except bench.Skip as exc:
                pytest.skip(str(exc))
            # BLAS workers spin ~0.1 s after NumPy; Numba's parallel workers after a prange
            timed = not getattr(benchmark, "disabled", False)  # the smoke run times nothing
            if timed and (case.compiled or _previous["contender"] in ("parallel", "cuda")):
                time.sleep(bench.BLAS_SETTLE_S)
            _previous["contender"] = case.contender
            # how far apart the cores were (README, "Cores apart"): before and after the timing
            handoffs = [bench.handoff_ns()] if timed and case.threads > 1 else []
            if case.contender == "python":  # long rounds: a few are enough
                benchmark.pedantic(run, rounds=3, iterations=1)
            else:
                benchmark(run)
            if handoffs and handoffs[0] is not None:
                benchmark.extra_info.update(handoff_ns=[handoffs[0], bench.handoff_ns()])
            check()

    return go
