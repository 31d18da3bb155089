"""The course's loops, as on its slides: read this first.

Every op of a layer, written the way the course writes it before it
vectorizes anything: a loop over the examples i (a column of X is one
example), and inside it a loop over the units j of the layer:

    for i in range(m):                  # each example x(i)
        for j in range(n):              # each unit of the layer
            z = w_j . x(i) + b_j
            a = g(z)

Shape key (the course's notation):
    m      examples (columns)           n      units of this layer, n[l]
    k      units of the previous layer, n[l-1]
    Z, A, dZ, dA (n, m)    A_prev, dA_prev (k, m)    W, dW (n, k)    b, db (n, 1)
    AL, Y, dAL (1, m)

The signatures are the engine's (outputs first, then inputs): each function
here is a whole public op, the reference every faster loop in this package is
tested against (tests/test_course.py), and the path the engine takes for the
tiniest products (plan COURSE in plans.py). g and g' come from the C math
library (activations.activation_scalar), never an approximation.

What the engine changes, step by step (plans.py lists the steps): the
innermost loop here walks down a column of A_prev, m elements apart, so
nothing can be loaded as a vector; SIMPLE swaps the loops so the innermost one
walks a contiguous row; BLOCKED_* keep 4 x 4 blocks in registers; PACKED
copies panels so an MR x NR block stays in vector registers; "parallel" splits
the tiles across cores. The arithmetic is this file's.
"""

import math

from numba.extending import register_jitable

from ..options import HELPER_OPTIONS, LINEAR
from .activations import activation_scalar, derivative_scalar
from .views import flat


@register_jitable(**HELPER_OPTIONS)
def linear_activation_forward(Z, A, A_prev, W, b, act):
    """z(i) = W x(i) + b and a(i) = g(z(i)), one example at a time (act < 0: Z only)."""
    n, k = W.shape
    for i in range(A_prev.shape[1]):  # each example
        for j in range(n):  # each unit
            z = b[j, 0]
            for p in range(k):
                z += W[j, p] * A_prev[p, i]
            Z[j, i] = z
            if act >= 0:
                A[j, i] = activation_scalar(z, act)


@register_jitable(**HELPER_OPTIONS)
def linear_forward(Z, A_prev, W, b):
    """Z = W A_prev + b, one example at a time."""
    linear_activation_forward(Z, Z, A_prev, W, b, -1)


@register_jitable(**HELPER_OPTIONS)
def activation_backward(dZ, dA, Z, act):
    """dz = da * g'(z), one example at a time."""
    for i in range(Z.shape[1]):
        for j in range(Z.shape[0]):
            dZ[j, i] = dA[j, i] * derivative_scalar(Z[j, i], act)


@register_jitable(**HELPER_OPTIONS)
def weight_gradients(dW, db, dZ, A_prev):
    """dW = (1/m) sum_i dz(i) x(i)^T and db = (1/m) sum_i dz(i): the
    accumulators of the course's loop over examples, divided by m at the end."""
    n, m = dZ.shape
    zero = dW.dtype.type(0.0)
    for j in range(n):
        db[j, 0] = zero
        for p in range(A_prev.shape[0]):
            dW[j, p] = zero
    for i in range(m):  # each example
        for j in range(n):  # each unit
            dz = dZ[j, i]
            db[j, 0] += dz
            for p in range(A_prev.shape[0]):
                dW[j, p] += dz * A_prev[p, i]
    inv_m = dW.dtype.type(1.0) / dW.dtype.type(m)
    for j in range(n):
        db[j, 0] *= inv_m
        for p in range(A_prev.shape[0]):
            dW[j, p] *= inv_m


@register_jitable(**HELPER_OPTIONS)
def input_gradient(dA_prev, dZ, W):
    """da_prev(i) = W^T dz(i), one example at a time."""
    n, k = W.shape
    for i in range(dZ.shape[1]):  # each example
        for p in range(k):  # each unit of the previous layer
            s = dA_prev.dtype.type(0.0)
            for j in range(n):
                s += W[j, p] * dZ[j, i]
            dA_prev[p, i] = s


@register_jitable(**HELPER_OPTIONS)
def linear_activation_backward(dA_prev, dW, db, dZ, dA, Z, A_prev, W, act):
    """dZ = dA * g'(Z), then dW, db and dA_prev from dZ."""
    activation_backward(dZ, dA, Z, act)
    weight_gradients(dW, db, dZ, A_prev)
    input_gradient(dA_prev, dZ, W)


@register_jitable(**HELPER_OPTIONS)
def linear_backward(dA_prev, dW, db, dZ, A_prev, W):
    """dW, db and dA_prev from dZ (g is the identity: dZ is read, not changed)."""
    linear_activation_backward(dA_prev, dW, db, dZ, dZ, dZ, A_prev, W, LINEAR)


@register_jitable(**HELPER_OPTIONS)
def cross_entropy(AL, Y, eps):
    """J = -(1/m) sum_i [y(i) log a(i) + (1 - y(i)) log(1 - a(i))], a clipped
    to [eps, 1 - eps] so log never sees 0; summed in float64."""
    m = AL.shape[1]
    J = 0.0
    for i in range(m):  # each example
        a = min(max(float(AL[0, i]), eps), 1.0 - eps)
        y = float(Y[0, i])
        J += -(y * math.log(a) + (1.0 - y) * math.log(1.0 - a))
    return J / m


@register_jitable(**HELPER_OPTIONS)
def cross_entropy_backward(dAL, AL, Y, eps):
    """da(i) = -(y(i) / a(i) - (1 - y(i)) / (1 - a(i))), a clipped as in the cost."""
    one = dAL.dtype.type(1.0)
    lo = AL.dtype.type(eps)
    for i in range(AL.shape[1]):
        a = min(max(AL[0, i], lo), one - lo)
        y = Y[0, i]
        dAL[0, i] = (one - y) / (one - a) - y / a


@register_jitable(**HELPER_OPTIONS)
def gradient_step(out, param, grad, learning_rate):
    """out = param - learning_rate * grad, one cell at a time (out may be
    param; any shape, walked as flat views of its cells)."""
    o, p, g = flat(out), flat(param), flat(grad)
    lr = o.dtype.type(learning_rate)
    for c in range(o.shape[0]):
        o[c] = p[c] - lr * g[c]


@register_jitable(**HELPER_OPTIONS)
def dot(a, b):
    """s = sum_i a[i] b[i], the course's 1,000,000-element loop."""
    s = a.dtype.type(0.0)
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s
