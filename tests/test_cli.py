"""The ``jitloops`` command's answers to Ctrl-C, closed pipes and bad options:
one line on stderr and an exit status, never a traceback, a silent wrong run
or a lost file."""

import importlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jitloops.cli import SUBCOMMANDS, main

ROOT = Path(__file__).resolve().parents[1]


def _env(**extra):
    """The environment of a ``python -m jitloops`` child: this checkout first on the path."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path, **extra)


def _jitloops(*args, **kw):
    return [sys.executable, "-m", "jitloops", *args]


# ---------------------------------------------------------------- Ctrl-C


@pytest.mark.parametrize("name", list(SUBCOMMANDS))
def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys, name):
    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(importlib.import_module(SUBCOMMANDS[name][0]), "run", interrupted)
    argv = [name, "symmetry"] if name == "lesson" else [name]
    assert main(argv) == 130
    assert capsys.readouterr().err == f"jitloops {name}: interrupted\n"


def test_ctrl_c_stops_train_and_saves_the_network_as_it_stands(tmp_path):
    from model import NeuralNetwork
    path = tmp_path / "net.npz"
    proc = subprocess.Popen(_jitloops("train", "--backend", "numpy", "--iterations", "100000000", "--cost-every",
                                      "10000000", "--no-progress", "--save", str(path)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(PYTHONUNBUFFERED="1"))
    try:
        assert proc.stdout.readline().startswith("NeuralNetwork(")  # printed just before fit starts
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert err.startswith("jitloops train: interrupted after ") and f"saved the network as it stands to {path}" in err
    done = int(err.split("interrupted after ")[1].split()[0])
    assert done > 0 and tuple(NeuralNetwork.load(path).layer_dims) == (2, 4, 1)


def test_an_interrupted_bench_stops_its_compile_helper(monkeypatch):
    from jitloops import bench
    from jitloops.bench import warm
    started = []
    real_popen = subprocess.Popen

    def popen(cmd, **kw):  # a helper that would compile for a minute
        started.append(real_popen([sys.executable, "-c", "import time; time.sleep(60)"], **kw))
        return started[-1]

    def make_all(cases):
        raise KeyboardInterrupt
    monkeypatch.setattr(subprocess, "Popen", popen)
    monkeypatch.setattr(warm, "make_all", make_all)
    monkeypatch.setattr(warm, "_cpu_count", lambda: 2)
    cases = bench.dot_cases("smoke", with_torch=False)
    with pytest.raises(KeyboardInterrupt):
        warm.warm_up(cases, ["dot"], "smoke", None, None)
    assert started and started[0].poll() is not None  # stopped and waited for, not left running


# ---------------------------------------------------------------- a reader that goes away


def _closed_pipe():
    """A pipe's write end whose reader has already gone: every write to it fails (EPIPE)."""
    r, w = os.pipe()
    os.close(r)
    return w


def _head_1(cmd, timeout=300):
    """``cmd | head -1``: its first line is read, then the pipe is closed. Returns (rc, stderr)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        first = proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read()
        proc.wait(timeout=timeout)
    finally:
        proc.kill()
    return proc.returncode, first, err


def test_train_saves_before_a_reader_that_stopped_early(tmp_path):
    path = tmp_path / "net.npz"
    # 3000 cost lines: more than a pipe holds, so the write meets the closed pipe
    rc, first, err = _head_1(_jitloops("train", "--backend", "numpy", "--iterations", "3000", "--cost-every", "1",
                                       "--no-progress", "--save", str(path)))
    assert first.startswith("NeuralNetwork(")
    assert (rc, err) == (141, "")
    assert path.exists()


def test_train_with_its_progress_bar_on_a_closed_pipe_still_saves(tmp_path):
    # `train ... 2>&1 | head -1`: the bar's write raised BrokenPipeError inside fit, and nothing was saved
    path = tmp_path / "net.npz"
    proc = subprocess.Popen(_jitloops("train", "--backend", "numpy", "--iterations", "3000", "--save", str(path)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
    try:
        assert proc.stdout.readline().startswith("NeuralNetwork(")
        proc.stdout.close()  # the bar's next write meets the closed pipe
        proc.wait(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 141 and path.exists()


def test_compare_into_a_closed_pipe_stops_quietly():
    w = _closed_pipe()
    try:
        done = subprocess.run(_jitloops("compare", "--backends", "numpy", "--iterations", "10", "--no-progress"),
                              stdout=w, stderr=subprocess.PIPE, text=True, env=_env(), timeout=120)
    finally:
        os.close(w)
    assert (done.returncode, done.stderr) == (141, "")


def test_bench_writes_its_json_before_a_reader_that_stopped_early(tmp_path):
    path = tmp_path / "b.json"
    rc, first, err = _head_1(_jitloops("bench", "--sweep", "smoke", "--themes", "dot", "--no-startup", "--no-check",
                                       "--min-time", "0.001", "--json", str(path)))
    assert first.startswith("CPU:")
    assert rc == 141 and "Traceback" not in err, err
    assert path.exists()


class _GoneReader:
    """sys.stdout as a pipe whose reader has gone."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        pass


def test_simd_writes_its_json_before_the_printing(monkeypatch, tmp_path):
    from jitloops import simd
    path = tmp_path / "simd.json"
    monkeypatch.setattr(simd, "report", lambda **kw: {"findings": {}})
    monkeypatch.setattr(simd, "format_report", lambda rep: "the report")
    monkeypatch.setattr(sys, "stdout", _GoneReader())
    assert main(["simd", "--json", str(path)]) == 141
    assert path.read_text().strip().startswith("{")


# ---------------------------------------------------------------- options checked before anything runs


@pytest.mark.parametrize("args, message", [
    (["--hidden", "0"], "--hidden must be >= 1, got 0"),
    (["--m", "0"], "--m must be >= 2, got 0"),
    (["--m", "1"], "--m must be >= 2, got 1"),
    (["--learning-rate", "nan"], "--learning-rate must be a finite number > 0, got nan"),
    (["--learning-rate", "-1"], "--learning-rate must be a finite number > 0, got -1.0"),
    (["--learning-rate", "0"], "--learning-rate must be a finite number > 0, got 0.0"),
    (["--seed", "-1"], "--seed must be in [0, 2**32 - 1], got -1"),
    (["--seed", str(2 ** 32)], "--seed must be in [0, 2**32 - 1]"),
    (["--iterations", "0"], "--iterations must be >= 1, got 0"),
    (["--backends", ""], "--backends names no backend"),
    (["--backends", ","], "--backends names no backend"),
    (["--backends", "numpy,"], "--backends has an empty name in 'numpy,'"),
])
def test_compare_refuses_bad_options_before_it_starts(capsys, args, message):
    assert main(["compare", "--no-progress", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err and len(captured.err.splitlines()) == 1


# ---------------------------------------------------------------- output files checked before the run


def _nothing_runs(monkeypatch):
    """Make every subcommand's real work fail the test: a refusal must come first."""
    from jitloops import lessons, simd
    from jitloops.bench import command

    def ran(*a, **kw):
        raise AssertionError("the run started before the option was checked")
    monkeypatch.setattr(command, "machine_info", ran)
    monkeypatch.setattr(simd, "report", ran)
    monkeypatch.setattr(lessons, "module", lambda name: type("M", (), {"run": staticmethod(ran)}))


@pytest.mark.parametrize("args, message", [
    (["bench", "--json", "{tmp}/missing/x.json"], "--json: the folder '{tmp}/missing' does not exist"),
    (["bench", "--json", "{tmp}"], "--json: that is a folder"),
    (["bench", "--json", "{tmp}/new/"], "--json '{tmp}/new/' names a folder"),
    (["bench", "--json", ""], "--json needs a file name"),
    (["bench", "--plot", "{tmp}/missing/x.png"], "--plot: the folder '{tmp}/missing' does not exist"),
    (["bench", "--plot", "{tmp}/x.txt"], "--plot: matplotlib cannot write a '.txt' picture"),
    (["bench", "--json", "{tmp}/same.png", "--plot", "{tmp}/same.png"], "--json and --plot both name"),
    (["bench", "--json", "{tmp}/same.png", "--plot", "{tmp}/same"], "--json and --plot both name"),
    (["simd", "--json", "{tmp}/missing/x.json"], "--json: the folder '{tmp}/missing' does not exist"),
    (["lesson", "symmetry", "--plot", "{tmp}/missing/x.png"], "--plot: the folder '{tmp}/missing' does not exist"),
    (["lesson", "symmetry", "--plot", "{tmp}/pic.txt"], "--plot: matplotlib cannot write a '.txt' picture"),
    (["lesson", "symmetry", "--plot", ""], "--plot needs a file name"),
    (["train", "--save", ""], "--save needs a file name"),
])
def test_output_paths_are_checked_before_the_run(monkeypatch, capsys, tmp_path, args, message):
    pytest.importorskip("matplotlib")
    _nothing_runs(monkeypatch)
    args = [a.format(tmp=tmp_path) for a in args]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert message.format(tmp=tmp_path) in captured.err and len(captured.err.splitlines()) == 1
    assert "iterations in" not in captured.out


def _tiny_lesson():
    from jitloops.lessons.common import Lesson
    return Lesson("tiny", "A tiny lesson", ["a"], [[1]], "It shows one.",
                  draw=lambda plt: plt.subplots(figsize=(1, 1))[0])


def test_a_picture_without_extension_is_reported_by_the_name_written(monkeypatch, capsys, tmp_path):
    pytest.importorskip("matplotlib")
    from jitloops import lessons
    monkeypatch.setattr(lessons, "module", lambda name: type("M", (), {"run": staticmethod(
        lambda backend=None: _tiny_lesson())}))
    assert main(["lesson", "symmetry", "--plot", str(tmp_path / "mypic")]) == 0
    assert f"picture: {tmp_path / 'mypic.png'}\n" in capsys.readouterr().out
    assert (tmp_path / "mypic.png").exists() and not (tmp_path / "mypic").exists()
    assert _tiny_lesson().plot(tmp_path / "other") == tmp_path / "other.png"
    assert _tiny_lesson().plot(str(tmp_path / "third.")) == str(tmp_path / "third.png")


@pytest.mark.parametrize("args, message", [
    (["bench", "--dtypes", "float16"], "unknown dtype(s) float16 in --dtypes; valid: float64, float32"),
    (["bench", "--dtypes", "int64,float64"], "unknown dtype(s) int64 in --dtypes"),
    (["bench", "--dtypes", ""], "--dtypes names no dtype"),
    (["bench", "--themes", ""], "--themes names no theme"),
    (["bench", "--themes", ","], "--themes names no theme"),
    (["bench", "--backends", ""], "--backends names no backend"),
    (["bench", "--backends", "numba,"], "--backends has an empty name in 'numba,'"),
    (["bench", "--threads", "0"], "--threads must be >= 1, got 0"),
    (["bench", "--threads", "-2"], "--threads must be >= 1, got -2"),
    (["bench", "--min-time", "-5"], "--min-time must be a finite number >= 0, got -5.0"),
    (["bench", "--min-time", "nan"], "--min-time must be a finite number >= 0, got nan"),
    (["bench", "--quick", "--sweep", "default"], "--quick means --sweep quick"),
    (["simd", "--min-time", "-5"], "--min-time must be a finite number >= 0, got -5.0"),
    (["simd", "--min-time", "nan"], "--min-time must be a finite number >= 0, got nan"),
])
def test_bench_and_simd_refuse_bad_options_before_they_start(monkeypatch, capsys, args, message):
    _nothing_runs(monkeypatch)
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err and len(captured.err.splitlines()) == 1


def test_bench_leaves_out_a_backend_that_cannot_run_here(monkeypatch, capsys):
    import kernels
    _nothing_runs(monkeypatch)
    reasons = {"cuda": "backend 'cuda' found no GPU here"}
    monkeypatch.setattr(kernels, "unavailable_reason", lambda name: reasons.get(name))
    assert main(["bench", "--themes", "ops", "--backends", "cuda"]) == 2
    assert capsys.readouterr().err == "jitloops bench: no backend of --backends cuda can run here: " \
                                      "backend 'cuda' found no GPU here\n"
    with pytest.raises(AssertionError, match="the run started"):  # numpy can: the run goes on without cuda
        main(["bench", "--themes", "ops", "--backends", "numpy,cuda"])
    assert "note: --backends cuda left out: backend 'cuda' found no GPU here" in capsys.readouterr().err


def test_the_dot_theme_runs_the_contenders_of_the_backends_asked_for():
    from jitloops import bench
    names = [c.contender for c in bench.all_cases(["dot"], "smoke", backends=["numpy"])]
    assert set(names) - {"torch"} == {"np.dot 1 thread", "np.dot all threads"}
    names = [c.contender for c in bench.dot_cases("smoke", with_torch=False, backends=["numba", "parallel"])]
    assert names == ["njit", "njit fastmath", "parallel"]


def test_bench_reproduce_line_and_picture_name(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    assert main(["bench", "--sweep", "smoke", "--themes", "dot", "--backends", "numpy", "--dtypes", "float64",
                 "--min-time", "0.001", "--no-startup", "--plot", str(tmp_path / "pic")]) == 0
    out = capsys.readouterr().out
    assert ("reproduce: jitloops bench --sweep smoke --themes dot --backends numpy --dtypes float64 "
            "--min-time 0.001 --no-startup;") in out
    assert f"wrote {tmp_path / 'pic.png'}\n" in out and (tmp_path / "pic.png").exists()


def test_train_refuses_an_init_scale_for_zeros(capsys):
    assert main(["train", "--no-progress", "--iterations", "2", "--init", "zeros", "--init-scale", "5"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "--init-scale 5 means nothing for --init zeros" in captured.err


@pytest.mark.parametrize("command, args", [
    ("train", ["--m", str(10 ** 15)]),
    ("train", ["--hidden", str(10 ** 14)]),
    ("compare", ["--m", str(10 ** 15)]),
    ("compare", ["--hidden", str(10 ** 14)]),
])
def test_sizes_past_the_memory_are_one_line_not_a_memory_error(capsys, command, args):
    # 10**15 examples, or 10**14 units, are petabytes: no machine makes them
    assert main([command, "--backend" if command == "train" else "--backends", "numpy", "--iterations", "2",
                 "--no-progress", *args]) == 2
    err = capsys.readouterr().err
    assert f"jitloops {command}: not enough memory for " in err and "use a smaller --m or --hidden" in err
    assert len(err.splitlines()) == 1


def test_cost_records_past_the_memory_name_the_options_that_make_them(capsys):
    assert main(["train", "--backend", "numpy", "--iterations", str(10**15), "--cost-every", "1",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--iterations 1000000000000000 with --cost-every 1 records more costs than memory holds" in err
    assert len(err.splitlines()) == 1


def test_a_failed_memory_measurement_stops_the_other_process(monkeypatch):
    from jitloops.bench import startup
    started = []
    real_popen = subprocess.Popen
    scripts = iter(["print('not json')", "import time; time.sleep(60)"])

    def popen(cmd, **kw):
        started.append(real_popen([sys.executable, "-c", next(scripts)], **kw))
        return started[-1]
    monkeypatch.setattr(subprocess, "Popen", popen)
    with pytest.raises(ValueError):
        startup.fit_memory("numpy")
    assert len(started) == 2 and started[1].poll() is not None


def test_json_may_go_to_a_device_but_save_may_not(tmp_path):
    # --json is written with open(): /dev/null and /dev/stdout are fine there; save renames a file over its path
    from jitloops import options
    if not (os.path.exists(os.devnull) and not os.path.isfile(os.devnull)):
        pytest.skip("no device file to try")
    assert options.output_path(os.devnull, "--json") == os.devnull
    with pytest.raises(ValueError, match="--save: .*not a regular file"):
        options.output_path(os.devnull, "--save")
