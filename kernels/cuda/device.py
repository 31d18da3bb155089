"""The launch configuration of backend "cuda" and its kernels, compiled per dtype.

``TILE``, ``THREADS`` and ``REDUCE_BLOCKS`` are set once, here; ``_grid_2d``,
``_grid_1d`` and ``_launch`` size and launch every kernel of the package.
``_compiled(dtype)`` holds the ``@cuda.jit`` kernels of one dtype (a
shared-memory tile needs its dtype at compile time); ``block_sum`` is the tree
reduction they share. The design of the kernels is in ``kernels.cuda``'s docstring.
"""

import functools
import math
import types
import warnings

import numpy as np
from numba import cuda

from ..cuda_support import simulator_enabled
from ..loops import SIGMOID, TANH, activation_scalar, derivative_scalar

SIMULATOR = simulator_enabled()

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
    about grids under 128 blocks is silenced for the launches of this package."""
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
        """dZ[c] = dA[c] g'(Z[c]) over flat views (g'(0) = 0 for relu, 0.01 for leaky relu)."""
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
