"""Backend "cuda": the explicit loops as numba.cuda kernels on device arrays.

The raw kernels here have the names and signatures of ``kernels.loops``
(outputs first, then inputs) and take CUDA device arrays, so the model can keep
every parameter, gradient and cache on the GPU for a whole fit. ``CudaOps`` is
the checked op API on top: it takes NumPy arrays (copied in, results copied
back) or device arrays (results stay on the device).

Shape key as in ``kernels.loops``:
    m      number of examples (examples are columns)
    n      units of this layer, n[l]
    k      units of the previous layer, n[l-1]
    Z, A, dZ, dA       (n, m)
    A_prev, dA_prev    (k, m)
    W, dW              (n, k)
    b, db              (n, 1)
    AL, Y, dAL         (1, m)

Where the CPU loops give each ``prange`` iteration a tile of cells, here each
GPU thread owns ONE output cell: the grid is sized by ceiling division, and
every thread checks that its cell is inside the array before writing.

- The three matrix products (Z = W A_prev + b, dW = dZ A_prev^T / m,
  dA_prev = W^T dZ) stage TILE x TILE tiles of their two inputs in shared
  memory (``cuda.shared.array`` of the inputs' dtype): each input cell is read
  from global memory once per tile instead of once per product term.
  ``syncthreads`` before using a tile (every cell is loaded) and after (nobody
  still reads it when the next one is loaded).
- The reductions (db, the cost, dot) are block-level tree reductions in shared
  memory, not atomics: the result does not depend on the order in which the
  blocks run, so a float32 cost is reproducible run to run.
- The scalar activations and their derivatives are ``kernels.loops``'s own
  (``register_jitable`` functions compile for the GPU too): one source of the
  math for every backend.
- float32 kernels stay float32: the constants are made with the dtype's type.

Kernels are compiled per dtype on first use (``_compiled``): a shared-memory
tile needs its dtype at compile time, so each dtype gets its own kernels,
cached for the life of the process. The launch configuration (TILE, THREADS,
REDUCE_BLOCKS) is set once, in device.py.

Read in this order:

    device.py    the launch configuration (TILE, THREADS, REDUCE_BLOCKS, the
                 grid helpers, ``_launch``) and the ``@cuda.jit`` kernels of
                 each dtype (``_compiled``, ``block_sum``)
    launches.py  the raw op API: the names and signatures of ``kernels.loops``
                 (linear_forward ... dot, activation_backward_from_output,
                 all_finite, parameters_finite), launching device.py's kernels
    ops.py       ``CudaOps`` and its checks of device arrays (``is_device_array``)

This package is the raw-kernel namespace of backend "cuda" (``kernels.get_backend``
passes it to ``CudaOps``), so every raw kernel is re-exported here, with the
names the tests read (``SIMULATOR``, ``TILE``, ``_compiled``, ``_DeviceArray``,
and ``cuda``: numba.cuda itself).
"""

from numba import cuda

# _compiled and _DeviceArray are private, re-exported for the tests: test_cuda_ptx
# compiles _compiled's kernels; test_cuda_model patches _DeviceArray's copy
# methods on the class itself, so the patch reaches every module that copies.
from .device import NO_ACTIVATION, REDUCE_BLOCKS, SIMULATOR, THREADS, TILE, TILE_PAD, _compiled, block_sum
from .launches import (activation_backward, activation_backward_from_output, activation_forward, all_finite,
                       cross_entropy, cross_entropy_backward, dot, gradient_step, input_gradient,
                       linear_activation_backward, linear_activation_forward, linear_backward, linear_forward,
                       parameters_finite, weight_gradients)
from .ops import CudaOps, _DeviceArray, is_device_array

__all__ = [
    "linear_forward", "linear_activation_forward", "activation_forward", "activation_backward",
    "activation_backward_from_output", "weight_gradients", "input_gradient", "linear_backward",
    "linear_activation_backward", "cross_entropy", "cross_entropy_backward", "gradient_step", "dot",
    "all_finite", "parameters_finite",
    "CudaOps", "is_device_array", "SIMULATOR", "TILE", "TILE_PAD", "THREADS", "REDUCE_BLOCKS",
    "NO_ACTIVATION", "block_sum", "cuda",
]
