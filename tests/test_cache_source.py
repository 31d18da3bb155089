"""Numba's on-disk cache stays true to the source (kernels.cpu, SOURCE_DIGEST),
and what it loads computes the same bits as what a process compiles.

Numba checks only the file of the function it compiled; the kernels inline
kernels/approx.py's tanh, and the training loop inlines the kernels. Each
test works on a copy of the packages in a temporary folder (its own
__pycache__), runs fresh processes, and reads Numba's cache statistics.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import kernels
import model

# One kernel that inlines approx.tanh_approx, and one training-loop function
# that inlines a kernel (parameters_finite calls all_finite): small, quick to compile.
SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import kernels
    from kernels import cpu
    from model.program import get_program
    ops = kernels.get_backend("numba")
    Z = np.linspace(-3, 3, 12).reshape(3, 4)
    A = ops.activation_forward(Z, "tanh")
    p = get_program(ops)
    p.parameters_finite(p.list([np.ones((2, 2))]), p.list([np.ones((2, 1))]), np.zeros(4))
    k = cpu.numba_kernels.activation_forward
    print(json.dumps(dict(kernel_hits=sum(k.stats.cache_hits.values()),
                          kernel_misses=sum(k.stats.cache_misses.values()),
                          program_hits=sum(p.parameters_finite.stats.cache_hits.values()),
                          program_misses=sum(p.parameters_finite.stats.cache_misses.values()),
                          digest=cpu.SOURCE_DIGEST, a=float(A[0, 0]),
                          kernels_file=kernels.__file__)))
""")


@pytest.fixture
def copy_of_packages(tmp_path):
    for package in (kernels, model):
        src = pathlib.Path(package.__file__).parent
        shutil.copytree(src, tmp_path / src.name, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _run(root):
    env_path = str(root)
    # The cache files beside the copied source (the test reads them there):
    # a NUMBA_CACHE_DIR of the caller's would put them elsewhere.
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=root, capture_output=True, text=True, timeout=600,
                         env={**env, "PYTHONPATH": env_path})
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["kernels_file"].startswith(env_path), "the copy was not the package imported"
    return result


def test_an_edit_to_an_inlined_module_recompiles_what_inlines_it(copy_of_packages):
    root = copy_of_packages
    first = _run(root)
    assert first["kernel_misses"] == 1 and first["program_misses"] == 1
    second = _run(root)  # unchanged source: both come from the cache
    assert (second["kernel_hits"], second["kernel_misses"]) == (1, 0)
    assert (second["program_hits"], second["program_misses"]) == (1, 0)

    # One line appended to approx.py (a file neither function is defined in)
    with open(root / "kernels" / "approx.py", "a") as f:
        f.write("\n# an edit\n")
    third = _run(root)
    assert third["digest"] != first["digest"]
    assert (third["kernel_hits"], third["kernel_misses"]) == (0, 1), "stale kernel loaded from the cache"
    assert (third["program_hits"], third["program_misses"]) == (0, 1), "stale training loop loaded from the cache"
    assert third["a"] == first["a"]

    # The old digest's cache files are gone; the new ones are there.
    names = [p.name for p in (root / "kernels").rglob("__pycache__/*")]
    assert not [n for n in names if first["digest"] in n], "stale cache files kept"
    assert [n for n in names if third["digest"] in n]


# A process that imports the packages, sees approx.py edited (an upgrade, an
# editor) when sys.argv[1] == "edit", and only then compiles a training
# program, one that calls a product kernel through its address (forward).
EDITED_MIDWAY = textwrap.dedent("""
    import json, pathlib, sys
    import numpy as np
    import kernels
    from kernels import cpu
    from model.program import get_program
    if sys.argv[1] == "edit":
        with open(pathlib.Path(kernels.__file__).parent / "approx.py", "a") as f:
            f.write("\\n# an edit while this process runs\\n")
    ops = kernels.get_backend("numba")
    p = get_program(ops)
    X = np.ones((20, 30))
    W, b = [np.ones((40, 20)) * 0.01, np.ones((1, 40)) * 0.01], [np.zeros((40, 1)), np.zeros((1, 1))]
    Z, A = [np.empty((40, 30)), np.empty((1, 30))], [X, np.empty((40, 30)), np.empty((1, 30))]
    p.forward(p.list(Z), p.list(A), p.list(W), p.list(b), p.codes([1, 0]), 0)
    print(json.dumps(dict(a=float(A[2][0, 0]), digest=cpu.SOURCE_DIGEST)))
""")


def test_a_program_compiled_after_an_edit_is_named_for_the_source_it_ran(copy_of_packages):
    """A training program's digest is the source its process imported (read
    at import): a process whose files change before it compiles one must
    not name it after the new files, or the next process would load it and
    look for kernels of the old digest, which it never compiles
    (LookupError: 'no kernel ... in this process'). The next process
    compiles its own."""
    root = copy_of_packages
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}

    def run(mode):
        out = subprocess.run([sys.executable, "-c", EDITED_MIDWAY, mode], cwd=root, capture_output=True,
                             text=True, timeout=600, env={**env, "PYTHONPATH": str(root)})
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    first = run("edit")
    later = run("no edit")
    assert later["digest"] != first["digest"]  # the edit reached the second process, not the first
    assert later["a"] == first["a"]


def test_digest_covers_every_source_file_and_only_source(tmp_path):
    from kernels import cpu
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "sub" / "b.py").write_text("y = 2\n")
    d0 = cpu.source_digest(pkg)
    (pkg / "notes.txt").write_text("not source")
    assert cpu.source_digest(pkg) == d0
    (pkg / "sub" / "b.py").write_text("y = 3\n")
    d1 = cpu.source_digest(pkg)
    assert d1 != d0
    (pkg / "sub" / "b.py").rename(pkg / "sub" / "c.py")  # same bytes, another module
    assert cpu.source_digest(pkg) not in (d0, d1)


# Two processes add different signatures of one cached function at once:
# each waits for the other before it saves (so both are inside Numba's
# load-index, pick-a-name, write-index window together) and writes its index
# half a second late. With ``locked`` 0 the child undoes kernels.cpu's lock.
RACE = textwrap.dedent("""
    import pathlib, sys, time
    import numpy as np
    import kernels  # locks index saves
    from numba.core import caching
    me, other, dtype, locked = sys.argv[1:5]
    cls = caching.IndexDataCacheFile
    if locked == "0":
        cls.save = cls.save.original
    inner = cls.save
    def save(self, key, data):
        pathlib.Path(me + ".ready").touch()
        t0 = time.time()
        while not pathlib.Path(other + ".ready").exists() and time.time() - t0 < 60:
            time.sleep(0.01)
        return inner(self, key, data)
    cls.save = save
    write_index = cls._save_index
    def late(self, overloads):
        time.sleep(0.5)
        write_index(self, overloads)
    cls._save_index = late
    sys.path.insert(0, ".")
    import target
    assert target.twice(np.ones(3, dtype))[0] == 2
""")


def _race(root, locked):
    import os
    import pickle
    (root / "target.py").write_text("from numba import njit\n\n\n@njit(cache=True)\n"
                                    "def twice(x):\n    return x * 2\n")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(root / "cache")}
    procs = [subprocess.Popen([sys.executable, "-c", RACE, me, other, dtype, locked], cwd=root, env=env,
                              stderr=subprocess.PIPE, text=True)
             for me, other, dtype in (("a", "b", "float64"), ("b", "a", "float32"))]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
    (index,) = (root / "cache").rglob("*twice*.nbi")
    with open(index, "rb") as f:
        pickle.load(f)  # Numba's version
        _, overloads = pickle.loads(f.read())
    return overloads


def test_two_processes_adding_signatures_at_once_keep_both(tmp_path):
    """kernels.cpu locks Numba's index saves: both signatures are in the
    index, each with a data file of its own. Without the lock the same race
    keeps one (the test's control: the race is real)."""
    (tmp_path / "locked").mkdir()
    (tmp_path / "unlocked").mkdir()
    locked = _race(tmp_path / "locked", "1")
    assert len(locked) == 2 and len(set(locked.values())) == 2, locked
    unlocked = _race(tmp_path / "unlocked", "0")
    assert len(unlocked) == 1, unlocked


def test_pruning_keeps_other_families_sharing_the_folder(tmp_path):
    """model/__pycache__ holds the training loop's functions (digest of the
    kernels and training.py) and the team's (the same and team.py): a team
    compiled after a training loop must not delete the training loop's
    cache entries as stale (each then recompiled the other's, every run),
    only its own family's of other digests."""
    import types

    from kernels import cpu
    names = ["training.fit_epochs__numba_1111111111-215.py311.nbi",
             "training.fit_epochs__numba_1111111111-215.py311.1.nbc",
             "training.fit_epochs__numbap5_1111111111-215.py311.nbi",
             "team.team_member__team_2222222222-114.py311.nbi",      # the team, this source
             "team.team_member__teamp5_3333333333-114.py311.nbi",    # the team, an older source
             "team.team_member__team_3333333333-114.py311.1.nbc",
             "notes.txt"]
    for n in names:
        (tmp_path / n).write_text("")
    team_member = types.SimpleNamespace(_cache=types.SimpleNamespace(_cache_path=str(tmp_path)),
                                        py_func=types.SimpleNamespace(__name__="team_member__teamp5_2222222222"))
    cpu._prune_stale(team_member, "2222222222")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for n in names if "3333333333" not in n)


# Fresh and cached machine code compute the same bits. Numba links a callee's
# code into its caller, and a process that compiles the caller ran the callee's
# own compilation instead of the copy saved with the caller (kernels.loops:
# the optimizers' block is a tile, called by its address). Adam, RMSprop and
# momentum steps of both variants, and a mini-batch Adam fit, in two processes
# on one empty cache folder: the first compiles everything, the second loads.
FRESH_AND_CACHED = textwrap.dedent("""
    import json, sys
    import numpy as np
    import kernels, model
    from kernels.options import ADAM, MOMENTUM, RMSPROP
    out, hits, misses = [], 0, 0
    for backend in ("numba", "parallel"):
        step = kernels.get_backend(backend).kernels.optimizer_step
        for dt in (np.float64, np.float32):
            p, g = np.random.default_rng(0).standard_normal((2, 3000)).astype(dt)
            for kind in (MOMENTUM, RMSPROP, ADAM):
                v, s, o = g * dt(0.1), g * g * dt(0.01), np.empty_like(p)
                for t in (1, 2, 3):
                    step(o, v, s, p, g, 0.01, kind, 0.9, 0.999, 1e-8, t)
                    out += [o.copy(), v.copy(), s.copy()]
        hits += sum(step.stats.cache_hits.values())
        misses += sum(step.stats.cache_misses.values())
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((8, 200)), rng.integers(0, 3, (1, 200))
    net = model.NeuralNetwork([8, 16, 3], output="softmax", backend="numba", seed=1)
    net.fit(X, Y, epochs=3, batch_size=32, optimizer="adam", learning_rate=0.01, cost_every=1)
    out += list(net.parameters.values()) + [np.asarray(net.costs_)]
    fit = net.program.fit_epochs
    hits += sum(fit.stats.cache_hits.values())
    misses += sum(fit.stats.cache_misses.values())
    np.savez(sys.argv[1], *out)
    print(json.dumps(dict(hits=hits, misses=misses)))
""")


def test_fresh_and_cached_code_compute_the_same_bits(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    results = []
    for run in ("fresh", "cached"):
        out = subprocess.run([sys.executable, "-c", FRESH_AND_CACHED, str(tmp_path / f"{run}.npz")],
                             capture_output=True, text=True, timeout=600, env=env)
        assert out.returncode == 0, out.stderr[-3000:]
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    fresh, cached = results
    # compiled: the numba and parallel optimizer steps, two dtypes each, and the fit's loop
    assert fresh["hits"] == 0 and fresh["misses"] == 5, fresh
    assert cached["misses"] == 0 and cached["hits"] == fresh["misses"], cached  # loaded, all of it
    a, b = np.load(tmp_path / "fresh.npz"), np.load(tmp_path / "cached.npz")
    assert a.files == b.files and len(a.files) > 100
    differ = [(name, int(np.sum(a[name] != b[name])), a[name].size) for name in a.files
              if not np.array_equal(a[name], b[name])]
    assert not differ, f"(array, cells that differ, cells) between fresh and cached code: {differ}"
