"""The updates (gradient descent and the course's optimizers), the dot
product, the finiteness test, and the mini-batch gather: loops over flat
views or rows."""

import math

import numpy as np
from numba import prange

from numba.extending import register_jitable

from ..options import (ADAM, BLOCK, DIVIDE_STEP, DOT_BLOCK, HELPER_OPTIONS, MOMENTUM, PARALLEL_ELEMENTS, RMSPROP,
                       STREAM_GATHER_BYTES)
from ..quotient import EPSILON_MAX64, QUOTIENT_MIN64, quotient
from ..vector_step import SKIPPED, vector_step
from .memory import store_fence, stream_cells
from .views import borrowed, flat

# Whether prange runs on threads here: kernels.cpu sets it per variant (False
# in the "numba" one, whose elementwise updates then make one pass over the
# whole array, not one call and five views a block of BLOCK cells).
THREADED = True


def gradient_step(out, param, grad, learning_rate):
    """out = param - learning_rate * grad, elementwise (out may be param).
    out, param, grad of one shape."""
    o = flat(out)
    p = flat(param)
    g = flat(grad)
    lr = o.dtype.type(learning_rate)  # keep a float32 update in float32
    if o.shape[0] < PARALLEL_ELEMENTS or not THREADED:
        for j in range(o.shape[0]):
            o[j] = p[j] - lr * g[j]
        return
    nblocks = (o.shape[0] + BLOCK - 1) // BLOCK
    for t in prange(nblocks):
        j0 = t * BLOCK
        j1 = min(j0 + BLOCK, o.shape[0])
        ob = o[j0:j1]
        pb = p[j0:j1]
        gb = g[j0:j1]
        for j in range(ob.shape[0]):
            ob[j] = pb[j] - lr * gb[j]


def dot(a, b):
    """s = sum_i a[i] b[i] for 1-D a, b of one length; returns the dtype's scalar.

    The accumulator has the inputs' dtype (as BLAS's sdot/ddot). A long one
    is summed in blocks of DOT_BLOCK, each its own prange iteration's partial
    sum, and the partial sums are added in order: the same bits however the
    threads share the blocks (a prange reduction's partial sums follow the
    threads' shares, which differ from call to call).
    """
    s = a.dtype.type(0.0)
    n = a.shape[0]
    if n < PARALLEL_ELEMENTS:
        for i in range(n):
            s += a[i] * b[i]
        return s
    nblocks = (n + DOT_BLOCK - 1) // DOT_BLOCK
    partial = np.empty(nblocks, dtype=a.dtype)
    for t in prange(nblocks):
        j0 = t * DOT_BLOCK
        ab = a[j0:min(j0 + DOT_BLOCK, n)]  # views indexed from 0: no wraparound test stops SIMD
        bb = b[j0:min(j0 + DOT_BLOCK, n)]
        p = a.dtype.type(0.0)
        for i in range(ab.shape[0]):
            p += ab[i] * bb[i]
        partial[t] = p
    for t in range(nblocks):
        s += partial[t]
    return s


def all_finite(x, zeros):
    """True if no element of ``x`` is NaN or +-inf: a serial loop over blocks
    of BLOCK cells that stops after the first block with one (compiled, this
    costs far less than a parallel launch; kernels.cpu compiles it serially
    in both variants). Within a block, |c| < inf (false for NaN and +-inf
    alone) is and-ed over the cells: a loop the compiler vectorizes, where a
    test per cell that returns at once would not be. ``zeros`` (>= x.size,)
    is unused here; another backend may test with one reduction against it
    (kernels.cuda: dot(x, zeros) is NaN as soon as one x is not finite).

    The training loop tests every new parameter with it (divergence)."""
    return _finite(flat(x))


@register_jitable(**HELPER_OPTIONS)
def _finite(cells):
    """all_finite of a 1-D array (see there)."""
    n = cells.shape[0]
    big = cells.dtype.type(math.inf)
    for j0 in range(0, n, BLOCK):
        block = cells[j0:min(j0 + BLOCK, n)]
        ok = True
        for j in range(block.shape[0]):
            ok &= abs(block[j]) < big
        if not ok:
            return False
    return True


@register_jitable(**HELPER_OPTIONS)
def _optimizer_block(o, v, s, p, g, lr, kind, beta1, beta2, epsilon, fma_quotient):
    """optimizer_step on one block of cells (1-D views). ``fma_quotient``:
    RMSprop's and Adam's float64 quotient without division, by the vector
    step on AVX-512 (kernels.vector_step) or kernels.quotient's Newton
    steps (the same value: see optimizer_step), else by division. A tile
    (kernels.loops.TILE_KERNELS). Returns whether every new cell of o is
    finite: the training loops' divergence test, and-ed cell by cell as the
    cells are written (a pass of its own over the parameters cost about a
    tenth of the step's time).

    Each cell's inputs are read before any of its outputs is written: the
    arrays often lie at one offset in their 4 KiB pages, and a read after a
    write to another array at the same page offset waits for the write (the
    CPU compares the addresses' low 12 bits): up to 2.5 times the loop's
    time (docs/performance-log.md, "Adam reads before it writes")."""
    one = o.dtype.type(1.0)
    big = o.dtype.type(math.inf)
    if fma_quotient:  # Adam's or RMSprop's float64 step on AVX-512 (kernels.vector_step), where it applies
        finite = vector_step(o, v, s, p, g, lr, kind, beta1, beta2, epsilon)
        if finite != SKIPPED:
            return finite == 1
    ok = True  # |cell| < inf and-ed over the cells, as all_finite does (a reduction LLVM vectorizes)
    if kind == MOMENTUM:
        for j in range(o.shape[0]):
            vj, gj, pj = v[j], g[j], p[j]
            vj = beta1 * vj + (one - beta1) * gj
            v[j] = vj
            oj = pj - lr * vj
            o[j] = oj
            ok &= abs(oj) < big
    elif kind == RMSPROP and fma_quotient:
        for j in range(o.shape[0]):
            sj, gj, pj = s[j], g[j], p[j]
            sj = beta2 * sj + (one - beta2) * gj * gj
            s[j] = sj
            oj = pj - quotient(lr * gj, math.sqrt(sj) + epsilon)
            o[j] = oj
            ok &= abs(oj) < big
    elif kind == RMSPROP:
        for j in range(o.shape[0]):
            sj, gj, pj = s[j], g[j], p[j]
            sj = beta2 * sj + (one - beta2) * gj * gj
            s[j] = sj
            oj = pj - lr * gj / (math.sqrt(sj) + epsilon)
            o[j] = oj
            ok &= abs(oj) < big
    elif kind == ADAM and fma_quotient:  # lr, epsilon: the bias-corrected ones (see optimizer_step)
        for j in range(o.shape[0]):
            vj, sj, gj, pj = v[j], s[j], g[j], p[j]
            vj = beta1 * vj + (one - beta1) * gj
            sj = beta2 * sj + (one - beta2) * gj * gj
            v[j] = vj
            s[j] = sj
            oj = pj - quotient(lr * vj, math.sqrt(sj) + epsilon)
            o[j] = oj
            ok &= abs(oj) < big
    elif kind == ADAM:
        for j in range(o.shape[0]):
            vj, sj, gj, pj = v[j], s[j], g[j], p[j]
            vj = beta1 * vj + (one - beta1) * gj
            sj = beta2 * sj + (one - beta2) * gj * gj
            v[j] = vj
            s[j] = sj
            oj = pj - lr * vj / (math.sqrt(sj) + epsilon)
            o[j] = oj
            ok &= abs(oj) < big
    else:  # GD
        for j in range(o.shape[0]):
            oj = p[j] - lr * g[j]
            o[j] = oj
            ok &= abs(oj) < big
    return ok


def optimizer_step(out, v, s, param, grad, learning_rate, kind, beta1, beta2, epsilon, t):
    """One step of the course's optimizers, fused, elementwise (out may be param):

        GD        out = param - lr grad
        MOMENTUM  v = beta1 v + (1 - beta1) grad;  out = param - lr v
        RMSPROP   s = beta2 s + (1 - beta2) grad^2;  out = param - lr grad / (sqrt(s) + epsilon)
        ADAM      v, s as above;  out = param - lr (v / (1 - beta1^t)) / (sqrt(s / (1 - beta2^t)) + epsilon)

    Adam is computed as out = param - lr' v / (sqrt(s) + epsilon'), with
    lr' = lr sqrt(c2) / c1 and epsilon' = epsilon sqrt(c2) (c1 = 1 - beta1^t,
    c2 = 1 - beta2^t): the same value (divide the fraction's top and bottom
    by sqrt(c2)) with one division and one square root a cell instead of
    three divisions, the form of Kingma and Ba's paper (section 2); the two
    differ by rounding only.

    RMSprop's and Adam's quotient (lr g or lr' v) / (sqrt(s) + epsilon) in
    float64, the correctly rounded quotient every way: on AVX-512 from the
    CPU's estimate (kernels.vector_step), on a CPU whose divider is quick
    (options.DIVIDE_STEP: Zen 2 onwards without AVX-512) by division, else
    by kernels.quotient's Newton steps on the FMA units; the first and the
    last wherever the divisor is in their domain: epsilon (>= the smallest
    divisor) from QUOTIENT_MIN64 to 1e300 (sqrt(s) is at most 1.4e154).

    v and s (the moments) are updated in place; t >= 1 counts Adam's steps.
    out, v, s, param, grad of one shape (v, s unused by the kinds that need none).
    Returns whether every cell of out is finite (tested as it is written:
    the training loops' divergence test, all_finite's, without a pass of
    its own)."""
    o, vv, ss, p, g = flat(out), flat(v), flat(s), flat(param), flat(grad)
    dt = o.dtype.type
    lr, b1, b2, e64 = dt(learning_rate), dt(beta1), dt(beta2), float(epsilon)
    if kind == ADAM:  # bias corrections folded into lr and epsilon, in float64 first
        r2 = math.sqrt(1.0 - beta2 ** t)
        lr = dt(learning_rate * r2 / (1.0 - beta1 ** t))
        e64 = epsilon * r2
    e = dt(e64)
    # the quotient's domain, tested in float64 (a float32 step divides either way:
    # kernels.quotient), so that no float32 value is widened
    fma_quotient = QUOTIENT_MIN64 <= e64 <= EPSILON_MAX64 and not DIVIDE_STEP
    if o.shape[0] < PARALLEL_ELEMENTS or not THREADED:
        return _optimizer_block(o, vv, ss, p, g, lr, kind, b1, b2, e, fma_quotient)
    nblocks = (o.shape[0] + BLOCK - 1) // BLOCK
    o, vv, ss, p, g = borrowed(o), borrowed(vv), borrowed(ss), borrowed(p), borrowed(g)  # views count no references
    bad = 0  # blocks with a cell not finite: a sum, prange's reduction
    for t_ in prange(nblocks):
        j0 = t_ * BLOCK
        j1 = min(j0 + BLOCK, o.shape[0])
        if not _optimizer_block(o[j0:j1], vv[j0:j1], ss[j0:j1], p[j0:j1], g[j0:j1], lr, kind, b1, b2, e,
                                fma_quotient):
            bad += 1
    return bad == 0


@register_jitable(**HELPER_OPTIONS)
def _gather_row(o, x, index):
    for c in range(o.shape[0]):
        o[c] = x[index[c]]


def gather_columns(out, X, index):
    """out[:, c] = X[:, index[c]]: a mini-batch's examples, copied contiguous
    (each row of out is its own prange iteration's).
    out (n, b) out; X (n, m); index int64 (b,) of columns of X."""
    if out.size < PARALLEL_ELEMENTS:
        for r in range(out.shape[0]):
            _gather_row(out[r], X[r], index)
        return
    for r in prange(out.shape[0]):
        _gather_row(out[r], X[r], index)


@register_jitable(**HELPER_OPTIONS)
def _gather_batches_row(cells, x, index, size, n, i, line):
    """Row i's cells of every batch; whether the row x is finite. The test
    goes first: its pass along the row streams it into the caches (the
    prefetchers follow a pass in order), so the gather's reads in the
    epoch's order find their lines there instead of waiting on memory one
    line at a time where X exceeds the last cache (docs/performance-log.md).
    Where ``line`` has cells (batches of STREAM_GATHER_BYTES or more), each
    batch's cells are taken into it (size,) and written from there with
    streaming stores (kernels.loops.memory: the batches are read long
    after), fenced before the row returns; else written in place, so that
    the steps find their batch in the caches. Borrowed views
    (views.borrowed): a view per batch would count references on arrays
    every member shares."""
    cells, x, index, line = borrowed(cells), borrowed(x), borrowed(index), borrowed(line)
    ok = _finite(x)  # vectorized; a test inside the gather loop slowed it
    m = x.shape[0]
    stream = line.shape[0] > 0
    for j0 in range(0, m, size):
        mb = min(size, m - j0)
        d = j0 * n + i * mb
        if stream:
            _gather_row(line[:mb], x, index[j0:j0 + mb])
            stream_cells(cells, d, line, mb)
        else:
            _gather_row(cells[d:d + mb], x, index[j0:j0 + mb])
    if stream:
        store_fence()
    return ok


def gather_batches(out, X, index, size, r0, r1):
    """Rows r0:r1 of an epoch's batches, batch after batch: the columns
    index[j0:j0 + b] of X (b = min(size, m - j0), j0 = 0, size, 2 size, ...)
    as a C-ordered (n, b) block at cell j0 n of ``out`` (batch_of(out, j0, b)
    is that block). Row by row of X (each row of X its own prange
    iteration's): a row of X is read from the caches as its cells are
    taken in the epoch's order, where a batch's own gather would read a
    cache line of X for each cell.

    Returns whether rows r0:r1 of X are finite (all_finite's test; all the
    cells it copies where index is a permutation, as an epoch's is): fit's
    test of a large X for NaN and infinity, each row tested while it is in
    the caches from its gather (a test of its own reads all of X from
    memory again, a large part of a short fit's fixed cost).
    Batches of STREAM_GATHER_BYTES or more are written with streaming
    stores (past the caches, read long after, ordinary stores would evict
    what the steps keep there), smaller ones with ordinary stores (they
    stay in the caches for the steps: docs/performance-log.md, "The epoch's
    batches where the steps find them").
    out (n, m) out, its cells in that order; X (n, m); index int64 (m,) of columns of X."""
    n = X.shape[0]
    cells = flat(out)
    # the streaming stores' staging row, or none: ordinary stores in place
    staged = size if cells.shape[0] * cells.itemsize >= STREAM_GATHER_BYTES else 0
    if (r1 - r0) * X.shape[1] < PARALLEL_ELEMENTS:
        ok = True
        line = np.empty(staged, X.dtype)
        for i in range(r0, r1):
            ok &= _gather_batches_row(cells, X[i], index, size, n, i, line)
        return bool(ok)  # a NumPy bool interpreted
    bad = 0
    for t in prange(r1 - r0):  # a sum: prange's reductions are arithmetic
        line = np.empty(staged, X.dtype)  # the iteration's own
        bad += 0 if _gather_batches_row(cells, X[r0 + t], index, size, n, r0 + t, line) else 1
    return bad == 0


@register_jitable(**HELPER_OPTIONS)
def batch_of(batches, j0, mb):
    """The batch of ``mb`` examples from column j0 in ``batches`` (n, m), laid
    out by gather_batches: a C-contiguous (n, mb) view."""
    n = batches.shape[0]
    return flat(batches)[j0 * n:(j0 + mb) * n].reshape((n, mb))
