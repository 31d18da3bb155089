"""Every CUDA kernel compiles for a real GPU, without one: numba-cuda's
``compile_ptx`` types each kernel and lowers it to PTX for compute capability
8.0, for float32 and float64. The simulator (tests/cuda) runs the kernels as
Python and would not notice a kernel that the GPU compiler refuses (a shared
array whose shape is not a constant, an unsupported call) or a float32 kernel
promoted to float64; this test does.

It needs the CUDA compiler libraries (NVVM and NVRTC: ``pip install -e ".[cuda]"``
brings them) and is skipped without them, as in CI, which installs plain
numba-cuda. It runs without the simulator (the normal test run).
"""

import importlib.util
import types

import numpy as np
import pytest

from kernels import cuda_support

if importlib.util.find_spec("numba_cuda") is None:
    pytest.skip("numba-cuda is not installed", allow_module_level=True)
if cuda_support.simulator_enabled():
    pytest.skip("the simulator is on: compile_ptx needs the real CUDA target", allow_module_level=True)

numba = pytest.importorskip("numba")
from numba import cuda  # noqa: E402


def _signatures(nt):
    A2, A1 = nt[:, ::1], nt[::1]
    F1, i8 = numba.float64[::1], numba.int64
    return dict(forward=(A2, A2, A2, A2, A2, i8), weight_grad=(A2, A2, A2), input_grad=(A2, A2, A2),
                bias_grad=(A2, A2), cost_partials=(F1, A2, A2, nt), dot_partials=(A1, A1, A1),
                sum_partials=(A1, A1), activate=(A1, A1, i8), backprop=(A1, A1, A1, i8), backprop_from_output=(A1, A1, A1, A1, i8),
                cost_backward=(A2, A2, A2, nt), step=(A1, A1, A1, nt),
                flag_nonfinite=(numba.int32[::1], A1), clear_flag=(numba.int32[::1],))


@pytest.fixture(scope="module")
def compile_ptx():
    """cuda.compile_ptx, able to compile kernels that call device functions
    without a GPU: numba-cuda asks the current device for its compute
    capability there, so the test stands in a device of capability 8.0."""
    from numba.cuda import dispatcher
    if not hasattr(dispatcher, "get_current_device"):
        pytest.skip("this numba-cuda has no dispatcher.get_current_device to stand in for")
    mp = pytest.MonkeyPatch()
    mp.setattr(dispatcher, "get_current_device", lambda: types.SimpleNamespace(compute_capability=(8, 0)))

    def compile_one(func, sig):
        return cuda.compile_ptx(func, sig, cc=(8, 0))[0]

    try:
        compile_one(lambda x: None, (numba.float32[::1],))
    except Exception as exc:  # NVVM/NVRTC libraries not found
        mp.undo()
        pytest.skip(f"the CUDA compiler libraries are not installed ({type(exc).__name__}: {exc})")
    yield compile_one
    mp.undo()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernels_compile_to_ptx(compile_ptx, dtype):
    from kernels import cuda as kc
    kern = kc._compiled(dtype)
    nt = numba.from_dtype(np.dtype(dtype))
    signatures = _signatures(nt)
    assert set(signatures) == set(vars(kern)), "a kernel without a signature here is not checked"
    promoted = []
    for name, sig in signatures.items():
        ptx = compile_ptx(getattr(kern, name).py_func, sig)
        assert ".entry" in ptx, name
        if name in ("forward", "weight_grad", "input_grad", "bias_grad", "dot_partials", "sum_partials"):
            assert ".shared" in ptx, f"{name} uses no shared memory"
        # float32 kernels stay float32; the cost's float64 sum is deliberate
        if dtype == np.float32 and name != "cost_partials" and ".f64" in ptx:
            promoted.append(name)
    assert promoted == [], f"float32 kernels with float64 arithmetic: {promoted}"
