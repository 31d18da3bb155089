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
REDUCE_BLOCKS) is set once, below.
"""

import functools
import math
import threading
import types
import warnings

import numpy as np
from numba import cuda

from . import checks
from .backend import Ops
from .cuda_support import simulator_enabled
from .loops import SIGMOID, TANH, activation_scalar, derivative_scalar

SIMULATOR = simulator_enabled()

if SIMULATOR:
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray as _DeviceArray
else:
    from numba.cuda.cudadrv.devicearray import DeviceNDArray as _DeviceArray

# ---------------------------------------------------------------- launch configuration
# The one place that sets how kernels are launched.
#   TILE           2-D kernels run TILE x TILE thread blocks; the matrix products
#                  stage TILE x TILE tiles of their inputs in shared memory.
#   THREADS        threads per block of the 1-D (elementwise) kernels and of the
#                  reductions; a power of two (the tree reduction halves it).
#   REDUCE_BLOCKS  most blocks of the first pass of a full reduction (cost, dot).
# 16 x 16 = 256 threads per block is a safe occupancy on every GPU since Kepler.
# The simulator runs every thread as a Python thread, so there the blocks are
# small: the tests then cross many tile and block boundaries with tiny arrays.
if SIMULATOR:
    TILE, THREADS, REDUCE_BLOCKS = 4, 8, 4
else:
    TILE, THREADS, REDUCE_BLOCKS = 16, 256, 256

TILE_PAD = TILE + 1  # a tile read along its columns gets one extra column: no bank conflicts
NO_ACTIVATION = -1  # the act code of a forward kernel that writes Z only


def _blocks(size, per_block):
    """Blocks needed to give ``size`` cells one thread each (ceiling division)."""
    return (size + per_block - 1) // per_block


def _grid_2d(rows, cols):
    """(grid, block) of a TILE x TILE launch over a (rows, cols) output.
    x runs along the columns: neighbouring threads touch neighbouring cells
    of a C-contiguous row (coalesced loads and stores)."""
    return (_blocks(cols, TILE), _blocks(rows, TILE)), (TILE, TILE)


def _grid_1d(size):
    return _blocks(size, THREADS), THREADS


def _launch(kernel, grid, block, *args):
    """kernel[grid, block](*args). Small grids are normal here (a layer of 4
    units; the one-block second pass of a reduction), so numba-cuda's warning
    about grids under 128 blocks is silenced for the launches of this module."""
    blocks = grid if isinstance(grid, int) else grid[0] * grid[1]
    if blocks >= 128:
        kernel[grid, block](*args)
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Grid size .* under-utilization")
        kernel[grid, block](*args)


# ----------------------------------------------------------------------- kernels
@cuda.jit(device=True)
def block_sum(s):
    """Tree reduction of the shared array s (THREADS cells, any dtype) into
    s[0]: each step halves the active threads, syncthreads between steps.
    Every thread of the block must call it (it synchronizes)."""
    t = cuda.threadIdx.x
    step = THREADS // 2
    while step > 0:
        if t < step:
            s[t] += s[t + step]
        cuda.syncthreads()
        step //= 2


@functools.lru_cache(maxsize=None)
def _compiled(dtype):
    """The kernels of one dtype (np.float32 or np.float64), compiled lazily by
    numba.cuda at their first launch and kept for the life of the process."""
    T = np.dtype(dtype).type  # typed constants: T(0.0) keeps float32 kernels in float32

    @cuda.jit
    def forward(Z, A, A_prev, W, b, act):
        """Z[i, j] = b[i] + sum_p W[i, p] A_prev[p, j]; A[i, j] = g(Z[i, j]) unless
        act is NO_ACTIVATION. Thread (i, j) owns cell (i, j).
        Z, A (n, m); A_prev (k, m); W (n, k); b (n, 1)."""
        sW = cuda.shared.array((TILE, TILE), T)  # W[i0:i0+TILE, p0:p0+TILE]
        sA = cuda.shared.array((TILE, TILE), T)  # A_prev[p0:p0+TILE, j0:j0+TILE]
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        j = cuda.blockIdx.x * TILE + tx
        i = cuda.blockIdx.y * TILE + ty
        n = Z.shape[0]
        m = Z.shape[1]
        k = W.shape[1]
        zero = T(0.0)
        acc = zero
        for p0 in range(0, k, TILE):
            # every thread loads one cell of each tile; cells past the edges are 0
            sW[ty, tx] = W[i, p0 + tx] if i < n and p0 + tx < k else zero
            sA[ty, tx] = A_prev[p0 + ty, j] if p0 + ty < k and j < m else zero
            cuda.syncthreads()  # the tiles are complete
            for q in range(TILE):
                acc += sW[ty, q] * sA[q, tx]
            cuda.syncthreads()  # nobody reads them any more: the next load may start
        if i < n and j < m:
            z = acc + b[i, 0]
            Z[i, j] = z
            if act != NO_ACTIVATION:
                A[i, j] = activation_scalar(z, act)

    @cuda.jit
    def weight_grad(dW, dZ, A_prev):
        """dW[i, p] = (1/m) sum_j dZ[i, j] A_prev[p, j]. Thread (i, p) owns dW[i, p].
        dW (n, k); dZ (n, m); A_prev (k, m)."""
        sD = cuda.shared.array((TILE, TILE), T)      # dZ[i0:i0+TILE, j0:j0+TILE]
        sP = cuda.shared.array((TILE, TILE_PAD), T)  # A_prev[p0:p0+TILE, j0:j0+TILE]; +1 column:
        tx = cuda.threadIdx.x                        # sP[tx, q] then hits TILE different banks
        ty = cuda.threadIdx.y
        p = cuda.blockIdx.x * TILE + tx
        i = cuda.blockIdx.y * TILE + ty
        p_load = cuda.blockIdx.x * TILE + ty  # the A_prev row this thread loads (coalesced over j)
        n = dZ.shape[0]
        m = dZ.shape[1]
        k = A_prev.shape[0]
        zero = T(0.0)
        acc = zero
        for j0 in range(0, m, TILE):
            sD[ty, tx] = dZ[i, j0 + tx] if i < n and j0 + tx < m else zero
            sP[ty, tx] = A_prev[p_load, j0 + tx] if p_load < k and j0 + tx < m else zero
            cuda.syncthreads()
            for q in range(TILE):
                acc += sD[ty, q] * sP[tx, q]
            cuda.syncthreads()
        if i < n and p < k:
            dW[i, p] = acc * (T(1.0) / T(m))

    @cuda.jit
    def input_grad(dA_prev, dZ, W):
        """dA_prev[p, j] = sum_i W[i, p] dZ[i, j]. Thread (p, j) owns dA_prev[p, j].
        dA_prev (k, m); dZ (n, m); W (n, k)."""
        sW = cuda.shared.array((TILE, TILE_PAD), T)  # W[i0:i0+TILE, p0:p0+TILE], padded
        sD = cuda.shared.array((TILE, TILE), T)      # dZ[i0:i0+TILE, j0:j0+TILE]
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        j = cuda.blockIdx.x * TILE + tx
        p = cuda.blockIdx.y * TILE + ty
        p_load = cuda.blockIdx.y * TILE + tx  # the W column this thread loads (coalesced over p)
        n = W.shape[0]
        k = W.shape[1]
        m = dZ.shape[1]
        zero = T(0.0)
        acc = zero
        for i0 in range(0, n, TILE):
            sW[ty, tx] = W[i0 + ty, p_load] if i0 + ty < n and p_load < k else zero
            sD[ty, tx] = dZ[i0 + ty, j] if i0 + ty < n and j < m else zero
            cuda.syncthreads()
            for q in range(TILE):
                acc += sW[q, ty] * sD[q, tx]
            cuda.syncthreads()
        if p < k and j < m:
            dA_prev[p, j] = acc

    @cuda.jit
    def bias_grad(db, dZ):
        """db[i] = (1/m) sum_j dZ[i, j]: block i owns db[i]; its threads stride
        over the row, then a tree reduction in shared memory (no atomics).
        db (n, 1); dZ (n, m); launched with n blocks of THREADS threads."""
        s = cuda.shared.array(THREADS, T)
        i = cuda.blockIdx.x
        t = cuda.threadIdx.x
        m = dZ.shape[1]
        acc = T(0.0)
        for j in range(t, m, THREADS):
            acc += dZ[i, j]
        s[t] = acc
        cuda.syncthreads()
        block_sum(s)
        if t == 0:
            db[i, 0] = s[0] * (T(1.0) / T(m))

    @cuda.jit
    def cost_partials(partials, AL, Y, eps):
        """partials[block] = sum over the block's share of
        y log a + (1 - y) log(1 - a), a clipped to [eps, 1 - eps], each term
        computed in the dtype, summed in float64 (as kernels.loops).
        partials (blocks,) float64; AL, Y (1, m); grid-stride loop."""
        s = cuda.shared.array(THREADS, np.float64)
        t = cuda.threadIdx.x
        m = AL.shape[1]
        one = T(1.0)
        lo = eps  # the dtype's machine epsilon, passed as the dtype's scalar
        hi = one - lo
        acc = 0.0
        for j in range(cuda.grid(1), m, cuda.gridsize(1)):
            a = AL[0, j]
            a = lo if a < lo else (hi if a > hi else a)
            y = Y[0, j]
            acc += np.float64(y * math.log(a) + (one - y) * math.log(one - a))
        s[t] = acc
        cuda.syncthreads()
        block_sum(s)
        if t == 0:
            partials[cuda.blockIdx.x] = s[0]

    @cuda.jit
    def dot_partials(partials, a, b):
        """partials[block] = the block's share of sum_i a[i] b[i], in the
        inputs' dtype (as BLAS sdot/ddot). partials (blocks,); a, b (size,)."""
        s = cuda.shared.array(THREADS, T)
        t = cuda.threadIdx.x
        acc = T(0.0)
        for j in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
            acc += a[j] * b[j]
        s[t] = acc
        cuda.syncthreads()
        block_sum(s)
        if t == 0:
            partials[cuda.blockIdx.x] = s[0]

    @cuda.jit
    def sum_partials(total, partials):
        """total[0] = sum(partials): one block, second pass of a full reduction.
        total (1,), partials (blocks,), both of this kernel set's dtype."""
        s = cuda.shared.array(THREADS, T)
        t = cuda.threadIdx.x
        acc = T(0.0)
        for j in range(t, partials.shape[0], THREADS):
            acc += partials[j]
        s[t] = acc
        cuda.syncthreads()
        block_sum(s)
        if t == 0:
            total[0] = s[0]

    @cuda.jit
    def activate(A, Z, act):
        """A[c] = g(Z[c]) over flat views; thread c owns cell c."""
        c = cuda.grid(1)
        if c < Z.shape[0]:
            A[c] = activation_scalar(Z[c], act)

    @cuda.jit
    def backprop(dZ, dA, Z, act):
        """dZ[c] = dA[c] g'(Z[c]) over flat views (g'(0) = 1 for relu/leaky relu)."""
        c = cuda.grid(1)
        if c < Z.shape[0]:
            dZ[c] = dA[c] * derivative_scalar(Z[c], act)

    @cuda.jit
    def backprop_from_output(dZ, dA, Z, A, act):
        """dZ[c] = dA[c] g'(Z[c]) with g' read from the layer's output A where it
        can: tanh' = 1 - A^2, sigmoid' = A (1 - A) (as model.training does)."""
        c = cuda.grid(1)
        if c < Z.shape[0]:
            one = T(1.0)
            if act == TANH:
                dZ[c] = dA[c] * (one - A[c] * A[c])
            elif act == SIGMOID:
                dZ[c] = dA[c] * (A[c] * (one - A[c]))
            else:
                dZ[c] = dA[c] * derivative_scalar(Z[c], act)

    @cuda.jit
    def cost_backward(dAL, AL, Y, eps):
        """dAL[j] = (1 - y) / (1 - a) - y / a, a clipped to [eps, 1 - eps]."""
        j = cuda.grid(1)
        if j < AL.shape[1]:
            one = T(1.0)
            lo = eps
            hi = one - lo
            a = AL[0, j]
            a = lo if a < lo else (hi if a > hi else a)
            y = Y[0, j]
            dAL[0, j] = (one - y) / (one - a) - y / a

    @cuda.jit
    def step(out, param, grad, lr):
        """out[c] = param[c] - lr grad[c] over flat views (out may be param);
        lr arrives as the dtype's scalar, so float32 stays float32."""
        c = cuda.grid(1)
        if c < out.shape[0]:
            out[c] = param[c] - lr * grad[c]

    @cuda.jit
    def flag_nonfinite(flag, x):
        """flag[0] = 1 if any x[c] is NaN or +-inf (over a flat view). Every
        thread that finds one writes the same 1, so the race is harmless: no
        atomics. flag (1,) int32, cleared by clear_flag before the first launch."""
        c = cuda.grid(1)
        if c < x.shape[0] and (math.isnan(x[c]) or math.isinf(x[c])):
            flag[0] = 1

    @cuda.jit
    def clear_flag(flag):
        """flag[0] = 0; one thread."""
        if cuda.grid(1) == 0:
            flag[0] = 0

    return types.SimpleNamespace(
        forward=forward, weight_grad=weight_grad, input_grad=input_grad, bias_grad=bias_grad,
        cost_partials=cost_partials, dot_partials=dot_partials, sum_partials=sum_partials,
        activate=activate, backprop=backprop, backprop_from_output=backprop_from_output,
        cost_backward=cost_backward, step=step, flag_nonfinite=flag_nonfinite, clear_flag=clear_flag)


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


def cross_entropy(AL, Y, eps):
    """J = -(1/m) sum_j [y log a + (1 - y) log(1 - a)] as a Python float.
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


# ------------------------------------------------------------------ the op API
def is_device_array(x):
    """True for a numba.cuda device array (or, on a GPU, any object with
    ``__cuda_array_interface__``: CuPy, PyTorch CUDA tensors)."""
    if isinstance(x, _DeviceArray):
        return True
    return not SIMULATOR and cuda.is_cuda_array(x)


def _as_device(x):
    return x if isinstance(x, _DeviceArray) else cuda.as_cuda_array(x)


def _address_range(d):
    """[start, end) in device memory of a C-contiguous device array."""
    if SIMULATOR:
        start = d._ary.__array_interface__["data"][0]
    else:
        start = d.__cuda_array_interface__["data"][0]
    return start, start + d.size * d.dtype.itemsize


def _no_device_overlap(out, name, inputs, elementwise=False):
    """checks.no_overlap for device arrays: ValueError if ``out`` shares memory
    with an input, unless the op is elementwise and it is that very array."""
    o0, o1 = _address_range(out)
    for in_name, x in inputs.items():
        if x is None or not isinstance(x, _DeviceArray):
            continue
        x0, x1 = _address_range(x)
        if o0 < x1 and x0 < o1:
            if elementwise and o0 == x0 and out.shape == x.shape:
                continue
            raise ValueError(f"{name} overlaps the input {in_name}; this op cannot write over its input. "
                             f"Pass a separate output array")


def _check_device_input(d, name, ndim, shape_text):
    """The checks of checks.float_array for a device array, with its messages."""
    if d.ndim != ndim or d.dtype not in checks.FLOAT_DTYPES:
        # a NumPy stand-in with d's shape and dtype (no memory behind it) gets the
        # very message of the other backends; float_array raises before reading it
        checks.float_array(np.lib.stride_tricks.as_strided(np.zeros(1, d.dtype), d.shape, (0,) * d.ndim),
                           name, ndim, shape_text)
    if not d.is_c_contiguous():
        raise ValueError(f"{name} is a strided view of a device array; the CUDA kernels need "
                         f"C-contiguous arrays: pass a contiguous copy of it")


def _check_device_out(d, name, shape, dtype):
    """checks.out_array for a device array."""
    shape = tuple(shape)
    if d.shape != shape:
        raise ValueError(f"{name} has shape {d.shape} but the result has shape {shape}; pass an array of shape {shape}")
    if d.dtype != dtype:
        raise TypeError(f"{name} has dtype {d.dtype} but the result has dtype {dtype}; pass an array of dtype {dtype}")
    if not d.is_c_contiguous():
        raise ValueError(f"{name} must be C-contiguous (results are written in place); "
                         f"pass cuda.device_array({shape}, dtype=np.{dtype})")


class _Call:
    """Bookkeeping of one op call: were device arrays given, which NumPy arrays
    stand behind the device copies, which device results go back where."""

    def __init__(self):
        self.on_device = False  # a device array was passed: allocated results stay there
        self.host_input = {}    # id(device copy) -> the NumPy input it was copied from
        self.given = {}         # id(device array the kernel wrote) -> the array the caller passed
        self.copy_back = []     # (device result, NumPy array to fill)

    def finish(self, result):
        for d, host in self.copy_back:
            d.copy_to_host(host)
        if isinstance(result, tuple):
            return tuple(self._back(x) for x in result)
        return self._back(result)

    def _back(self, x):
        if not isinstance(x, _DeviceArray):
            return x
        if id(x) in self.given:
            return self.given[id(x)]
        return x if self.on_device else x.copy_to_host()


def _op(method):
    """A public op of ``Ops`` run on the device: NumPy in, NumPy out; device in, device out."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        call = self._local.call = _Call()
        try:
            return call.finish(method(self, *args, **kwargs))
        finally:
            self._local.call = None
    return run


class CudaOps(Ops):
    """The op API on the GPU (see ``kernels.backend.Ops`` for each op).

    Every op takes NumPy arrays or CUDA device arrays (numba's, or any object
    with ``__cuda_array_interface__`` on a real GPU):

    - NumPy inputs are checked exactly as on the other backends, copied to the
      device, and the results the op allocates come back as NumPy arrays;
    - if any input is a device array, allocated results stay on the device
      (device arrays), and nothing is copied back;
    - an ``out=`` array is filled and returned, NumPy or device alike.

    ``cross_entropy`` returns a float and ``dot`` a scalar in either case
    (their results are copied back: 8 bytes). The model trains through
    ``ops.kernels`` (this module's raw kernels) on arrays made by
    ``ops.empty`` / ``ops.asarray``, so a fit copies data in once and out once.
    """

    syncs_are_costly = True  # the model checks the parameters once per chunk (see Ops)

    def __init__(self, name, kernels, description=""):
        if SIMULATOR:
            description += " (Numba's CUDA simulator: every GPU thread runs in Python)"
        super().__init__(name, kernels, description)
        self._local = threading.local()
        self._local.call = None

    # array hooks
    def empty(self, shape, dtype):
        """An uninitialized device array."""
        return cuda.device_array(shape, dtype=np.dtype(dtype))

    def asarray(self, x):
        """``x`` as a C-contiguous device array (copied in from NumPy; a device
        array is returned as it is)."""
        if is_device_array(x):
            return _as_device(x)
        return cuda.to_device(np.ascontiguousarray(x))

    def to_host(self, x):
        """A NumPy array holding ``x``'s values (copied back from the device)."""
        if is_device_array(x):
            return _as_device(x).copy_to_host()
        return np.asarray(x)

    def synchronize(self):
        """Wait for every queued kernel (launches are asynchronous)."""
        cuda.synchronize()

    def copy(self, dst, src):
        """dst[...] = src for two device arrays, device to device (no host round trip)."""
        _as_device(dst).copy_to_device(_as_device(src))

    # checks and allocation, device-aware
    def _call(self):
        call = getattr(self._local, "call", None)
        return call if call is not None else _Call()

    def _array(self, x, name, ndim, shape_text):
        call = self._call()
        if is_device_array(x):
            d = _as_device(x)
            _check_device_input(d, name, ndim, shape_text)
            call.on_device = True
            return d
        d = cuda.to_device(checks.float_array(x, name, ndim, shape_text))
        call.host_input[id(d)] = x
        return d

    def _out(self, out, name, shape, dtype, inputs, elementwise=False):
        call = self._call()
        if out is None:
            return self._empty(shape, dtype)
        if is_device_array(out):
            d = _as_device(out)
            _check_device_out(d, name, shape, dtype)
            _no_device_overlap(d, name, inputs, elementwise)
            call.on_device = True
            call.given[id(d)] = out
            return d
        # a NumPy out: the checks of every backend (overlap with the NumPy inputs
        # it was given), then a device buffer copied into it when the op is done
        checks.out_array(out, name, shape, dtype)
        host_inputs = {k: call.host_input.get(id(x)) for k, x in inputs.items()}
        checks.no_overlap(out, name, {k: x for k, x in host_inputs.items() if isinstance(x, np.ndarray)},
                          elementwise)
        d = self._empty(shape, dtype)
        call.given[id(d)] = out
        call.copy_back.append((d, out))
        return d

    def _outs(self, outs, names, shapes, dtype, inputs):
        call = self._call()
        arrays = [self._out(o, n, s, dtype, inputs) for o, n, s in zip(outs, names, shapes)]
        given = [call.given.get(id(a)) for a in arrays]
        for i in range(len(arrays)):  # the outputs must not overlap each other either
            for j in range(i + 1, len(arrays)):
                if isinstance(given[i], np.ndarray) and isinstance(given[j], np.ndarray):
                    checks.no_overlap(given[i], names[i], {names[j]: given[j]})
                elif given[i] is not None and given[j] is not None:
                    _no_device_overlap(arrays[i], names[i], {names[j]: arrays[j]})
        return arrays

    # the ops: Ops's, run on the device
    linear_forward = _op(Ops.linear_forward)
    activation_forward = _op(Ops.activation_forward)
    linear_activation_forward = _op(Ops.linear_activation_forward)
    activation_backward = _op(Ops.activation_backward)
    linear_backward = _op(Ops.linear_backward)
    linear_activation_backward = _op(Ops.linear_activation_backward)
    cross_entropy_backward = _op(Ops.cross_entropy_backward)

    def _scalar_out(self, out, value, dtype):
        """Write the scalar result into ``out`` (shape (), NumPy or device)."""
        if is_device_array(out):
            d = _as_device(out)
            _check_device_out(d, "out", (), dtype)
            d.copy_to_device(np.asarray(value, dtype=dtype))
            self._call().on_device = True
            return out
        checks.out_array(out, "out", (), dtype)
        out[()] = value
        return out

    cross_entropy = _op(Ops.cross_entropy)
    dot = _op(Ops.dot)

    @_op
    def gradient_step(self, param, grad, learning_rate, *, out=None):
        """param -= learning_rate * grad, in place (param a writeable, C-contiguous
        NumPy array or a device array); with ``out=`` the result goes there and
        param is left alone. Returns the updated array."""
        lr = checks.learning_rate(learning_rate)
        call = self._call()
        if out is None:
            if isinstance(param, np.ndarray):
                checks.out_array(param, "param", param.shape, param.dtype)
            elif not is_device_array(param):
                raise TypeError(
                    f"gradient_step updates param in place, so param must be a NumPy array or a "
                    f"CUDA device array, got {type(param).__name__}; or pass out= to receive the result")
            if param.dtype not in checks.FLOAT_DTYPES:
                raise TypeError(f"param has dtype {param.dtype}; expected float32 or float64")
        grad_d = self._array(grad, "grad", np.ndim(grad), "(same as param)")
        param_d = self._array(param, "param", np.ndim(param), "(same as grad)")
        checks.same_dtype("gradient_step", dict(param=param_d, grad=grad_d))
        checks.shape_rule(param_d.shape == grad_d.shape,
                          f"param has shape {param_d.shape} but grad has shape {grad_d.shape}; they must match")
        if out is not None:
            target = self._out(out, "out", param_d.shape, param_d.dtype,
                               dict(param=param_d, grad=grad_d), elementwise=True)
        elif isinstance(param, np.ndarray):  # in place: update the device copy, copy it back into param
            checks.no_overlap(param, "param", dict(grad=grad) if isinstance(grad, np.ndarray) else {},
                              elementwise=True)
            target = param_d
            call.given[id(param_d)] = param
            call.copy_back.append((param_d, param))
        else:
            _no_device_overlap(param_d, "param", dict(grad=grad_d), elementwise=True)
            target = param_d
            call.given[id(param_d)] = param
        self.kernels.gradient_step(target, param_d, grad_d, lr)
        return target
