"""``jitloops bench`` and the cases behind the benchmark suites."""

import json
import sys

import numpy as np
import pytest

from jitloops import bench
from jitloops.bench import runner, training
from jitloops.cli import main


def test_training_cases_cover_the_performance_goals():
    groups = {c.label.split()[0] for c in bench.training_cases("default")}
    assert {"planar", "logistic", "deep", "mnist"} <= groups
    full = {c.label for c in bench.training_cases("full")}
    assert any("m=60000" in label for label in full)
    assert not any("m=60000" in c.label for c in bench.training_cases("smoke"))


def test_training_flops_count_the_products_an_iteration_does():
    # forward W A and backward dW for every layer; dA_prev for every layer
    # but the first (dX: X needs no gradient, no contender computes it)
    assert bench.training_flops([2, 4, 1], 400) == 2 * (12 + 12 + 4) * 400
    assert bench.training_flops([12288, 1], 209) == 2 * (2 * 12288) * 209  # logistic: no dA at all


def test_the_cuda_backend_races_only_full_batch_training():
    # fit refuses mini-batches and Adam on cuda: the bench must not ask it to
    cases = bench.training_cases("default", backends=["numpy", "cuda"], with_torch=False)
    cuda = {c.label.split()[0] for c in cases if c.contender == "cuda"}
    assert cuda and not any(name in training.FIT_OPTIONS for name in cuda)
    numpy_rows = {c.label.split()[0] for c in cases if c.contender == "numpy"}
    assert set(training.FIT_OPTIONS) <= numpy_rows


def test_dot_contenders():
    names = {c.contender for c in bench.dot_cases("default", with_torch=False)}
    assert {"python", "np.dot 1 thread", "np.dot all threads", "njit", "njit fastmath", "parallel"} <= names
    one = [c for c in bench.dot_cases("smoke", with_torch=False) if c.contender == "np.dot 1 thread"]
    assert one and all(c.blas_threads == 1 for c in one)


def test_python_backend_only_where_a_call_is_under_a_second():
    for case in bench.ops_cases("full") + bench.training_cases("full"):
        if case.contender == "python":
            assert case.flops / 2 * bench.PY_SECONDS_PER_ITER <= bench.PY_MAX_ROUND_S * 4, case.id
    sizes = {c.size for c in bench.ops_cases("full") if c.contender == "python"}
    assert sizes and max(sizes) < max(bench.OPS_SIZES["full"])


def test_ops_sweep_spans_the_memory_hierarchy():
    levels = {c.group.split("(")[-1].rstrip(")") for c in bench.ops_cases("full", backends=["numpy"])}
    assert {"L1", "L2", "memory"} <= levels


def test_a_case_checks_its_result():
    case = next(c for c in bench.ops_cases("smoke", backends=["numba"], dtypes=("float64",))
                if c.label.startswith("linear_forward"))
    run, check = case.make()
    run()
    check()
    with pytest.raises(AssertionError, match="max relative error"):
        bench.assert_close("x", np.array([1.0, 2.0]), np.array([1.0, 2.1]), "float64")


def test_cli_prints_tables_and_writes_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    rc = main(["bench", "--sweep", "smoke", "--themes", "ops", "--backends", "numpy,numba",
               "--dtypes", "float64", "--no-startup", "--json", str(path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "CPU:" in out and "threading layer" in out and "BLAS" in out
    assert "linear_forward" in out and "x numpy" in out
    report = json.loads(path.read_text())
    rows = [r for r in report["results"] if "time_s" in r]
    assert rows and all(r["time_s"] > 0 for r in rows)
    assert {r["contender"] for r in rows} == {"numpy", "numba"}
    assert all(r["speedup_vs_numpy"] == pytest.approx(1.0) for r in rows if r["contender"] == "numpy")


def test_plot_without_matplotlib_says_how_to_get_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    rc = main(["bench", "--quick", "--plot", str(tmp_path / "p.png")])
    assert rc == 2
    assert "jitloops[plot]" in capsys.readouterr().err


def test_bad_theme_is_refused(capsys):
    assert main(["bench", "--themes", "ops,nope"]) == 2
    assert "unknown theme" in capsys.readouterr().err


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [dict(theme="ops", label=f"linear_forward (n,k)=(32,32) m={m} [L1]", contender=c, dtype=d,
                 size=m, time_s=m * t) for m in (64, 2048) for c, t in (("numpy", 1e-7), ("numba", 2e-7))
            for d in ("float64", "float32")]
    path = tmp_path / "p.png"
    bench.plot(dict(results=rows, machine=dict(cpu="test CPU", cores=2)), path)
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_goal_ratios_from_results():
    def row(theme, label, contender, t, dtype="float64"):
        return dict(theme=theme, label=label, dtype=dtype, contender=contender, time_s=t,
                    per_iteration_s=t, per_iteration_min_s=t / 2)
    results = [row("training", "planar [2, 4, 1] m=400", "numpy", 8.0),
               row("training", "planar [2, 4, 1] m=400", "numba", 2.0),
               row("training", "planar [2, 4, 1] m=400", "parallel", 4.0),
               row("training", "planar [2, 4, 1] m=400", "torch", 40.0),
               row("dot", "dot n=1,000,000", "parallel", 1.0),
               row("dot", "dot n=1,000,000", "np.dot all threads", 2.0),
               row("training", "mnist [784, 128, 64, 1] m=1024", "numpy", 10.0),
               row("training", "mnist [784, 128, 64, 1] m=1024", "parallel", 8.0),
               row("training", "mnist [784, 128, 64, 1] m=1024", "torch", 5.0)]
    ratios = {what: (med, mn) for what, med, mn, _ in bench.goal_ratios(results)}
    goals = {what: goal for what, _, _, goal in bench.goal_ratios(results)}
    assert ratios["mnist float64: parallel / numpy"] == (0.8, 0.8) and goals["mnist float64: parallel / numpy"] == "<= 1"
    assert ratios["mnist float64: parallel / torch"] == (1.6, 1.6) and goals["mnist float64: parallel / torch"] == "<= 1.1"
    assert goals["planar float64: numpy / best compiled"] == ">= 8"
    assert ratios["planar float64: numpy / best compiled"] == (4.0, 4.0)
    assert ratios["planar float64: torch / best compiled"] == (20.0, 20.0)
    assert ratios["dot float64: parallel / np.dot"] == (0.5, 0.5)
    assert "ratio" in bench.goals_table(results)


def test_the_cores_handoff_is_measured_and_reported_for_multi_threaded_problems(monkeypatch):
    """A group with a multi-threaded contender gets the cores' handoff
    (measured before each round and after the last: median and range, on
    every row of the group); a single-threaded group none. The training
    table and the goals table show it only where it was measured."""
    monkeypatch.setattr(runner, "BLAS_SETTLE_S", 0.0)
    seen = iter([70.0, 72.0, 330.0, 71.0])
    monkeypatch.setattr(runner, "handoff_ns", lambda: next(seen))

    def make():
        return (lambda: None), (lambda: None)
    label = "adam64-digits [64, 128, 64, 1] m=1347"
    cases = [bench.Case(theme="training", group="g", contender=c, make=make, size=1, label=label, id=c,
                        threads=t, dtype="float64") for c, t in (("numpy", 1), ("numba", 1), ("parallel", 2))]
    rows = bench.run_cases(cases, min_time=0.0, rounds=3)
    for r in rows:
        assert r["handoff_ns"] == 71.5 and r["handoff_ns_range"] == [70.0, 330.0]
    serial = bench.run_cases(cases[:2], min_time=0.0, rounds=3)  # no multi-threaded contender: never measured
    assert all("handoff_ns" not in r for r in serial)
    assert bench.report.handoff_text(rows[0]) == "70-330"
    assert bench.report.handoff_text(dict(handoff_ns=70.0, handoff_ns_range=[70.0, 80.0])) == "70"
    for r in rows:
        r.update(per_round=1, flops=None, nbytes=None, bound="compute")
    bench.add_metrics(rows, dict(vector_bits=256, llvm_cpu="x"), None)
    table = bench.theme_table(rows, "training")
    assert "handoff ns" in table.splitlines()[0] and "70-330" in table
    assert "handoff ns" not in bench.theme_table([dict(r, handoff_ns=None) for r in rows], "training")
    goals = bench.goals_table(rows)
    assert "handoff ns" in goals and "70-330" in goals
    assert [len(r) for r in bench.goal_ratios(rows)] == [4]  # the four-field rows, unchanged


def test_the_handoff_measurement_finishes_on_one_cpu_and_says_none_there():
    """Two threads bouncing a line on one CPU finish (they yield the core,
    as the team's members do), and handoff_ns itself answers None where the
    process may use one CPU only (a child process pinned to one)."""
    import subprocess
    code = (
        "import os, time\n"
        "os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})\n"
        "from jitloops.bench import machine\n"
        "assert machine.handoff_ns() is None\n"
        "machine.usable_cpus = lambda: 2\n"
        "t = time.perf_counter(); ns = machine.handoff_ns(round_trips=200, repeats=1)\n"
        "assert ns > 0 and time.perf_counter() - t < 20, (ns, time.perf_counter() - t)\n"
        "print('ok', ns)\n")
    if not hasattr(__import__("os"), "sched_setaffinity"):
        pytest.skip("this OS cannot pin a process to one CPU (no os.sched_setaffinity)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("ok"), out.stderr[-2000:]


def test_the_handoff_between_two_cpus_is_a_positive_time():
    if bench.usable_cpus() < 2:
        pytest.skip("one CPU here: handoff_ns answers None (the test above)")
    # the least of 3 runs: a run whose other thread waited for a core (the suite's own workers on a
    # 2-core machine) takes a scheduler slice a round trip, 1.5 ms once
    ns = bench.handoff_ns(round_trips=500, repeats=3)
    assert ns is not None and 0 < ns < 1e6  # tens to hundreds of ns between real cores; a loaded host more


def test_torch_on_the_gpu_is_a_contender_only_where_torch_sees_one(monkeypatch):
    """"torch-cuda" (PyTorch on the GPU, the cuda backend's reference) is
    listed where PyTorch has a CUDA device, never elsewhere; its rows, like
    the cuda backend's, carry no CPU peak."""
    monkeypatch.setattr(training, "torch_version", lambda: "2.x")  # where training_cases looks them up
    monkeypatch.setattr(training, "torch_cuda_device", lambda: None)
    names = {c.contender for c in bench.training_cases("smoke", backends=["numpy"])}
    assert names == {"numpy", "torch"}
    monkeypatch.setattr(training, "torch_cuda_device", lambda: "Test GPU")
    cases = bench.training_cases("smoke", backends=["numpy", "cuda"])
    assert {c.contender for c in cases} == {"numpy", "cuda", "torch", "torch-cuda"}
    for c in cases:
        assert (c.bound == "gpu") == (c.contender in ("cuda", "torch-cuda")), c.id
        assert not (c.contender == "torch-cuda" and c.compiled)
    assert not {c.contender for c in bench.training_cases("smoke", backends=["numpy"], with_torch=False)} - {"numpy"}


def test_gpu_rows_have_no_cpu_peak_and_the_header_names_the_gpu():
    info = dict(cpu="test CPU", llvm_cpu="x", cores=2, simd=["avx2"], vector_bits=256, ghz=2.0,
                caches={1: 32768}, numba="0", numpy="0", llvmlite="0", python="3", numba_threading_layer="omp",
                numba_threads=2, blas=dict(name="openblas", threads=2), torch="2.x", backends=["numpy", "cuda"],
                gpu="Test GPU")
    rows = [dict(theme="training", label="mnist60k [784, 128, 64, 1] m=60000", dtype="float32", contender=c,
                 time_s=t, per_round=1, flops=1e9, nbytes=None, bound=b, threads=2)
            for c, t, b in (("numpy", 1.0, "compute"), ("cuda", 0.04, "gpu"), ("torch-cuda", 0.025, "gpu"))]
    bench.add_metrics(rows, info, None)
    by = {r["contender"]: r for r in rows}
    assert by["numpy"]["peak_fraction"] is not None
    assert by["cuda"]["peak_fraction"] is None and by["torch-cuda"]["peak_fraction"] is None
    assert by["cuda"]["speedup_vs_numpy"] == pytest.approx(25.0)
    assert any("GPU: Test GPU" in line for line in bench.header_lines(info))
    ratios = {what: med for what, med, _, _ in bench.goal_ratios(rows)}
    assert ratios["mnist60k float32: numpy / cuda"] == pytest.approx(25.0)
    assert ratios["mnist60k float32: cuda / torch-cuda"] == pytest.approx(1.6)


def test_training_contenders_are_timed_in_turns(monkeypatch):
    """The contenders of one training problem run in ROUNDS turns (A B A B
    ...), so a slow drift of the machine lands on all of them alike; a
    contender that cannot run is reported as skipped, the others still time."""
    monkeypatch.setattr(runner, "BLAS_SETTLE_S", 0.0)  # where the runner reads it
    log = []

    def make(name):
        def build():
            if name == "torch":
                raise bench.Skip("torch: torch is not installed")
            return (lambda: log.append(name)), (lambda: None)
        return build

    cases = [bench.Case(theme="training", group="training g", contender=c, make=make(c), size=1,
                        label="g", id=f"g-{c}") for c in ("numpy", "numba", "torch")]
    rows = bench.run_cases(cases, min_time=0.0, rounds=3)
    assert [r["contender"] for r in rows] == ["numpy", "numba", "torch"]
    assert log == ["numpy", "numba"] * 3  # one call a round each (min_time 0), in turns
    assert "time_s" in rows[0] and "time_s" in rows[1] and rows[2]["skipped"].startswith("torch")
    # another theme's contenders run one after the other
    log.clear()
    other = [bench.Case(theme="ops", group="ops g", contender=c, make=make(c), size=1, label="g", id=c)
             for c in ("numpy", "numba")]
    bench.run_cases(other, min_time=0.0, rounds=3)
    assert log == ["numpy"] * 3 + ["numba"] * 3  # min_reps 3, no turns


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_program_variant_is_the_one_a_network_compiles(dtype):
    """The compile helper's split (bench.warm) rests on program_variant: it
    must name the variant NeuralNetwork's own rule picks for each problem."""
    from kernels.cpu import compiled_variant
    from model import NeuralNetwork
    from model.team_run import team_parts
    got = {name: training.program_variant(name, "parallel", dtype) for name in training.TRAINING}
    assert got["planar"] == "numba"  # too small for threads: the serial program
    assert got["mnist"] == got["deep"] == got["logistic"] == "parallel"
    for name, (dims, act, m, *_rest) in training.TRAINING.items():
        if act is None:
            continue
        net = NeuralNetwork(dims, activations=act, dtype=dtype, backend="parallel",
                            output="softmax" if dims[-1] > 1 else "sigmoid")
        size = min(training.FIT_OPTIONS.get(name, {}).get("batch_size") or m, m)
        net._program_for(size, m % size or size)  # what fit asks for (no compiling: dispatchers are lazy)
        if size < m and team_parts(dims, size, False):  # a team's members run the serial variant
            assert got[name] == "numba", name
        else:
            assert compiled_variant("parallel", net._plans)[0] == got[name], name
        assert training.program_variant(name, "numba", dtype) == "numba"


def test_the_compile_helper_takes_only_the_parallel_variants_cases():
    from jitloops.bench import warm
    cases = bench.training_cases("quick", backends=["numba", "parallel"], dtypes=("float64",), with_torch=False)
    cases += bench.ops_cases("smoke", backends=["numba", "parallel"], dtypes=("float64",))
    helper = warm._helper_cases(cases)
    assert helper and all(c.contender == "parallel" for c in helper)
    ids = {c.id for c in helper}
    assert "planar-float64-parallel" not in ids and "mnist-float64-parallel" in ids
    assert any(c.theme == "ops" for c in helper)


def test_make_all_leaves_failures_to_the_timing_phase():
    from jitloops.bench import warm
    from jitloops.bench.cases import Case
    made = []

    def bad():
        raise RuntimeError("no")

    def good():
        made.append(1)
        return (lambda: None), (lambda: None)
    cases = [Case("ops", "g", "numba", bad, 1), Case("ops", "g", "numba", good, 1)]
    warm.make_all(cases)
    assert made == [1]


def test_the_compile_helper_runs_as_a_module():
    """python -m jitloops.bench.warm: the helper warm_up starts (a smoke
    sweep of the dot theme: one parallel kernel)."""
    import subprocess
    done = subprocess.run([sys.executable, "-m", "jitloops.bench.warm", "--themes", "dot", "--sweep", "smoke",
                           "--dtypes", "float64"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr


def test_rounds_pause_before_compiled_code_only_where_blas_may_spin(monkeypatch):
    """In a group's rounds a compiled contender waits BLAS_SETTLE_S after
    NumPy (its BLAS threads spin) and any contender after "parallel" (its
    workers spin), but "parallel" right after "numba" (no BLAS, no pool) does not."""
    order = []
    monkeypatch.setattr(runner, "settle_threads", lambda: order.append("pause"))

    def make(name):
        return lambda: ((lambda: order.append(name)), (lambda: None))
    cases = [bench.Case(theme="training", group="training g", contender=c, make=make(c), size=1,
                        label="g", id=f"g-{c}") for c in ("numpy", "numba", "parallel")]
    bench.run_cases(cases, min_time=0.0, rounds=2)
    timed = order[order.index("numpy"):]  # the rounds, after the warm-up
    assert timed == ["numpy", "pause", "numba", "parallel", "pause", "numpy", "pause", "numba", "parallel"]


def test_a_pause_lasts_while_other_threads_run_and_no_longer(monkeypatch):
    """settle_threads polls until no other thread of the process runs (the
    BLAS workers stopped spinning), BLAS_SETTLE_S at most; where /proc
    cannot tell, it sleeps the whole limit."""
    clock = [0.0]
    monkeypatch.setattr(runner.time, "perf_counter", lambda: clock[0])
    slept = []

    def sleep(s):
        slept.append(s)
        clock[0] += s
    monkeypatch.setattr(runner.time, "sleep", sleep)
    states = iter([True, True, False])
    monkeypatch.setattr(runner, "_other_threads_running", lambda: next(states))
    runner.settle_threads(0.15)
    assert slept == [runner.SETTLE_POLL_S] * 2  # two polls while running, none after
    slept.clear()
    monkeypatch.setattr(runner, "_other_threads_running", lambda: True)
    runner.settle_threads(0.15)
    assert sum(slept) == pytest.approx(0.15, abs=runner.SETTLE_POLL_S)  # the limit, never longer
    slept.clear()
    monkeypatch.setattr(runner, "_other_threads_running", lambda: None)
    runner.settle_threads(0.15)
    assert sum(slept) == pytest.approx(0.15)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's /proc/self/task")
def test_a_spinning_thread_is_seen_running():
    """A thread computing outside the GIL (hashing: as a BLAS worker spins)
    is seen running; once it has ended it is not."""
    import hashlib
    import threading
    block = bytes(1 << 20)
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            hashlib.sha256(block).digest()  # releases the GIL for large inputs
    t = threading.Thread(target=spin)
    t.start()
    try:
        seen = [runner._other_threads_running() for _ in range(200)]
    finally:
        stop.set()
        t.join()
    assert any(seen)
    assert runner._other_threads_running() is not None  # /proc tells, on Linux


def test_a_short_run_times_the_pure_python_contender_once():
    """run_cases(python_calls=1) (the quick and smoke sweeps) calls a single
    pure-Python case once after making it; others as many times as min_time asks."""
    calls = {"python": 0, "numpy": 0}

    def make(name):
        def run():
            calls[name] += 1
        return lambda: (run, (lambda: None))
    cases = [bench.Case(theme="ops", group=f"g {c}", contender=c, make=make(c), size=1, label="g", id=f"g-{c}")
             for c in ("python", "numpy")]
    bench.run_cases(cases, min_time=0.0, python_calls=1)
    assert calls["python"] == 1 and calls["numpy"] >= 3
    calls.update(python=0)
    bench.run_cases(cases[:1], min_time=0.0)
    assert calls["python"] == 3


def test_the_peak_counts_one_512_bit_fma_a_cycle_where_avx512_runs_on_256_bit_paths():
    """Zen 4 (LLVM's znver4) issues a 512-bit FMA as two 256-bit halves: its
    peak is half of what two full-width FMA units would give; its 256-bit
    code (vector_bits 256) and other CPUs keep FMA_UNITS."""
    from jitloops.bench import machine
    zen4 = dict(ghz=2.0, vector_bits=512, llvm_cpu="znver4")
    assert machine.fma_units(zen4) == 1
    assert machine.compute_peak(8, 1, zen4) == 2.0 * 1 * 2 * 8
    for other in (dict(zen4, llvm_cpu="znver5"), dict(zen4, llvm_cpu="sapphirerapids"), dict(zen4, vector_bits=256)):
        assert machine.fma_units(other) == machine.FMA_UNITS
    assert machine.compute_peak(4, 2, dict(zen4, llvm_cpu="znver5")) == 2 * 2.0 * machine.FMA_UNITS * 2 * 16


def test_the_header_names_numpys_own_simd_target():
    """NumPy's ufuncs dispatch to their own SIMD targets, apart from its
    BLAS's (an AVX2 comparison on an AVX-512 CPU turns them off with
    NPY_DISABLE_CPU_FEATURES): the header names the best one it runs."""
    from jitloops.bench.machine import numpy_simd
    found = numpy_simd()
    if not found:
        pytest.skip("this NumPy does not list its SIMD targets")
    from numpy._core._multiarray_umath import __cpu_features__
    assert all(__cpu_features__.get(t) for t in found)
    info = dict(cpu="test CPU", llvm_cpu="x", cores=2, simd=["avx2"], vector_bits=256, ghz=2.0,
                caches={1: 32768}, numba="0", numpy="2.x", llvmlite="0", python="3", numba_threading_layer="omp",
                numba_threads=2, blas=dict(name="openblas", threads=2), numpy_simd=found, torch=None)
    assert f"numpy 2.x (SIMD {found[-1]}, BLAS openblas" in bench.header_lines(info)[1]
    del info["numpy_simd"]  # an older record: no SIMD named
    assert "numpy 2.x (BLAS openblas" in bench.header_lines(info)[1]
    if "X86_V4" in found:  # an AVX-512 CPU: the AVX2 comparison's setting takes them away
        import os
        import subprocess
        env = dict(os.environ, NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR")
        out = subprocess.run([sys.executable, "-c", "from jitloops.bench.machine import numpy_simd; "
                              "print(' '.join(numpy_simd()))"], env=env, capture_output=True, text=True, check=True)
        assert "X86_V3" in out.stdout.split() and "X86_V4" not in out.stdout.split()


def test_the_header_names_numpys_own_blas_where_several_are_loaded(monkeypatch):
    """Where SciPy is installed, Numba's first compile loads SciPy's
    OpenBLAS beside NumPy's: the header names NumPy's, whatever the order."""
    import threadpoolctl

    from jitloops.bench import machine
    libs = [dict(user_api="blas", internal_api="openblas", version="0.3.30", architecture="Haswell",
                 num_threads=2, filepath="/site-packages/scipy.libs/libscipy_openblas-1.so"),
            dict(user_api="blas", internal_api="openblas", version="0.3.31", architecture="SkylakeX",
                 num_threads=2, filepath="/site-packages/numpy.libs/libscipy_openblas64_-2.so")]
    for order in (libs, libs[::-1]):
        monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda order=order: list(order))
        assert machine._blas_info()["name"] == "openblas 0.3.31 (SkylakeX)"
    monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: libs[:1])  # NumPy's not among them: the first
    assert machine._blas_info()["name"] == "openblas 0.3.30 (Haswell)"
