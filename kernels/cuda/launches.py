"""The raw op API of backend "cuda": launches of ``kernels.cuda.device``'s kernels.

Same names and signatures as ``kernels.loops`` (outputs first, then inputs), on
CUDA device arrays: the model trains through these (``ops.kernels``), and
``CudaOps`` calls them once its checks have passed. The full reductions (cost,
dot) and ``parameters_finite`` reuse device scratch buffers kept here.
"""

import math
import threading

import numpy as np
from numba import cuda

from .device import NO_ACTIVATION, REDUCE_BLOCKS, THREADS, _blocks, _compiled, _grid_1d, _grid_2d, _launch

# ---------------------------------------------------------- launches (the raw op API)
# Same names and argument order as kernels.loops; every array is a C-contiguous
# device array of one float dtype, already checked (by CudaOps or the model).


def _flat(x):
    return x.reshape(x.size)


def linear_forward(Z, A_prev, W, b):
    """Z = W A_prev + b. Z (n, m) out; A_prev (k, m); W (n, k); b (n, 1)."""
    if Z.size:
        grid, block = _grid_2d(*Z.shape)
        _launch(_compiled(Z.dtype).forward, grid, block, Z, Z, A_prev, W, b, NO_ACTIVATION)


def linear_activation_forward(Z, A, A_prev, W, b, act):
    """Z = W A_prev + b and A = g(Z), fused: each thread activates its own cell."""
    if Z.size:
        grid, block = _grid_2d(*Z.shape)
        _launch(_compiled(Z.dtype).forward, grid, block, Z, A, A_prev, W, b, act)


def activation_forward(A, Z, act):
    """A = g(Z) elementwise. A, Z (n, m)."""
    if Z.size:
        grid, block = _grid_1d(Z.size)
        _launch(_compiled(Z.dtype).activate, grid, block, _flat(A), _flat(Z), act)


def activation_backward(dZ, dA, Z, act):
    """dZ = dA * g'(Z) elementwise. dZ, dA, Z (n, m)."""
    if Z.size:
        grid, block = _grid_1d(Z.size)
        _launch(_compiled(Z.dtype).backprop, grid, block, _flat(dZ), _flat(dA), _flat(Z), act)


def activation_backward_from_output(dZ, dA, Z, A, act):
    """dZ = dA * g'(Z), g' read from A = g(Z) for tanh and sigmoid: the hook
    model.program looks for, so "cuda" trains with the CPU backends' arithmetic.
    dZ, dA, Z, A (n, m)."""
    if Z.size:
        grid, block = _grid_1d(Z.size)
        _launch(_compiled(Z.dtype).backprop_from_output, grid, block,
                _flat(dZ), _flat(dA), _flat(Z), _flat(A), act)


def weight_gradients(dW, db, dZ, A_prev):
    """dW = (1/m) dZ A_prev^T (tiled, one thread per cell) and db = (1/m) sum_j dZ
    (one block per unit, tree reduction). dW (n, k), db (n, 1) out; dZ (n, m); A_prev (k, m)."""
    kern = _compiled(dW.dtype)
    if dW.size:
        grid, block = _grid_2d(*dW.shape)
        _launch(kern.weight_grad, grid, block, dW, dZ, A_prev)
    if db.size:
        _launch(kern.bias_grad, db.shape[0], THREADS, db, dZ)


def input_gradient(dA_prev, dZ, W):
    """dA_prev = W^T dZ (tiled, one thread per cell). dA_prev (k, m) out; dZ (n, m); W (n, k)."""
    if dA_prev.size:
        grid, block = _grid_2d(*dA_prev.shape)
        _launch(_compiled(dA_prev.dtype).input_grad, grid, block, dA_prev, dZ, W)


def linear_backward(dA_prev, dW, db, dZ, A_prev, W):
    """dW, db and dA_prev from dZ."""
    weight_gradients(dW, db, dZ, A_prev)
    input_gradient(dA_prev, dZ, W)


def linear_activation_backward(dA_prev, dW, db, dZ, dA, Z, A_prev, W, act):
    """dZ = dA * g'(Z) (written to dZ), then linear_backward."""
    activation_backward(dZ, dA, Z, act)
    weight_gradients(dW, db, dZ, A_prev)
    input_gradient(dA_prev, dZ, W)


_scratch_lock = threading.Lock()
_scratch = {}


def _scratch_arrays(dtype, blocks):
    """Reusable device buffers of a full reduction: partials (blocks,) and total (1,)."""
    key = (np.dtype(dtype), blocks)
    with _scratch_lock:
        if key not in _scratch:
            _scratch[key] = (cuda.device_array(blocks, dtype=dtype), cuda.device_array(1, dtype=dtype))
        return _scratch[key]


def _reduce_blocks(size):
    return max(1, min(_blocks(size, THREADS), REDUCE_BLOCKS))


def cross_entropy(AL, Y, eps, exact=True):
    """J = -(1/m) sum_j [y log a + (1 - y) log(1 - a)] as a Python float
    (the device's log; ``exact`` is the loop kernels' switch).
    Two passes (block partial sums, then one block sums those), in float64;
    the one device-to-host copy is the 8-byte total. AL, Y (1, m)."""
    m = AL.shape[1]
    blocks = _reduce_blocks(m)
    partials, total = _scratch_arrays(np.float64, blocks)
    _launch(_compiled(AL.dtype).cost_partials, blocks, THREADS, partials, AL, Y, AL.dtype.type(eps))
    _launch(_compiled(np.float64).sum_partials, 1, THREADS, total, partials)
    return -float(total.copy_to_host()[0]) / m


def cross_entropy_backward(dAL, AL, Y, eps):
    """dAL = -(y / a - (1 - y) / (1 - a)), a clipped to [eps, 1 - eps]. (1, m) each."""
    grid, block = _grid_1d(AL.shape[1])
    _launch(_compiled(AL.dtype).cost_backward, grid, block, dAL, AL, Y, AL.dtype.type(eps))


def gradient_step(out, param, grad, learning_rate):
    """out = param - learning_rate * grad elementwise (out may be param)."""
    if out.size:
        grid, block = _grid_1d(out.size)
        lr = out.dtype.type(learning_rate)
        _launch(_compiled(out.dtype).step, grid, block, _flat(out), _flat(param), _flat(grad), lr)


def dot(a, b):
    """sum_i a[i] b[i] of two 1-D device arrays, as the dtype's scalar (two-pass
    tree reduction in the dtype, as BLAS's sdot/ddot accumulate)."""
    dtype = a.dtype
    if a.size == 0:
        return dtype.type(0.0)
    blocks = _reduce_blocks(a.size)
    partials, total = _scratch_arrays(dtype, blocks)
    kern = _compiled(dtype)
    _launch(kern.dot_partials, blocks, THREADS, partials, a, b)
    _launch(kern.sum_partials, 1, THREADS, total, partials)
    return total.copy_to_host()[0]


def all_finite(x, zeros):
    """True if no cell of the device array x is NaN or +-inf: dot(x, 0) is 0
    for finite x and NaN as soon as one cell is NaN or inf (inf * 0 = NaN);
    one reduction and one 8-byte copy. zeros (>= x.size,) of x's dtype."""
    return math.isfinite(dot(_flat(x), zeros[:x.size]))


def parameters_finite(W, b, zeros):
    """True if every cell of every W[l] and b[l] is finite: one flag kernel per
    array writing into one device flag, then ONE 4-byte copy to the host (where
    model.training.parameters_finite would read one dot product per array).
    The model's hook for its once-per-chunk check; ``zeros`` is unused.
    W, b lists of device arrays of one dtype."""
    arrays = [x for x in list(W) + list(b) if x.size]
    if not arrays:
        return True
    kern = _compiled(arrays[0].dtype)
    flag = _scratch_flag()
    _launch(kern.clear_flag, 1, 1, flag)
    for x in arrays:
        grid, block = _grid_1d(x.size)
        _launch(kern.flag_nonfinite, grid, block, flag, _flat(x))
    return int(flag.copy_to_host()[0]) == 0


def _scratch_flag():
    """The reusable device flag (1,) int32 of parameters_finite."""
    with _scratch_lock:
        if "flag" not in _scratch:
            _scratch["flag"] = cuda.device_array(1, dtype=np.int32)
        return _scratch["flag"]
