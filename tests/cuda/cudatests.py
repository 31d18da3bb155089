"""What the CUDA tests share. Not named conftest.py on purpose: this directory
has no __init__.py, so a second conftest.py would be imported as the module
"conftest" too and shadow tests/conftest.py, whose helpers every test module
imports with ``from conftest import ...``. (No __init__.py either: it would make
this directory the package ``cuda`` and hide cuda-bindings' ``cuda`` package.)

Each test module starts with ``ops = cuda_ops()``, which skips the whole module,
with the reason, where backend "cuda" cannot run: in the normal test run on a
machine without a GPU. The README's test command runs this directory a second
time with NUMBA_ENABLE_CUDASIM=1 (set before numba is imported: it must be in
the environment of the pytest process), which runs every kernel in Numba's CUDA
simulator. On a machine with a GPU the first run tests the kernels on the GPU.

The simulator runs every GPU thread as a Python thread (~0.2 ms each), so the
shapes here are tiny; kernels.cuda launches TILE = 4 tiles and blocks of
THREADS = 8 threads under it, so tiny shapes still cross several tile and block
boundaries.
"""

import numpy as np
import pytest

import kernels

REASON = kernels.unavailable_reason("cuda")


def cuda_ops():
    """The "cuda" Ops, or skip the calling test module (call it at module level)."""
    if REASON is not None:
        pytest.skip(REASON, allow_module_level=True)
    return kernels.get_backend("cuda")


def tile():
    from kernels import cuda
    return cuda.TILE


def long_reduction():
    """A length whose reductions wrap every loop: each thread of each block of
    the first pass strides over several cells (more than REDUCE_BLOCKS full blocks)."""
    from kernels import cuda
    return cuda.REDUCE_BLOCKS * cuda.THREADS * 2 + 3


def shapes():
    """(n, k, m): one unit and one example; odd sizes inside one tile; sizes
    one past a tile and past two (partial tiles in every dimension)."""
    t = tile()
    return [(1, 1, 1), (3, 5, 7), (t + 1, 2 * t + 1, t + 3)]


def layer(rng, n, k, m, dtype):
    A_prev = rng.standard_normal((k, m)).astype(dtype)
    W = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(dtype)
    b = rng.standard_normal((n, 1)).astype(dtype)
    return A_prev, W, b


def is_device(x):
    from kernels.cuda import is_device_array
    return is_device_array(x)
