"""``jitloops compare`` and ``jitloops train``, run in-process on small settings."""

import numpy as np

from model import NeuralNetwork, datasets
from jitloops.cli import main


def test_compare_races_the_backends(capsys):
    rc = main(["compare", "--iterations", "300", "--python-iterations", "5", "--backends",
               "python,numpy,numba,cuda", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "Planar network [2, 4, 1]" in out and "Machine:" in out and "threading layer" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.split()[:1]}
    for name in ("python*", "numpy", "numba"):
        assert name in lines, out
    assert "ran 5 iterations, time extrapolated to 300" in out
    assert "All backends agree with numpy: yes" in out
    assert "cuda: not available:" in out or "cuda " in out


def test_compare_float32_and_bad_backend(capsys):
    assert main(["compare", "--iterations", "100", "--python-iterations", "3", "--backends", "numpy,python",
                 "--dtype", "float32", "--no-progress"]) == 0
    assert "float32" in capsys.readouterr().out
    assert main(["compare", "--backends", "numpy,gpu"]) == 2
    assert "unknown backend(s) gpu" in capsys.readouterr().err


def test_train_reports_and_saves(tmp_path, capsys):
    path = tmp_path / "net.npz"
    rc = main(["train", "--backend", "numpy", "--iterations", "300", "--cost-every", "100", "--save", str(path),
               "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "cost after iteration 200:" in out and "training accuracy" in out
    X, Y = datasets.planar()
    net = NeuralNetwork.load(path)
    reference = NeuralNetwork([2, 4, 1], activations="tanh", seed=2).fit(X, Y, 300, 1.2)
    np.testing.assert_array_equal(net.predict_proba(X), reference.predict_proba(X))


def test_train_divergence_and_bad_arguments(capsys):
    assert main(["train", "--backend", "numpy", "--activation", "relu", "--learning-rate", "1e6",
                 "--iterations", "500", "--no-progress"]) == 1
    assert "diverged at iteration" in capsys.readouterr().err
    assert main(["train", "--hidden", "4,x"]) == 2
    assert "--hidden must be comma-separated ints" in capsys.readouterr().err


def test_version_names_the_compile_target_and_threading_layer(capsys):
    import pytest

    from kernels import target, threads
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("jitloops ")
    assert f"compiles for {target.cpu_name()}" in out
    assert f"threading layer: {threads.layer()}" in out


def test_train_with_minibatches_and_adam(capsys):
    rc = main(["train", "--dataset", "moons", "--m", "300", "--hidden", "5,2", "--activation", "relu",
               "--init", "he", "--backend", "numpy", "--epochs", "30", "--learning-rate", "0.01",
               "--batch-size", "64", "--optimizer", "adam", "--cost-every", "10", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "cost after epoch 20:" in out and "30 epochs in" in out
    assert main(["train", "--batch-size", "0", "--iterations", "1", "--no-progress"]) == 2
    assert "batch_size must be an int >= 1" in capsys.readouterr().err


def test_lesson_lists_every_lesson_and_refuses_unknown_ones(capsys):
    from jitloops import lessons
    assert main(["lesson"]) == 0
    out = capsys.readouterr().out
    for name in lessons.LESSONS:  # every lesson is there, with its line
        assert f"  {name} " in out
    assert main(["lesson", "backprop"]) == 2
    assert "unknown lesson 'backprop'; the lessons: vectorization, loop-ladder" in capsys.readouterr().err
    assert main(["lesson", "vectorization", "--backend", "numpy"]) == 2
    assert "without --backend" in capsys.readouterr().err


def test_lesson_plot_without_matplotlib_says_how_to_install_it(monkeypatch, capsys):
    import sys
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed: import raises
    assert main(["lesson", "symmetry", "--plot", "x.png"]) == 2
    assert "--plot needs matplotlib, which is not installed: pip install 'jitloops[plot]'" in capsys.readouterr().err
