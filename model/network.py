"""``NeuralNetwork``: the course's L-layer network, trained on any backend (the API).

Shapes (the course's): X (n_x, m) with examples as columns, Y (1, m) of 0/1,
W[l] (n[l], n[l-1]), b[l] (n[l], 1), AL (1, m).

The path from ``fit`` to a multiply-add: ``NeuralNetwork.fit`` checks its
inputs (model/checks.py) -> ``_drive`` runs chunks of iterations
(model/fit.py) -> ``fit_chunk``, the training loop (model/training.py, bound
to the backend's kernels by model/program.py) -> ``linear_activation_forward``
and the other kernels (kernels/loops/ for "python", "numba", "parallel").
Arrays are made with the backend's hooks (``ops.empty``, ``ops.asarray``,
``ops.to_host``), so a device backend keeps them on its device.
"""

import contextlib
import math
import os
import tempfile
import zipfile

import numpy as np

import kernels
from kernels.loops import ACTIVATION_CODES

from . import _guard
from .checks import (check_activations, check_dtype, check_int, check_layer_dims, check_learning_rate,
                     check_parameters, check_X, check_Y, default_init)
from .fit import FitLoop
from .program import get_program
from .training import DIVERGED

__all__ = ["NeuralNetwork", "DivergenceError", "INITIALIZATIONS"]

INITIALIZATIONS = ("random", "he", "xavier", "zeros")
FILE_FORMAT = "jitloops-model-1"


class DivergenceError(FloatingPointError):
    """fit stopped because the cost or a parameter became NaN or infinite.
    The network keeps the parameters of the last finite iteration."""



class NeuralNetwork(FitLoop):
    """An L-layer network with a sigmoid output unit, trained by batch gradient
    descent on a jitloops backend.

    Parameters
    ----------
    layer_dims : sequence of ints [n_x, n[1], ..., n[L-1], 1]
        Layer sizes, input first; the output layer has one unit (binary classification).
    activations : str or sequence of str
        The hidden layers' activation ("sigmoid", "tanh", "relu", "leaky_relu",
        "linear"), or one name per hidden layer (L - 1 names), or one per layer
        (L names, the last "sigmoid"). The output unit is always sigmoid.
    backend : str
        One of ``kernels.BACKENDS``.
    init : None or "random", "he", "xavier", "zeros"
        "random": randn * 0.01 (the course's shallow network); "he": randn *
        sqrt(2 / n[l-1]); "xavier": randn * sqrt(1 / n[l-1]); "zeros": all zero
        (the symmetry lesson). None picks "random" for networks with at most one
        hidden layer (the course's choice there), "he" for deeper relu/leaky_relu
        networks and "xavier" for other deeper networks. Biases start at zero.
    seed : int or None
        Seed of the initialization (NumPy's legacy RandomState, drawing W1, W2,
        ... in order, as the course does; float32 networks round the float64 draws).
    dtype : "float64" or "float32"

    Attributes after fit: ``costs_`` (1-D: the cost at iterations 0, cost_every,
    ... of each fit, appended across fits), ``cost_iterations_`` (the iteration
    number, counted over all fits, of each entry of ``costs_``), ``n_iter_``
    (iterations done in all). ``set_parameters`` clears them.
    """

    def __init__(self, layer_dims, activations="relu", backend="numpy", init=None, seed=None,
                 dtype="float64"):
        self._guard = _guard.Guard()
        self.layer_dims = check_layer_dims(layer_dims)
        self.activations = check_activations(activations, len(self.layer_dims) - 1)
        if init is None:
            init = default_init(self.layer_dims, self.activations)
        if init not in INITIALIZATIONS:
            raise ValueError(f"unknown init {init!r}; valid: {', '.join(INITIALIZATIONS)} (or None for the default)")
        self.init = init
        self.seed = seed
        self.dtype = check_dtype(dtype)
        self._set_backend(backend)
        self._W, self._b = self._initial_parameters()
        self._clear_history()

    # ------------------------------------------------------------ construction
    def _set_backend(self, backend):
        self._ops = kernels.get_backend(backend)
        self.backend = self._ops.name
        self._program = None  # compiled (or bound) on first use
        self._fit_buffers = None  # (key, A[1:], lists) kept for the next fit: see KEEP_FIT_BUFFERS_BYTES
        self._chunk_hint = None  # (key, iterations per chunk) of the last fit

    @property
    def program(self):
        """The training loop bound to this network's backend (``model.program``)."""
        if self._program is None:
            self._program = get_program(self._ops)
        return self._program

    def _initial_parameters(self):
        rng = np.random.RandomState(self.seed)
        W, b = [], []
        for l in range(1, len(self.layer_dims)):
            n, k = self.layer_dims[l], self.layer_dims[l - 1]
            if self.init == "zeros":
                w = np.zeros((n, k))
            else:
                scale = {"random": 0.01, "he": math.sqrt(2.0 / k), "xavier": math.sqrt(1.0 / k)}[self.init]
                w = rng.randn(n, k) * scale
            W.append(self._ops.asarray(w.astype(self.dtype)))
            b.append(self._ops.asarray(np.zeros((n, 1), dtype=self.dtype)))
        return W, b

    def _clear_history(self):
        self.costs_ = np.zeros(0)
        self.cost_iterations_ = np.zeros(0, dtype=np.int64)
        self.n_iter_ = 0

    def __repr__(self):
        hidden = self.activations[:-1]
        act = hidden[0] if len(set(hidden)) == 1 else list(hidden)
        return (f"{type(self).__name__}({list(self.layer_dims)}, activations={act!r}, backend={self.backend!r}, "
                f"init={self.init!r}, seed={self.seed!r}, dtype={self.dtype.name!r})")

    @property
    def n_layers(self):
        """L, the number of layers with parameters."""
        return len(self.layer_dims) - 1

    # --------------------------------------------------------------- parameters
    @property
    @_guard.shared
    def parameters(self):
        """{"W1": ..., "b1": ..., ..., "WL": ..., "bL": ...}: NumPy copies."""
        out = {}
        for l in range(self.n_layers):
            out[f"W{l + 1}"] = np.array(self._ops.to_host(self._W[l]), copy=True)
            out[f"b{l + 1}"] = np.array(self._ops.to_host(self._b[l]), copy=True)
        return out

    def _parameter_shapes(self):
        shapes = {}
        for l in range(1, len(self.layer_dims)):
            shapes[f"W{l}"] = (self.layer_dims[l], self.layer_dims[l - 1])
            shapes[f"b{l}"] = (self.layer_dims[l], 1)
        return shapes

    @_guard.exclusive
    def set_parameters(self, parameters):
        """Replace every parameter. ``parameters`` must have exactly the keys W1,
        b1, ..., WL, bL, each an array of its layer's shape and of the network's
        dtype, all finite. Clears ``costs_`` and ``n_iter_``. Returns self."""
        checked = check_parameters(parameters, self._parameter_shapes(), self.dtype)
        L = self.n_layers
        self._W = [self._ops.asarray(checked[f"W{l + 1}"]) for l in range(L)]
        self._b = [self._ops.asarray(checked[f"b{l + 1}"]) for l in range(L)]
        self._clear_history()
        return self

    # --------------------------------------------------------- data and buffers
    def _data(self, X, Y=None):
        """Checked X (and Y) as backend arrays."""
        self._ops.check_ready()
        Xh = check_X(X, self.layer_dims[0], self.dtype)
        Xd = self._ops.asarray(Xh)
        if Y is None:
            return Xd
        return Xd, self._ops.asarray(check_Y(Y, Xh.shape[1], self.dtype))

    def _buffers(self, X, backward):
        """Z, A (A[0] is X) and, with backward, dZ, dA, dW, db for m = X's columns."""
        m = X.shape[1]
        empty, dt = self._ops.empty, self.dtype
        dims = self.layer_dims[1:]
        buf = dict(Z=[empty((n, m), dt) for n in dims], A=[X] + [empty((n, m), dt) for n in dims])
        if backward:
            buf["dZ"] = [empty((n, m), dt) for n in dims]
            buf["dA"] = [empty((n, m), dt) for n in dims]  # dA[L-1] is unused (dZ[L-1] = AL - Y)
            buf["dW"] = [empty(w.shape, dt) for w in self._W]
            buf["db"] = [empty(b.shape, dt) for b in self._b]
        return buf

    def _forward(self, X):
        """Backend forward pass; returns the buffers (Z, A) as program lists."""
        p = self.program
        buf = {k: p.list(v) for k, v in self._buffers(X, backward=False).items()}
        p.forward(buf["Z"], buf["A"], p.list(self._W), p.list(self._b), p.codes(self._codes()))
        return buf

    def _codes(self):
        """The layers' activation codes for the raw kernels (with the backend's exact-math bit)."""
        return [ACTIVATION_CODES[a] | self._ops.act_bits for a in self.activations]

    def _eps(self):
        return float(np.finfo(self.dtype).eps)

    # ------------------------------------------------------------ propagation
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
        """P(y = 1 | x) for every column of X (n_x, m): an (1, m) array in (0, 1)."""
        buf = self._forward(self._data(X))
        return np.array(self._ops.to_host(buf["A"][self.n_layers]), copy=True)

    @_guard.shared
    def predict(self, X):
        """Class labels (1, m) of 0/1 (int64): 1 where predict_proba(X) > 0.5."""
        return (self.predict_proba(X) > 0.5).astype(np.int64)

    @_guard.shared
    def cost(self, X, Y):
        """The cross-entropy cost J of the current parameters on (X, Y), a float."""
        Xd, Yd = self._data(X, Y)
        buf = self._forward(Xd)
        return float(self._ops.kernels.cross_entropy(buf["A"][self.n_layers], Yd, self._eps(),
                                                     self._ops.exact_math))

    @_guard.shared
    def accuracy(self, X, Y):
        """The fraction of examples of X classified as in Y (a float in [0, 1])."""
        Yh = check_Y(Y, check_X(X, self.layer_dims[0], self.dtype).shape[1], np.int64)
        return float(np.mean(self.predict(X) == Yh))

    @_guard.shared
    def gradients(self, X, Y):
        """{"dW1": ..., "db1": ..., ...}: the cost's gradients at the current
        parameters (one forward and one backward pass; no update)."""
        Xd, Yd = self._data(X, Y)
        p = self.program
        buf = {k: p.list(v) for k, v in self._buffers(Xd, backward=True).items()}
        W, b, codes = p.list(self._W), p.list(self._b), p.codes(self._codes())
        p.forward(buf["Z"], buf["A"], W, b, codes)
        p.backward(buf["dW"], buf["db"], buf["dZ"], buf["dA"], W, buf["Z"], buf["A"], Yd, codes)
        host = self._ops.to_host
        out = {}
        for l in range(self.n_layers):
            out[f"dW{l + 1}"] = np.array(host(buf["dW"][l]), copy=True)
            out[f"db{l + 1}"] = np.array(host(buf["db"][l]), copy=True)
        return out

    # ------------------------------------------------------------------- fit
    @_guard.exclusive
    def fit(self, X, Y, iterations, learning_rate, cost_every=100, progress=False):
        """Batch gradient descent, the course's: each iteration forward
        propagation, cost, backward propagation, update of every parameter.

        X (n_x, m); Y (1, m) of 0/1. Continues from the current parameters.
        Records the cost at iterations 0, cost_every, 2 cost_every, ... of this
        fit (the cost of that iteration's forward pass, before its update) in
        ``costs_``. ``progress=True`` shows a progress bar on stderr.

        Raises DivergenceError if the cost or a parameter becomes NaN or
        infinite (the network keeps the last finite iteration's parameters and
        the iterations done count). A Ctrl-C stops fit between two iterations,
        leaving the parameters of the last completed one. Returns self.
        """
        iterations = check_int(iterations, "iterations", 0)
        learning_rate = check_learning_rate(learning_rate)
        cost_every = check_int(cost_every, "cost_every", 1)
        Xd, Yd = self._data(X, Y)
        n_costs = -(-iterations // cost_every)
        costs = np.full(n_costs, np.nan)
        chunk = self._chunk_runner(Xd, Yd, costs, cost_every, learning_rate)
        done, status = self._drive(chunk, iterations, costs, cost_every, progress, Xd.shape[1])
        recorded = -(-done // cost_every)
        self.costs_ = np.concatenate([self.costs_, costs[:recorded]])
        self.cost_iterations_ = np.concatenate(
            [self.cost_iterations_, self.n_iter_ + cost_every * np.arange(recorded, dtype=np.int64)])
        self.n_iter_ += done
        if status == DIVERGED:
            raise DivergenceError(
                f"training diverged at iteration {done} of this fit ({self.n_iter_} iterations done in all): "
                f"the cost or a parameter became NaN or infinite with learning_rate={learning_rate:g}. "
                f"Use a smaller learning rate (e.g. {learning_rate / 10:g}); the network keeps the "
                f"parameters of the last finite iteration")
        if isinstance(status, KeyboardInterrupt):
            raise status
        return self

    # ------------------------------------------------------------- save / load
    def _architecture(self):
        return dict(kind=np.array(type(self).__name__), layer_dims=np.array(self.layer_dims, dtype=np.int64),
                    activations=np.array(self.activations), dtype=np.array(self.dtype.name),
                    format=np.array(FILE_FORMAT))

    @_guard.shared
    def save(self, path):
        """Write the parameters and the architecture (layer sizes, activations,
        dtype) to the .npz file ``path`` (written as named, no suffix added).
        Atomic: written to a temporary file in the same folder, then renamed
        over ``path``, so a crash never leaves a half-written file there."""
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        arrays = dict(self._architecture())
        params = self.parameters
        arrays.update({f"param_{k}": v for k, v in params.items()})
        fd, tmp = tempfile.mkstemp(prefix=".jitloops-", suffix=".npz.tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return path

    @classmethod
    def load(cls, path, backend="numpy"):
        """A network from a file written by ``save``, on ``backend``.
        A missing, corrupt or mismatched file raises FileNotFoundError or ValueError."""
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no saved network at {path!r}")
        try:
            with np.load(path, allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
            raise ValueError(f"{path!r} is not a readable jitloops network file (corrupt or not an .npz "
                             f"written by save): {exc}") from None
        if str(data.get("format", "")) != FILE_FORMAT:
            raise ValueError(f"{path!r} is not a jitloops network file: no format tag {FILE_FORMAT!r} "
                             f"(was it written by NeuralNetwork.save?)")
        try:
            kind = str(data["kind"])
            dims = [int(n) for n in data["layer_dims"]]
            acts = [str(a) for a in data["activations"]]
            dtype = str(data["dtype"])
        except KeyError as exc:
            raise ValueError(f"{path!r} is missing the architecture entry {exc.args[0]!r}") from None
        from .logistic import LogisticRegression  # a subclass of this module's class
        target = {c.__name__: c for c in (NeuralNetwork, LogisticRegression)}.get(kind)
        if target is None or not issubclass(target, cls):
            raise ValueError(f"{path!r} holds a {kind}, not a {cls.__name__}")
        net = target._from_architecture(dims, acts, backend, dtype)
        params = {k[len("param_"):]: v for k, v in data.items() if k.startswith("param_")}
        try:
            net.set_parameters(params)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path!r} does not match its own architecture {dims}: {exc}") from None
        return net

    @classmethod
    def _from_architecture(cls, dims, activations, backend, dtype):
        return cls(dims, activations=activations, backend=backend, init="zeros", dtype=dtype)

    def _clone(self):
        """A network of the same architecture and backend with the same parameters."""
        net = self._from_architecture(list(self.layer_dims), list(self.activations), self.backend, self.dtype.name)
        net.set_parameters(self.parameters)
        return net

    # ----------------------------------------------- pickle, copy.deepcopy
    # What a process pool sends to and from its workers: the architecture,
    # the parameters (as NumPy arrays), the history and the backend's name;
    # the receiving process binds the backend anew (compiled code, device
    # arrays and locks do not travel). Kept fit buffers are not sent.
    _NOT_PICKLED = ("_guard", "_ops", "_program", "_fit_buffers", "_chunk_hint", "_W", "_b")

    def __getstate__(self):
        with self._guard.shared():
            state = {k: v for k, v in self.__dict__.items() if k not in self._NOT_PICKLED}
            state["W_host"] = [np.array(self._ops.to_host(w), copy=True) for w in self._W]
            state["b_host"] = [np.array(self._ops.to_host(v), copy=True) for v in self._b]
        return state

    def __setstate__(self, state):
        state = dict(state)
        W, b = state.pop("W_host"), state.pop("b_host")
        self.__dict__.update(state)
        self._guard = _guard.Guard()
        self._set_backend(self.backend)
        self._W = [self._ops.asarray(w) for w in W]
        self._b = [self._ops.asarray(v) for v in b]

