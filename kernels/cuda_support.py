"""Can backend "cuda" run here? Answered without compiling anything.

``unavailable_reason()`` is None when it can (a GPU with its driver, or Numba's
CUDA simulator), else one sentence saying what is missing and how to fix it:
numba-cuda not installed, no NVIDIA driver, no CUDA device, or a numba-cuda
that does not work with the installed NumPy. It imports
``numba.cuda`` only once numba-cuda is known to be installed, so importing
``kernels`` never needs numba-cuda or a GPU.
"""

import importlib.util

SIMULATOR_HINT = ("or run the kernels without a GPU in Numba's CUDA simulator: set "
                  "NUMBA_ENABLE_CUDASIM=1 before Python starts")
INSTALL_HINT = 'pip install -e ".[cuda]" (numba-cuda with the CUDA 12 libraries)'


def simulator_enabled():
    """True when NUMBA_ENABLE_CUDASIM=1 was set before numba was imported."""
    from numba.core import config
    return bool(config.ENABLE_CUDASIM)


def unavailable_reason():
    """None if backend "cuda" can run here, else what is missing and the fix."""
    if importlib.util.find_spec("numba_cuda") is None:
        return ("backend 'cuda' needs numba-cuda (the maintained CUDA target for Numba), which is "
                f"not installed: for an NVIDIA GPU run {INSTALL_HINT}; to use the simulator, "
                "pip install numba-cuda and set NUMBA_ENABLE_CUDASIM=1 before Python starts")
    if simulator_enabled():
        return None
    from numba import cuda
    from numba.cuda.cudadrv import driver as drv
    from numba.cuda.cudadrv.error import CudaSupportError

    try:
        drv.driver.ensure_initialized()
    except CudaSupportError:
        pass
    error = drv.driver.initialization_error
    if error is not None:
        text = " ".join(str(error).split())
        if "NO_DEVICE" in text or "(100)" in text:
            return (f"backend 'cuda' found the NVIDIA driver but no CUDA device ({text}): check "
                    f"nvidia-smi and CUDA_VISIBLE_DEVICES, {SIMULATOR_HINT}")
        if "cannot be found" in text or "not found" in text.lower():
            return (f"backend 'cuda' found no NVIDIA driver ({text}): install the NVIDIA driver on a "
                    f"machine with an NVIDIA GPU, then {INSTALL_HINT}; {SIMULATOR_HINT}")
        return f"backend 'cuda' could not initialize the CUDA driver ({text}); {SIMULATOR_HINT}"
    try:
        count = len(cuda.gpus)
    except CudaSupportError as exc:
        count, text = 0, " ".join(str(exc).split())
    else:
        text = "0 devices"
    if count == 0:
        return (f"backend 'cuda' found the NVIDIA driver but no CUDA device ({text}): check "
                f"nvidia-smi and CUDA_VISIBLE_DEVICES, {SIMULATOR_HINT}")
    if not cuda.is_available():
        return ("backend 'cuda' found a GPU but not the CUDA compiler libraries (NVVM) that "
                f"numba-cuda needs: {INSTALL_HINT}")
    return numpy_incompatibility()


def numpy_incompatibility():
    """None if numba-cuda's array support imports with this NumPy, else why not
    and the fix. A kernel's first compile imports it, so without this test the
    error would surface there, as an AttributeError from numba-cuda's own
    code (numba-cuda 0.30.4 registers np.row_stack, which NumPy 2.5 removed:
    seen on the first GPU this project ran on)."""
    import numpy as np
    try:
        importlib.import_module("numba.cuda.np.arrayobj")
    except AttributeError as exc:
        from importlib.metadata import version
        return (f"backend 'cuda': numba-cuda {version('numba-cuda')} does not work with NumPy "
                f"{np.__version__} ({exc}): pip install 'numpy<2.5', or a numba-cuda release made "
                "for this NumPy")
    return None
