"""pytest-benchmark suite: start-up and fit's memory, in fresh processes.

- a fresh process with a warm Numba cache imports jitloops, runs every op
  once and finishes the first planar fit iteration: the whole process is
  timed (interpreter start included), its phases go to ``extra_info``;
- cold start: ``jitloops compare`` in a fresh process with an empty Numba
  cache (what a new user's first run waits for: goal 45 s on 2 cores), and
  in the full sweep ``jitloops bench --quick`` likewise (goal 2 minutes).
  One round each: they compile for tens of seconds, so the smoke run (CI)
  leaves them out;
- fit's memory: the peak of a planar fit of few vs many iterations
  (tracemalloc and max RSS) must not grow with the iterations.
"""

import json
import os
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
    argv = [sys.executable, "-c", bench.STARTUP_SCRIPT, backend, "fit", "ops"]
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


COLD_COMMANDS = {
    "compare": (["compare", "--no-progress"], ("quick", "default", "full")),
    "bench --quick": (["bench", "--quick", "--no-startup"], ("full",)),
}


@pytest.mark.parametrize("command", list(COLD_COMMANDS))
def test_cold_start(benchmark, command, request, tmp_path):
    from benchmarks.conftest import sweep
    argv, sweeps = COLD_COMMANDS[command]
    if sweep(request.config) not in sweeps:
        pytest.skip(f"a cold `jitloops {command}` compiles for tens of seconds: sweeps {', '.join(sweeps)} only")
    benchmark.group = "startup: fresh process, empty Numba cache, a whole command"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    out = {}

    def cold_process():
        proc = subprocess.run([sys.executable, "-m", "jitloops", *argv], env=env, capture_output=True, text=True)
        out["proc"] = proc

    benchmark.pedantic(cold_process, rounds=1, iterations=1)
    proc = out["proc"]
    assert proc.returncode == 0, proc.stderr[-2000:]
    if command == "compare":
        assert "All backends agree with numpy: yes" in proc.stdout


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
