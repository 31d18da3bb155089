"""Numba's on-disk cache stays true to the source (kernels.cpu, SOURCE_DIGEST).

Numba checks only the file of the function it compiled; the kernels inline
kernels/approx.py's tanh, and the training loop inlines the kernels. Each
test works on a copy of the packages in a temporary folder (its own
__pycache__), runs fresh processes, and reads Numba's cache statistics.
"""

import json
import pathlib
import shutil
import subprocess
import sys
import textwrap

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
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=root, capture_output=True, text=True, timeout=600,
                         env={**__import__("os").environ, "PYTHONPATH": env_path})
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
