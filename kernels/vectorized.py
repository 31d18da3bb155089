"""Backend "numpy": the course's vectorized formulas, the reference every other
backend is tested against.

The kernels have the same names and signatures as ``kernels.loops`` (outputs
first, then inputs). They write into the given outputs; a few NumPy
expressions still make temporaries where an in-place form would lose accuracy
(the stable sigmoid, the clipped cost), which is part of what the vectorized
formulation costs. Shapes as in ``kernels.loops``.
"""

import numpy as np

from .loops import LEAKY_RELU, LEAKY_SLOPE, LINEAR, RELU, SIGMOID, TANH, hash3
from .options import ADAM, MOMENTUM, RMSPROP


def _sigmoid(Z, out):
    """sigma(Z) without overflow: exp only ever sees -|Z|."""
    e = np.exp(-np.abs(Z))
    np.divide(np.where(Z >= 0, 1, e), 1 + e, out=out)
    return out


def _activate(A, Z, act):
    if act == SIGMOID:
        _sigmoid(Z, A)
    elif act == TANH:
        np.tanh(Z, out=A)
    elif act == RELU:
        np.maximum(Z, 0, out=A)  # propagates NaN
    elif act == LEAKY_RELU:
        np.copyto(A, np.where(Z < 0, Z * Z.dtype.type(LEAKY_SLOPE), Z))
    else:
        np.copyto(A, Z)
    return A


def _derivative(Z, act):
    """g'(Z); for relu g'(0) = 0 and leaky relu g'(0) = 0.01 (the course
    code's relu_backward: dZ[Z <= 0] = 0)."""
    if act == SIGMOID:
        s = _sigmoid(Z, np.empty_like(Z))
        return s * (1 - s)
    if act == TANH:
        return 1 - np.tanh(Z) ** 2
    if act == RELU:
        return np.where(Z <= 0, Z.dtype.type(0), Z.dtype.type(1))
    if act == LEAKY_RELU:
        return np.where(Z <= 0, Z.dtype.type(LEAKY_SLOPE), Z.dtype.type(1))
    return np.ones_like(Z)


def linear_forward(Z, A_prev, W, b):
    """Z = W A_prev + b."""
    np.matmul(W, A_prev, out=Z)
    Z += b


def linear_activation_forward(Z, A, A_prev, W, b, act):
    linear_forward(Z, A_prev, W, b)
    _activate(A, Z, act)


def activation_forward(A, Z, act):
    _activate(A, Z, act)


def activation_backward(dZ, dA, Z, act):
    """dZ = dA * g'(Z)."""
    if act == LINEAR:
        np.copyto(dZ, dA)
    else:
        np.multiply(dA, _derivative(Z, act), out=dZ)


def weight_gradients(dW, db, dZ, A_prev):
    """dW = (1/m) dZ A_prev^T, db = (1/m) sum(dZ, axis=1, keepdims=True)."""
    inv_m = dW.dtype.type(1.0) / dW.dtype.type(dZ.shape[1])
    np.matmul(dZ, A_prev.T, out=dW)
    dW *= inv_m
    np.sum(dZ, axis=1, keepdims=True, out=db)
    db *= inv_m


def input_gradient(dA_prev, dZ, W):
    """dA_prev = W^T dZ."""
    np.matmul(W.T, dZ, out=dA_prev)


def linear_backward(dA_prev, dW, db, dZ, A_prev, W):
    weight_gradients(dW, db, dZ, A_prev)
    input_gradient(dA_prev, dZ, W)


def linear_activation_backward(dA_prev, dW, db, dZ, dA, Z, A_prev, W, act):
    activation_backward(dZ, dA, Z, act)
    linear_backward(dA_prev, dW, db, dZ, A_prev, W)


def cross_entropy(AL, Y, eps, exact=True):
    """J = -(1/m) sum(Y log AL + (1 - Y) log(1 - AL)), AL clipped to [eps, 1 - eps];
    for C >= 2 rows (softmax) -(1/m) sum(Y log AL), AL clipped to [eps, 1].
    NumPy's log is always the exact one (``exact`` is the loop kernels' switch)."""
    if AL.shape[0] > 1:
        return float(-np.sum(Y * np.log(np.maximum(AL, eps))) / AL.shape[1])
    a = np.clip(AL, eps, 1 - eps)
    return float(-np.sum(Y * np.log(a) + (1 - Y) * np.log(1 - a)) / AL.shape[1])


def cross_entropy_backward(dAL, AL, Y, eps):
    """dAL = -(Y / AL - (1 - Y) / (1 - AL)), AL clipped to [eps, 1 - eps]."""
    a = np.clip(AL, eps, 1 - eps)
    np.subtract((1 - Y) / (1 - a), Y / a, out=dAL)


def gradient_step(out, param, grad, learning_rate):
    """out = param - learning_rate * grad."""
    lr = param.dtype.type(learning_rate)
    np.subtract(param, lr * grad, out=out)


def dot(a, b):
    return np.dot(a, b)


def activation_backward_from_output(dZ, dA, Z, A, act):
    """dZ = dA * g'(Z), g' read from A = g(Z) for tanh (1 - A^2) and sigmoid
    (A (1 - A)); the other activations read Z. The training loop's backward."""
    if act == TANH:
        np.multiply(dA, 1 - A * A, out=dZ)
    elif act == SIGMOID:
        np.multiply(dA, A * (1 - A), out=dZ)
    else:
        activation_backward(dZ, dA, Z, act)


def all_finite(x, zeros):
    """True if no element of x is NaN or +-inf (``zeros`` unused here)."""
    return bool(np.isfinite(x).all())


def optimizer_step(out, v, s, param, grad, learning_rate, kind, beta1, beta2, epsilon, t):
    """The course's update rules (kernels.loops.update.optimizer_step), vectorized.
    Returns whether every cell of out is finite."""
    dt = param.dtype.type
    lr, b1, b2, eps = dt(learning_rate), dt(beta1), dt(beta2), dt(epsilon)
    one = dt(1.0)
    if kind == MOMENTUM:
        np.multiply(v, b1, out=v)
        v += (one - b1) * grad
        np.subtract(param, lr * v, out=out)
    elif kind == RMSPROP:
        np.multiply(s, b2, out=s)
        s += (one - b2) * grad * grad
        np.subtract(param, lr * grad / (np.sqrt(s) + eps), out=out)
    elif kind == ADAM:
        np.multiply(v, b1, out=v)
        v += (one - b1) * grad
        np.multiply(s, b2, out=s)
        s += (one - b2) * grad * grad
        c1, c2 = dt(1.0 - beta1 ** t), dt(1.0 - beta2 ** t)
        np.subtract(param, lr * (v / c1) / (np.sqrt(s / c2) + eps), out=out)
    else:
        np.subtract(param, lr * grad, out=out)
    return bool(np.isfinite(out).all())


def gather_columns(out, X, index):
    """out[:, c] = X[:, index[c]]."""
    np.take(X, index, axis=1, out=out)


def gather_batches(out, X, index, size, r0, r1):
    """Rows r0:r1 of the epoch's batches of columns index of X, batch after
    batch in out's cells; whether those rows of X are finite
    (kernels.loops.update.gather_batches)."""
    n, m = X.shape
    cells = out.reshape(-1)
    for j0 in range(0, m, size):
        mb = min(size, m - j0)
        np.take(X[r0:r1], index[j0:j0 + mb], axis=1, out=cells[j0 * n:(j0 + mb) * n].reshape(n, mb)[r0:r1])
    return bool(np.isfinite(X[r0:r1]).all())


def permutation(out, seed, epoch):
    """The permutation of kernels.loops.draws.permutation (the same hashes)."""
    i = np.arange(out.shape[0], dtype=np.int64)
    out[:] = np.argsort(((hash3(seed, epoch, i) >> 1) << 32) | i, kind="stable")


def dropout(A, seed, stream, keep_prob):
    """Inverted dropout in place, the masks of kernels.loops.draws.dropout."""
    n, m = A.shape
    cells = np.arange(n * m, dtype=np.int64).reshape(n, m)
    keep = (hash3(seed, stream, cells) >> 8) < int(keep_prob * 16777216.0)
    np.multiply(A, np.where(keep, A.dtype.type(1.0 / keep_prob), A.dtype.type(0.0)), out=A)


def softmax(A, exact=False):
    """A = softmax(A) column by column, in place (each column's max subtracted
    first); NumPy's exp either way (``exact``: the compiled loops' choice of exp)."""
    np.subtract(A, A.max(axis=0, keepdims=True), out=A)
    np.exp(A, out=A)
    A /= A.sum(axis=0, keepdims=True)
