"""What a network computes from its current parameters, without changing
them: forward propagation (the course's L_model_forward, for teaching),
predictions, the cost, the accuracy and the gradients. A mixin of
``model.network.NeuralNetwork``, which holds the parameters and the
backend (``_data``, ``_forward``, ``_buffers``, ``_program_for``, ...).

Shapes (the course's): X (n_x, m), Y (1, m) of 0/1 or labels, AL (1, m) or
(C, m) for a softmax output.
"""

import numpy as np

from . import _guard
from .checks import check_labels, check_nonnegative, check_X, check_Y


class Inference:
    """forward, predict_proba, predict, cost, accuracy and gradients of a NeuralNetwork."""

    def _check_output(self, ZL, X):
        """ValueError where the output layer's Z (n[L], m) holds NaN (or, under
        softmax, an infinity, which its shift by the column's maximum makes NaN):
        the forward pass overflowed, and the predictions, the cost and the
        gradients made from it would be silently wrong. A finite X and finite
        weights get there only through overflow: X or the weights too large."""
        Z = np.asarray(self._ops.to_host(ZL))
        bad = np.isnan(Z) if self.output == "sigmoid" else ~np.isfinite(Z)
        if not bad.any():
            return
        examples = int(np.count_nonzero(bad.any(axis=0)))
        x = float(np.max(np.abs(self._ops.to_host(X))))
        w = max(float(np.max(np.abs(self._ops.to_host(W)))) for W in self._W)
        raise ValueError(
            f"the forward pass overflowed {self.dtype.name} for {examples} of the {Z.shape[1]} examples (the output "
            f"layer's Z is {'NaN' if self.output == 'sigmoid' else 'NaN or infinite'} there; X's largest magnitude "
            f"is {x:.3g}, the weights' {w:.3g}): scale X (e.g. standardize each feature), or, where the weights "
            f"are that large, train again with a smaller learning rate")

    @_guard.shared
    def forward(self, X):
        """Forward propagation, for teaching: returns (AL, caches), AL (1, m)
        and caches one dict per layer with its "A_prev", "W", "b", "Z" and "A"
        (NumPy copies), as the course's L_model_forward."""
        Xd = self._data(X)
        buf = self._forward(Xd)
        host = self._ops.to_host
        caches = []
        for l in range(self.n_layers):
            caches.append({"A_prev": np.array(host(buf["A"][l])), "W": np.array(host(self._W[l])),
                           "b": np.array(host(self._b[l])), "Z": np.array(host(buf["Z"][l])),
                           "A": np.array(host(buf["A"][l + 1]))})
        return caches[-1]["A"].copy(), caches

    @_guard.shared
    def predict_proba(self, X):
        """P(y = 1 | x) for every column of X (n_x, m): an (1, m) array in (0, 1);
        for a softmax output the (C, m) class probabilities (columns sum to 1)."""
        buf = self._forward(self._data(X))
        return np.array(self._ops.to_host(buf["A"][self.n_layers]), copy=True)

    @_guard.shared
    def predict(self, X):
        """Class labels (1, m), int64: 1 where predict_proba(X) > 0.5 (sigmoid),
        the most probable class 0..C-1 (softmax)."""
        proba = self.predict_proba(X)
        if self.output == "softmax":
            return np.argmax(proba, axis=0).astype(np.int64).reshape(1, -1)
        return (proba > 0.5).astype(np.int64)

    @_guard.shared
    def cost(self, X, Y, l2=0.0):
        """The cross-entropy cost J of the current parameters on (X, Y), a
        float; with ``l2``, plus (l2 / (2 m)) sum over layers of ||W||^2."""
        l2 = check_nonnegative(l2, "l2")
        Xd, Yd = self._data(X, Y)
        buf = self._forward(Xd)
        J = float(self.program.kernels.cross_entropy(buf["A"][self.n_layers], Yd, self._eps(), self._ops.exact_math))
        if l2:
            squares = sum(float(np.sum(np.square(self._ops.to_host(w), dtype=np.float64))) for w in self._W)
            J += l2 / (2 * Xd.shape[1]) * squares
        return J

    @_guard.shared
    def accuracy(self, X, Y):
        """The fraction of examples of X classified as in Y (a float in [0, 1])."""
        m = check_X(X, self.layer_dims[0], self.dtype).shape[1]
        if self.output == "softmax":
            labels = np.argmax(check_labels(Y, m, self.layer_dims[-1], np.float64), axis=0).reshape(1, -1)
        else:
            labels = check_Y(Y, m, np.int64)
        return float(np.mean(self.predict(X) == labels))

    @_guard.shared
    def gradients(self, X, Y, l2=0.0):
        """{"dW1": ..., "db1": ..., ...}: the cost's gradients at the current
        parameters (one forward and one backward pass; no update); with
        ``l2``, dW also has (l2 / m) W (the gradient of cost(X, Y, l2))."""
        l2 = check_nonnegative(l2, "l2")
        Xd, Yd = self._data(X, Y)
        p = self._program_for(Xd.shape[1])
        buf = {k: p.list(v) for k, v in self._buffers(Xd, backward=True).items()}
        (W, b), codes = self._parameter_lists(p), p.codes(self._codes())
        p.forward(buf["Z"], buf["A"], W, b, codes, 0)
        self._check_output(buf["Z"][self.n_layers - 1], Xd)
        p.backward(buf["dW"], buf["db"], buf["dZ"], buf["dA"], W, buf["Z"], buf["A"], Yd, codes, 0)
        host = self._ops.to_host
        out = {}
        for l in range(self.n_layers):
            out[f"dW{l + 1}"] = np.array(host(buf["dW"][l]), copy=True)
            out[f"db{l + 1}"] = np.array(host(buf["db"][l]), copy=True)
            if l2:
                out[f"dW{l + 1}"] += self.dtype.type(l2 / Xd.shape[1]) * np.asarray(host(self._W[l]))
        return out
