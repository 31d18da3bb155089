"""``LogisticRegression``: the course's first model, a NeuralNetwork [n_x, 1].

Shapes: X (n_x, m); Y (1, m); w (n_x, 1); b a scalar.
"""

import numbers

import numpy as np

from kernels.loops.plans import ALL_PLANS

from . import _guard
from .checks import check_parameters
from .fit import call_recorded
from .training import DIVERGED, X_NOT_FINITE
from .network import NeuralNetwork


class LogisticRegression(NeuralNetwork):
    """The course's logistic regression: y_hat = sigmoid(w^T x + b), w (n_x, 1)
    and a scalar b, both starting at zero, trained by batch gradient descent.

    The API is NeuralNetwork's; ``parameters`` is {"w": (n_x, 1), "b": float}
    and ``gradients`` {"dw": (n_x, 1), "db": float}. On the loop backends
    ("python", "numba", "parallel") fit runs the course's per-example loop
    (z, a, J, dz, dw, db accumulated example by example in one pass; on
    "parallel" one pass per block of examples, the blocks' sums added at the
    end); on the others the vectorized one-layer network.
    """

    def __init__(self, n_x, backend="numpy", dtype="float64"):
        if isinstance(n_x, bool) or not isinstance(n_x, numbers.Integral) or n_x < 1:
            raise ValueError(f"n_x (the number of input features) must be a positive int, got {n_x!r}")
        super().__init__([int(n_x), 1], activations=(), backend=backend, init="zeros", dtype=dtype)

    @classmethod
    def _from_architecture(cls, dims, activations, backend, dtype):
        if len(dims) != 2:
            raise ValueError(f"a LogisticRegression has layer_dims [n_x, 1], got {dims}")
        return cls(dims[0], backend=backend, dtype=dtype)

    def __repr__(self):
        return f"LogisticRegression({self.layer_dims[0]}, backend={self.backend!r}, dtype={self.dtype.name!r})"

    @property
    @_guard.shared
    def parameters(self):
        """{"w": (n_x, 1) NumPy copy, "b": float}."""
        p = super().parameters
        return {"w": p["W1"].T.copy(), "b": float(p["b1"][0, 0])}

    @_guard.exclusive
    def set_parameters(self, parameters):
        """Replace w (n_x, 1) and b (a scalar); keys, shape, dtype and finiteness checked."""
        n_x = self.layer_dims[0]
        if not (hasattr(parameters, "keys") and "b" in parameters):
            raise ValueError(f"parameters must be a dict {{'w': array ({n_x}, 1), 'b': number}}, "
                             f"got {parameters!r:.80}")
        b = parameters["b"]
        if isinstance(b, np.ndarray) and b.size == 1 and b.ndim <= 2:  # scikit-learn's intercept_ is (1,)
            b = b.reshape(())
        if isinstance(b, (bool, np.bool_)) or not isinstance(b, (numbers.Real, np.floating, np.ndarray)):
            raise TypeError(f"parameter b must be a number, got {type(b).__name__}")
        if np.ndim(b) != 0:
            raise ValueError(f"parameter b must be a number (or an array of one element), got an array of "
                             f"shape {np.shape(b)}")
        parameters = dict(parameters, b=np.full((1, 1), b, dtype=self.dtype))
        checked = check_parameters(parameters, {"w": (n_x, 1), "b": (1, 1)}, self.dtype)
        return super().set_parameters({"W1": checked["w"].T.copy(), "b1": checked["b"]})

    def _set_backend(self, backend):
        super()._set_backend(backend)
        # logistic_pass runs its blocks under prange at every size: the
        # parallel variant's program, never the serial one small sets get
        self._plans = ALL_PLANS

    def _loop_views(self):
        """w (n_x,) and b (1,) as views of the parameters (NumPy arrays on the loop backends)."""
        return self._W[0].reshape(self.layer_dims[0]), self._b[0].reshape(1)

    @_guard.shared
    def gradients(self, X, Y, l2=0.0):
        """{"dw": (n_x, 1), "db": float} at the current parameters (with
        ``l2``, dw also has (l2 / m) w)."""
        if l2:
            g = super().gradients(X, Y, l2)
            return {"dw": g["dW1"].T.copy(), "db": float(g["db1"][0, 0])}
        if self._ops.loops:
            Xd, Yd = self._data(X, Y)
            n_x, dt = self.layer_dims[0], self.dtype
            w, b = self._loop_views()
            dw, db = np.empty(n_x, dt), np.empty(1, dt)
            parts = self._loop_parts(Xd.shape[1])
            XT = self._examples_as_rows(Xd)
            self.program.logistic_gradients(dw, db, *parts, w, b, XT, Yd, self._eps())
            return {"dw": dw.reshape(n_x, 1), "db": float(db[0])}
        g = super().gradients(X, Y)
        return {"dw": g["dW1"].T.copy(), "db": float(g["db1"][0, 0])}

    def _examples_as_rows(self, X):
        """X^T (m, n_x), C order: example i's features as the row XT[i], what
        logistic_loop.logistic_pass walks (compiled: logistic_loop.examples_as_rows)."""
        p = self.program
        if not p.compiled:
            return np.ascontiguousarray(X.T)
        XT = np.empty((X.shape[1], X.shape[0]), dtype=X.dtype)
        p.examples_as_rows(XT, np.ascontiguousarray(X))
        return XT

    def _loop_parts(self, m):
        """The per-block partial sums: one block serially (the course's loop),
        a few per thread on "parallel"."""
        if self._ops.parallel:
            import numba
            nblocks = max(1, min(m, 4 * numba.get_num_threads()))
        else:
            nblocks = 1
        return np.empty((nblocks, self.layer_dims[0]), self.dtype), np.empty((nblocks, 2), np.float64)

    def _chunk_runner(self, X, Y, costs, cost_every, learning_rate):
        if not self._ops.loops:
            return super()._chunk_runner(X, Y, costs, cost_every, learning_rate)
        n_x, dt, p = self.layer_dims[0], self.dtype, self.program
        w, b = self._loop_views()
        w_next, b_next, dw, db = np.empty(n_x, dt), np.empty(1, dt), np.empty(n_x, dt), np.empty(1, dt)
        dw_parts, parts = self._loop_parts(X.shape[1])
        eps = self._eps()
        XT = self._examples_as_rows(X)  # once per fit

        results = []  # (done, status) of each chunk run (fit.call_recorded)

        def chunk(start, count):
            done, status = call_recorded(results, p.logistic_fit_chunk, costs, w, b, w_next, b_next, dw, db,
                                         dw_parts, parts, XT, Y, start, count, cost_every, learning_rate, eps)
            if start == done == 0 and status == DIVERGED and not np.isfinite(X).all():
                return 0, X_NOT_FINITE  # see _fit_tests_X
            return done, status

        chunk.results = results
        return chunk

    def _fit_tests_X(self, X, options):
        """The compiled per-example loop finds NaN and infinity in X itself:
        a non-finite x^(i)_k makes dw[k] non-finite (inf * dz is infinite,
        or NaN where dz = 0; NaN and infinity survive the compiled loop's
        sums), so the fit's first step diverges before it changes a
        parameter, and the chunk then tests X (X_NOT_FINITE: fit raises
        check_X's error). Saves a pass over X a fit (20 MB for the course's
        cat images)."""
        if options.plain and self._ops.loops and self.program.compiled:
            return True
        return super()._fit_tests_X(X, options)

