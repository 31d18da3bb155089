"""pytest-benchmark suite: start-up and fit's memory, in fresh processes.

- a fresh process with a warm Numba cache imports jitloops, runs every op
  once and finishes the first planar fit iteration: the whole process is
  timed (interpreter start included), its phases go to ``extra_info``;
- fit's memory: the peak of a planar fit of few vs many iterations
  (tracemalloc and max RSS) must not grow with the iterations.

Compile time from an empty cache is measured by ``jitloops bench`` (it takes
tens of seconds, too long for a suite).
"""

import json
import subprocess
import sys

import pytest

from jitloops import bench

pytestmark = pytest.mark.skipif(not bench.model_available(), reason="the model layer is not available")


@pytest.mark.parametrize("backend", ["numba", "parallel"])
def test_fresh_process_first_fit(benchmark, backend, request):
    from benchmarks.conftest import sweep
    smoke = sweep(request.config) == "smoke"
    if smoke and backend == "parallel":
        pytest.skip("the smoke run starts one fresh process (numba) only")
    benchmark.group = "startup: fresh process, warm cache, first planar fit iteration"
    argv = [sys.executable, "-c", bench.STARTUP_SCRIPT, backend, "fit"]
    if not smoke:
        subprocess.run(argv, check=True, capture_output=True)  # fills the cache if it was cold
    out = {}

    def fresh_process():
        proc = subprocess.run(argv, check=True, capture_output=True, text=True)
        out.update(json.loads(proc.stdout.strip().splitlines()[-1]))

    benchmark.pedantic(fresh_process, rounds=3, iterations=1)
    benchmark.extra_info.update(import_s=out["import_s"], fit_s=out["first_fit_s"],
                                ops_s=sum(out["first_calls_s"].values()))
    assert out["first_fit_s"] is not None and out["first_fit_s"] > 0


def test_fit_memory_does_not_grow(benchmark, request):
    from benchmarks.conftest import sweep
    counts = (10, 1000) if sweep(request.config) == "smoke" else (100, 10_000)
    benchmark.group = "fit memory"
    rows = benchmark.pedantic(lambda: bench.fit_memory("numba", counts), rounds=1, iterations=1)
    assert all("error" not in r for r in rows), rows
    few, many = rows
    benchmark.extra_info.update({f"traced_peak_bytes_{r['iterations']}": r["traced_peak_bytes"] for r in rows})
    benchmark.extra_info.update({f"maxrss_growth_kib_{r['iterations']}": r["maxrss_growth_kib"] for r in rows})
    assert many["final_cost"] < few["final_cost"]  # it trained
    # costs_ grows by one float per cost_every (100) iterations: allow that, nothing more
    allowed = 8 * (many["iterations"] // 100) * 4 + 64 * 1024
    assert many["traced_peak_bytes"] <= few["traced_peak_bytes"] + allowed, rows
