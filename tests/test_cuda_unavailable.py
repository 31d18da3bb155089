"""Where backend "cuda" cannot run (no GPU, no simulator: the normal test run
on a machine without a GPU), asking for it says why and how to fix it, and
nothing else needs numba-cuda or a GPU."""

import subprocess
import sys

import numpy as np
import pytest

import kernels
from kernels import cuda_support


def _cuda_runs_here():
    return kernels.unavailable_reason("cuda") is None


@pytest.mark.skipif(_cuda_runs_here(), reason="backend 'cuda' can run here (a GPU or the simulator)")
def test_get_backend_says_why():
    reason = kernels.unavailable_reason("cuda")
    assert reason.startswith("backend 'cuda' ")
    with pytest.raises(kernels.BackendUnavailableError) as exc:
        kernels.get_backend("cuda")
    assert str(exc.value) == reason
    assert isinstance(exc.value, RuntimeError)
    # what is missing...
    assert any(what in reason for what in ("numba-cuda", "no NVIDIA driver", "no CUDA device", "CUDA driver"))
    # ...and the fix: install for a GPU, or the simulator
    assert "NUMBA_ENABLE_CUDASIM=1" in reason
    assert "cuda" not in kernels.available_backends()
    assert {"python", "numpy", "numba", "parallel"} <= set(kernels.available_backends())


def test_numba_cuda_not_installed(monkeypatch):
    real_find_spec = cuda_support.importlib.util.find_spec
    monkeypatch.setattr(cuda_support.importlib.util, "find_spec",
                        lambda name, *a: None if name == "numba_cuda" else real_find_spec(name, *a))
    reason = cuda_support.unavailable_reason()
    assert "needs numba-cuda" in reason and "not installed" in reason
    assert 'pip install -e ".[cuda]"' in reason and "NUMBA_ENABLE_CUDASIM=1" in reason


def test_importing_kernels_and_model_needs_no_numba_cuda():
    """Importing the packages (and listing backends) loads neither numba-cuda's
    CUDA target nor any GPU library."""
    code = ("import sys, kernels, model; kernels.BACKENDS; "
            "print(sorted(m for m in sys.modules if m.startswith(('numba.cuda', 'numba_cuda', 'cuda.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_a_numba_cuda_that_does_not_import_with_this_numpy(monkeypatch):
    """numba-cuda 0.30.4 with NumPy 2.5 (seen on an H200): its array support,
    which a kernel's first compile imports, fails on np.row_stack. The backend
    says so, with the fix, instead of an AttributeError at the first launch."""
    real_import = cuda_support.importlib.import_module

    def numpy_2_5(name, *args):
        if name == "numba.cuda.np.arrayobj":
            raise AttributeError("module 'numpy' has no attribute 'row_stack'")
        return real_import(name, *args)

    monkeypatch.setattr(cuda_support.importlib, "import_module", numpy_2_5)
    reason = cuda_support.numpy_incompatibility()
    assert reason.startswith("backend 'cuda': numba-cuda ")
    assert "row_stack" in reason and "pip install 'numpy<2.5'" in reason


def test_numba_cuda_imports_with_this_numpy_or_says_why():
    reason = cuda_support.numpy_incompatibility()
    if hasattr(np, "row_stack"):  # NumPy before 2.5: numba-cuda's array support imports
        assert reason is None
    else:  # NumPy 2.5+: a numba-cuda made for it imports, 0.30.4 says why not
        assert reason is None or "pip install 'numpy<2.5'" in reason
