"""Activations and their derivatives: scalars (the C math library, the
reference) and whole rows (the vectorizable approximations of kernels.approx
by default), and the elementwise ops built from the rows.

The derivative at exactly 0, where it is undefined, is the course code's
(its relu_backward sets dZ[Z <= 0] = 0): relu'(0) = 0 and leaky relu'(0) =
0.01. It matters: with zero biases, an example that switches off every unit
of a layer gives the next layer z = 0 exactly.
NaN propagates through every function, so divergence is never hidden.

Shapes: A, Z, dA, dZ (n, m); rows are 1-D slices of them.
"""

import math

from numba import prange
from numba.extending import register_jitable

from ..approx import sigmoid_approx, tanh_approx
from ..options import (BLOCK, EXACT, HELPER_OPTIONS, LEAKY_RELU, LEAKY_SLOPE, LINEAR, PARALLEL_ELEMENTS, RELU,
                       SCALAR_OPTIONS, SIGMOID, TANH)
from .views import flat


@register_jitable(**SCALAR_OPTIONS)
def sigmoid_scalar(z):
    """sigma(z) = 1 / (1 + e^-z), never overflowing: exp only sees -|z|."""
    one = type(z)(1.0)
    if z >= 0:
        return one / (one + math.exp(-z))
    e = math.exp(z)  # z < 0 (or NaN): e in [0, 1), no overflow
    return e / (one + e)


@register_jitable(**SCALAR_OPTIONS)
def activation_scalar(z, act):
    """g(z) for the activation code ``act`` (the EXACT bit is ignored: always libm)."""
    zero = type(z)(0.0)
    act = act & ~EXACT
    if act == SIGMOID:
        return sigmoid_scalar(z)
    if act == TANH:
        return math.tanh(z)
    if act == RELU:
        return zero if z < zero else z  # NaN is not < 0: NaN passes through
    if act == LEAKY_RELU:
        return type(z)(LEAKY_SLOPE) * z if z < zero else z
    return z


@register_jitable(**SCALAR_OPTIONS)
def derivative_scalar(z, act):
    """g'(z) for the activation code ``act`` (1 at z = 0 for relu/leaky relu;
    the EXACT bit is ignored: always libm)."""
    one = type(z)(1.0)
    act = act & ~EXACT
    if act == SIGMOID:
        s = sigmoid_scalar(z)
        return s * (one - s)
    if act == TANH:
        t = math.tanh(z)
        return one - t * t
    if act == RELU:
        return type(z)(0.0) if z <= 0 else one
    if act == LEAKY_RELU:
        return type(z)(LEAKY_SLOPE) if z <= 0 else one
    return one


@register_jitable(**HELPER_OPTIONS)
def activate_row(a, z, act):
    """a[j] = g(z[j]) over a 1-D row. The branch on ``act`` sits outside the
    loop so each loop body is one activation (vectorizable where g is: all of
    them, but the EXACT ones that call the C math library)."""
    zero = a.dtype.type(0.0)
    if act == TANH:
        for j in range(z.shape[0]):
            a[j] = tanh_approx(z[j])
    elif act == SIGMOID:
        for j in range(z.shape[0]):
            a[j] = sigmoid_approx(z[j])
    elif act == RELU or act == RELU | EXACT:
        for j in range(z.shape[0]):
            a[j] = zero if z[j] < zero else z[j]
    elif act == LEAKY_RELU or act == LEAKY_RELU | EXACT:
        slope = a.dtype.type(LEAKY_SLOPE)
        for j in range(z.shape[0]):
            a[j] = slope * z[j] if z[j] < zero else z[j]
    elif act == TANH | EXACT:
        for j in range(z.shape[0]):
            a[j] = math.tanh(z[j])
    elif act == SIGMOID | EXACT:
        for j in range(z.shape[0]):
            a[j] = sigmoid_scalar(z[j])
    else:
        for j in range(z.shape[0]):
            a[j] = z[j]


@register_jitable(**HELPER_OPTIONS)
def backprop_row(dz, da, z, act):
    """dz[j] = da[j] * g'(z[j]) over a 1-D row."""
    one = dz.dtype.type(1.0)
    zero = dz.dtype.type(0.0)
    base = act & ~EXACT
    if act == TANH:
        for j in range(z.shape[0]):
            t = tanh_approx(z[j])
            dz[j] = da[j] * (one - t * t)
    elif act == SIGMOID:
        for j in range(z.shape[0]):
            s = sigmoid_approx(z[j])
            dz[j] = da[j] * (s * (one - s))
    elif base == RELU or base == LEAKY_RELU:  # g'(z) = 0 (relu) or 0.01 up to 0, 1 above
        slope = dz.dtype.type(LEAKY_SLOPE if base == LEAKY_RELU else 0.0)
        for j in range(z.shape[0]):
            dz[j] = da[j] * (slope if z[j] <= zero else one)  # a NaN in da stays NaN, as in numpy
    elif base == LINEAR:
        for j in range(z.shape[0]):
            dz[j] = da[j]
    else:  # TANH | EXACT, SIGMOID | EXACT
        for j in range(z.shape[0]):
            dz[j] = da[j] * derivative_scalar(z[j], act)



def activation_forward(A, Z, act):
    """A = g(Z) elementwise. A, Z (n, m), A out."""
    a = flat(A)  # C-contiguous: a flat view, blocks of BLOCK cells
    z = flat(Z)
    if z.shape[0] < PARALLEL_ELEMENTS:  # too small for threads to pay
        activate_row(a, z, act)
        return
    nblocks = (z.shape[0] + BLOCK - 1) // BLOCK
    for t in prange(nblocks):
        j0 = t * BLOCK
        j1 = min(j0 + BLOCK, z.shape[0])
        activate_row(a[j0:j1], z[j0:j1], act)



def activation_backward(dZ, dA, Z, act):
    """dZ = dA * g'(Z) elementwise. dZ, dA, Z (n, m), dZ out."""
    dz = flat(dZ)
    da = flat(dA)
    z = flat(Z)
    if z.shape[0] < PARALLEL_ELEMENTS:
        backprop_row(dz, da, z, act)
        return
    nblocks = (z.shape[0] + BLOCK - 1) // BLOCK
    for t in prange(nblocks):
        j0 = t * BLOCK
        j1 = min(j0 + BLOCK, z.shape[0])
        backprop_row(dz[j0:j1], da[j0:j1], z[j0:j1], act)


@register_jitable(**HELPER_OPTIONS)
def _backprop_from_output_row(dz, da, z, a, act):
    """dz[j] = da[j] * g'(z[j]) over 1-D rows, g' read from a = g(z) for tanh
    and sigmoid. Rows indexed from 0, so each loop vectorizes."""
    one = dz.dtype.type(1.0)
    base = act & ~EXACT  # A is g(Z) however g was computed
    if base == TANH:
        for j in range(dz.shape[0]):
            dz[j] = da[j] * (one - a[j] * a[j])
    elif base == SIGMOID:
        for j in range(dz.shape[0]):
            dz[j] = da[j] * (a[j] * (one - a[j]))
    else:
        backprop_row(dz, da, z, act)


def activation_backward_from_output(dZ, dA, Z, A, act):
    """dZ = dA * g'(Z), reading g' from the layer's output A where it can:
    tanh' = 1 - A^2 and sigmoid' = A (1 - A) reuse the forward pass's A instead
    of evaluating tanh/exp again (the same values: A is g(Z)). relu and leaky
    relu read Z as well (one comparison either way).

    dZ, dA, Z, A (n, m); dZ out. Parallel over blocks of cells, each owned by
    one iteration; below PARALLEL_ELEMENTS cells one serial pass (as the
    kernels do: starting threads would cost more than they save).
    """
    dz = flat(dZ)
    da = flat(dA)
    z = flat(Z)
    a = flat(A)
    if dz.shape[0] < PARALLEL_ELEMENTS:
        _backprop_from_output_row(dz, da, z, a, act)
        return
    nblocks = (dz.shape[0] + BLOCK - 1) // BLOCK
    for t in prange(nblocks):
        j0 = t * BLOCK
        j1 = min(j0 + BLOCK, dz.shape[0])
        _backprop_from_output_row(dz[j0:j1], da[j0:j1], z[j0:j1], a[j0:j1], act)
