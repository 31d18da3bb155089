"""``NeuralNetwork`` and ``LogisticRegression``: the course's models, trained on any backend.

Shapes (the course's): X (n_x, m) with examples as columns, Y (1, m) of 0/1,
W[l] (n[l], n[l-1]), b[l] (n[l], 1), AL (1, m).

The model validates its inputs once, here, and then drives the backend's raw
kernels through ``model.training`` (see ``model.program``): on "numba" and
"parallel" whole chunks of gradient-descent iterations run in one compiled
call; on the other backends a Python loop calls the kernels. Arrays are made
with the backend's hooks (``ops.empty``, ``ops.asarray``, ``ops.to_host``), so a
device backend keeps them on its device; there fit reads back nothing per
iteration but the recorded costs (its divergence test runs once per chunk:
see ``NeuralNetwork._chunk_runner``).
"""

import contextlib
import math
import numbers
import os
import signal
import tempfile
import threading
import time
import zipfile

import numpy as np

import kernels
from kernels.loops import ACTIVATION_CODES

from . import _guard
from ._progress import Progress
from .program import get_program
from .training import DIVERGED

__all__ = ["NeuralNetwork", "LogisticRegression", "DivergenceError", "INITIALIZATIONS"]

INITIALIZATIONS = ("random", "he", "xavier", "zeros")
FILE_FORMAT = "jitloops-model-1"

# Seconds of work per chunk of fit: the progress bar updates and a Ctrl-C
# lands (see _deferred_interrupt) between chunks.
CHUNK_SECONDS = 0.1
# A fit keeps its buffers (and their typed lists) for the next fit with as
# many examples when they take at most this many bytes: a small network's fit
# call spent longer allocating them and building Numba's typed lists (~70 us)
# than in 5 planar iterations. Larger buffers are freed when fit returns.
KEEP_FIT_BUFFERS_BYTES = 4 << 20


class DivergenceError(FloatingPointError):
    """fit stopped because the cost or a parameter became NaN or infinite.
    The network keeps the parameters of the last finite iteration."""


# ---------------------------------------------------------------- input checks


def _check_dtype(dtype):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return dt


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_learning_rate(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"learning_rate must be a finite number > 0, got {value!r}")
    return float(value)


def _numeric(x, name, shape_text):
    """``x`` as a NumPy array of a bool/int/float dtype, or a TypeError."""
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged nested lists and the like
        raise TypeError(f"{name} must be an array of shape {shape_text}, got {type(x).__name__}: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold numbers (float, int or bool), got dtype {arr.dtype}; "
            f"{name} must be an array of shape {shape_text}")
    return arr


def check_X(X, n_x, dtype):
    """X as a C-contiguous (n_x, m) array of ``dtype``, or an error that says how to fix it."""
    X = _numeric(X, "X", "(n_x, m)")
    if X.ndim != 2:
        hint = (f"; one example is a column: X.reshape({n_x}, 1), m examples of one feature: X.reshape(1, -1)"
                if X.ndim == 1 else "")
        raise ValueError(f"X must be a 2-D array of shape (n_x, m) = ({n_x}, m), got a {X.ndim}-D array "
                         f"of shape {X.shape}{hint}")
    if X.shape[0] != n_x:
        if X.shape[1] == n_x:
            raise ValueError(
                f"X has shape {X.shape} but the network expects n_x = {n_x} rows; "
                f"examples are columns, did you mean X.T?")
        raise ValueError(f"X has shape {X.shape} but the network expects n_x = {n_x} rows "
                         f"(X must be (n_x, m), one example per column)")
    if X.shape[1] < 1:
        raise ValueError("X has no examples (shape (n_x, 0)); it needs at least one column")
    if X.dtype.kind == "f" and not np.isfinite(X).all():
        raise ValueError("X contains NaN or infinity; remove or impute those values first")
    with np.errstate(over="ignore"):
        X = np.ascontiguousarray(X, dtype=dtype)
    if not np.isfinite(X).all():  # finite in float64 but out of float32's range
        raise ValueError(f"X has values too large for {dtype} (they become infinity); scale X first")
    return _writable(X)


def _writable(x):
    """``x``, or a copy where it is read-only (np.load(..., mmap_mode="r"),
    np.broadcast_to, a frozen array). The compiled programs are typed for
    writable arrays: X sits in one typed list with the layers' outputs, so a
    read-only X could not be typed there, and a read-only Y would cost a second
    compilation of the whole training loop. A copy is cheap beside a fit."""
    return x if x.flags.writeable else x.copy()


def check_Y(Y, m, dtype):
    """Y as a C-contiguous (1, m) array of 0/1 in ``dtype``, or an error."""
    Y = _numeric(Y, "Y", "(1, m)")
    if Y.ndim == 1:
        raise ValueError(f"Y must be a 2-D array of shape (1, m), got a 1-D array of shape {Y.shape}; "
                         f"reshape it: Y.reshape(1, -1)")
    if Y.ndim != 2:
        raise ValueError(f"Y must be a 2-D array of shape (1, m), got a {Y.ndim}-D array of shape {Y.shape}")
    if Y.shape[0] != 1:
        hint = "; labels are one row, did you mean Y.T?" if Y.shape[1] == 1 else ""
        raise ValueError(f"Y has shape {Y.shape} but must be (1, m): one row of 0/1 labels{hint}")
    if Y.shape[1] != m:
        raise ValueError(f"X has m = {m} examples (columns) but Y has {Y.shape[1]}; "
                         f"X (n_x, m) and Y (1, m) need the same m")
    bad = ~((Y == 0) | (Y == 1))
    if bad.any():
        raise ValueError(f"Y must hold labels 0 and 1 only (bool and int accepted), got e.g. "
                         f"{Y[bad].ravel()[0]!r} at column {int(np.flatnonzero(bad.ravel())[0])}; "
                         f"for other labels map them first, e.g. Y = (labels == positive_class)")
    return _writable(np.ascontiguousarray(Y, dtype=dtype))


# --------------------------------------------------------------- interruption


@contextlib.contextmanager
def _deferred_interrupt():
    """While fit runs, a Ctrl-C (SIGINT) is only noted; fit raises
    KeyboardInterrupt itself between two chunks, when the parameters are those
    of a completed iteration. (Compiled code cannot be interrupted anyway; this
    makes the interpreted backends just as consistent.) Outside the main thread
    signals cannot be caught and nothing changes."""
    received = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    except ValueError:  # e.g. an embedded interpreter
        yield received
        return
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)


_threadpools = None


@contextlib.contextmanager
def _blas_limited(backend):
    """On the parallel backend, keep NumPy's BLAS to one thread during fit so
    its threads do not compete with Numba's for the cores."""
    global _threadpools
    if backend != "parallel":
        yield
        return
    if _threadpools is None:  # scanning the loaded libraries once costs ~1 ms; limiting then ~20 us
        from threadpoolctl import ThreadpoolController
        _threadpools = ThreadpoolController()
    with _threadpools.limit(limits=1, user_api="blas"):
        yield


# ------------------------------------------------------------------- networks


def _default_init(layer_dims, activations):
    """The default initialization (see NeuralNetwork)."""
    hidden = activations[:-1]
    if len(hidden) <= 1:
        return "random"
    if all(a in ("relu", "leaky_relu") for a in hidden):
        return "he"
    return "xavier"


class NeuralNetwork:
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
        self.layer_dims = self._check_layer_dims(layer_dims)
        self.activations = self._check_activations(activations, len(self.layer_dims) - 1)
        if init is None:
            init = _default_init(self.layer_dims, self.activations)
        if init not in INITIALIZATIONS:
            raise ValueError(f"unknown init {init!r}; valid: {', '.join(INITIALIZATIONS)} (or None for the default)")
        self.init = init
        self.seed = seed
        self.dtype = _check_dtype(dtype)
        self._set_backend(backend)
        self._W, self._b = self._initial_parameters()
        self._clear_history()

    # ------------------------------------------------------------ construction
    @staticmethod
    def _check_layer_dims(layer_dims):
        try:
            dims = list(layer_dims)
        except TypeError:
            raise TypeError(f"layer_dims must be a sequence of ints [n_x, n[1], ..., 1], got {layer_dims!r}") from None
        if len(dims) < 2 or any(isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1 for n in dims):
            raise ValueError(f"layer_dims must be at least two positive ints [n_x, ..., 1], got {layer_dims!r}")
        if dims[-1] != 1:
            raise ValueError(f"the output layer has one sigmoid unit (binary classification), so layer_dims "
                             f"must end in 1, got {layer_dims!r}")
        return tuple(int(n) for n in dims)

    @staticmethod
    def _check_activations(activations, L):
        valid = ", ".join(ACTIVATION_CODES)
        if isinstance(activations, str):
            names = [activations] * (L - 1)
        else:
            try:
                names = list(activations)
            except TypeError:
                raise TypeError(f"activations must be a name or a sequence of names ({valid}), "
                                f"got {activations!r}") from None
            if len(names) == L and L > 0 and names[-1] == "sigmoid":
                names = names[:-1]
            if len(names) != L - 1:
                raise ValueError(f"activations has {len(names)} names but the network has {L - 1} hidden "
                                 f"layers; give one name, one per hidden layer ({L - 1}), or one per layer "
                                 f"({L}, the last 'sigmoid')")
        for name in names:
            if name not in ACTIVATION_CODES:
                raise ValueError(f"unknown activation {name!r}; valid names: {valid}")
        return tuple(names) + ("sigmoid",)

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
        checked = self._check_parameters(parameters, self._parameter_shapes(), self.dtype)
        L = self.n_layers
        self._W = [self._ops.asarray(checked[f"W{l + 1}"]) for l in range(L)]
        self._b = [self._ops.asarray(checked[f"b{l + 1}"]) for l in range(L)]
        self._clear_history()
        return self

    @staticmethod
    def _check_parameters(parameters, shapes, dtype):
        if not hasattr(parameters, "keys"):
            raise TypeError(f"parameters must be a dict with keys {', '.join(shapes)}, got {type(parameters).__name__}")
        missing = [k for k in shapes if k not in parameters]
        extra = [k for k in parameters if k not in shapes]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing {', '.join(map(str, missing))}")
            if extra:
                parts.append(f"unexpected {', '.join(map(repr, extra))}")
            raise ValueError(f"parameters must have exactly the keys {', '.join(shapes)}: {'; '.join(parts)}")
        checked = {}
        for key, shape in shapes.items():
            value = parameters[key]
            arr = np.asarray(value) if not isinstance(value, np.ndarray) else value
            if arr.dtype != dtype:
                raise TypeError(f"parameter {key} has dtype {arr.dtype} but the network is {dtype.name}; "
                                f"convert it, e.g. parameters[{key!r}].astype(np.{dtype.name})")
            if arr.shape != shape:
                raise ValueError(f"parameter {key} has shape {arr.shape} but the network needs {shape}")
            if not np.isfinite(arr).all():
                raise ValueError(f"parameter {key} contains NaN or infinity")
            checked[key] = np.array(arr, dtype=dtype, order="C", copy=True)
        return checked

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
        return [ACTIVATION_CODES[a] for a in self.activations]

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
        return float(self._ops.kernels.cross_entropy(buf["A"][self.n_layers], Yd, self._eps()))

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
        iterations = _check_int(iterations, "iterations", 0)
        learning_rate = _check_learning_rate(learning_rate)
        cost_every = _check_int(cost_every, "cost_every", 1)
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

    def _drive(self, chunk, iterations, costs, cost_every, progress, m):
        """Run ``chunk(start, count) -> (done, status)`` until ``iterations`` are
        done, in chunks of about CHUNK_SECONDS. Returns (done, status), status
        DIVERGED, 0, or a KeyboardInterrupt to raise once the history is saved."""
        bar = Progress(iterations, desc=f"fit [{self.backend}]", enabled=progress)
        # The first chunk is one iteration (and any compilation), unless the
        # last fit, with as many examples, measured the chunk size.
        key = (self.backend, m)
        count = self._chunk_hint[1] if self._chunk_hint is not None and self._chunk_hint[0] == key else 1
        start, status = 0, 0
        try:
            # NumPy's overflow warnings are moot here: divergence is detected and raised
            with _deferred_interrupt() as interrupted, _blas_limited(self.backend), \
                    np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                while start < iterations:
                    count = min(count, iterations - start)
                    t0 = time.perf_counter()
                    done, status = chunk(start, count)
                    self._ops.synchronize()
                    elapsed = time.perf_counter() - t0
                    start += done
                    last = (start - 1) // cost_every
                    bar.update(done, costs[last] if start > 0 else None)
                    if status == DIVERGED:
                        break
                    if interrupted:
                        status = KeyboardInterrupt()
                        break
                    per_iteration = elapsed / max(done, 1)
                    count = max(1, min(int(CHUNK_SECONDS / per_iteration) if per_iteration > 0 else 10**6, 10**6))
                    self._chunk_hint = (key, count)
        finally:
            bar.close()
        return start, status

    def _chunk_runner(self, X, Y, costs, cost_every, learning_rate):
        """Allocate every buffer of the fit once (or take those the last fit
        kept); return chunk(start, count)."""
        p, dt = self.program, self.dtype
        W, b = p.list(self._W), p.list(self._b)
        buf, W_next, b_next, zeros, codes = self._fit_scratch(X)
        eps = self._eps()
        ops = self._ops
        optimistic = ops.syncs_are_costly
        if optimistic:  # the parameters at the start of the chunk, to go back to
            W_start = [ops.empty(w.shape, dt) for w in self._W]
            b_start = [ops.empty(v.shape, dt) for v in self._b]

        def run(fit_chunk, start, count):
            return fit_chunk(costs, W, b, W_next, b_next, buf["Z"], buf["A"], buf["dZ"], buf["dA"],
                             buf["dW"], buf["db"], zeros, Y, codes, start, count, cost_every,
                             learning_rate, eps)

        def restore():
            for l in range(len(W)):
                ops.copy(W[l], W_start[l])
                ops.copy(b[l], b_start[l])

        def chunk(start, count):
            try:
                if not optimistic:
                    return run(p.fit_chunk, start, count)
                # A device backend: run the chunk without the per-iteration test
                # (each test is a host sync), test the parameters once at its end,
                # and only if that fails (or a recorded cost is NaN/inf) run it
                # again, guarded, from its starting parameters: that run stops at
                # the exact iteration and keeps the last finite parameters.
                for l in range(len(W)):
                    ops.copy(W_start[l], W[l])
                    ops.copy(b_start[l], b[l])
                try:
                    done, status = run(p.fit_chunk_unguarded, start, count)
                    if status != DIVERGED and p.parameters_finite(W, b, zeros):
                        return done, status
                except BaseException:  # leave the parameters of a finite iteration
                    with contextlib.suppress(Exception):
                        restore()
                    raise
                restore()
                return run(p.fit_chunk, start, count)
            finally:  # the lists may have traded arrays: W, b hold the current parameters
                self._W, self._b = p.unlist(W), p.unlist(b)

        return chunk

    def _fit_scratch(self, X):
        """fit's buffers for X (n_x, m) as program lists: (buf, W_next, b_next,
        zeros, codes); buf as _buffers(X, backward=True), with A[0] = X.
        Kept for the next fit with as many examples when they are small."""
        p, dt = self.program, self.dtype
        key = (self.backend, X.shape[1])
        if self._fit_buffers is not None and self._fit_buffers[0] == key:
            A, (buf, *rest) = self._fit_buffers[1:]
        else:
            self._fit_buffers = None
            raw = self._buffers(X, backward=True)
            A = raw.pop("A")[1:]
            spare_W = [self._ops.empty(w.shape, dt) for w in self._W]
            spare_b = [self._ops.empty(v.shape, dt) for v in self._b]
            biggest = max(w.size for w in list(self._W) + list(self._b))
            zeros = self._ops.asarray(np.zeros(biggest, dtype=dt))
            buf = {k: p.list(v) for k, v in raw.items()}
            rest = [p.list(spare_W), p.list(spare_b), zeros, p.codes(self._codes())]
            kept = [A, spare_W, spare_b, [zeros]] + list(raw.values())  # X is not kept
            if sum(a.nbytes for arrays in kept for a in arrays) <= KEEP_FIT_BUFFERS_BYTES:
                self._fit_buffers = (key, A, (buf, *rest))
        # A new list each fit, not A[0] = X: a typed list's setitem called
        # from Python is compiled on its first use in every process (~0.1 s)
        return (dict(buf, A=p.list([X] + A)), *rest)

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

    LOOP_BACKENDS = ("python", "numba", "parallel")

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
        if hasattr(parameters, "keys") and "b" in parameters and np.ndim(parameters["b"]) == 0:
            b = parameters["b"]
            if isinstance(b, (bool, np.bool_)) or not isinstance(b, (numbers.Real, np.floating, np.ndarray)):
                raise TypeError(f"parameter b must be a number, got {type(b).__name__}")
            parameters = dict(parameters, b=np.full((1, 1), b, dtype=self.dtype))
        else:
            raise ValueError(f"parameters must be a dict {{'w': array ({n_x}, 1), 'b': number}}, "
                             f"got {parameters!r:.80}")
        checked = self._check_parameters(parameters, {"w": (n_x, 1), "b": (1, 1)}, self.dtype)
        return super().set_parameters({"W1": checked["w"].T.copy(), "b1": checked["b"]})

    def _loop_views(self):
        """w (n_x,) and b (1,) as views of the parameters (NumPy arrays on the loop backends)."""
        return self._W[0].reshape(self.layer_dims[0]), self._b[0].reshape(1)

    @_guard.shared
    def gradients(self, X, Y):
        """{"dw": (n_x, 1), "db": float} at the current parameters."""
        if self.backend in self.LOOP_BACKENDS:
            Xd, Yd = self._data(X, Y)
            n_x, dt = self.layer_dims[0], self.dtype
            w, b = self._loop_views()
            dw, db = np.empty(n_x, dt), np.empty(1, dt)
            parts = self._loop_parts(Xd.shape[1])
            XT = np.ascontiguousarray(Xd.T)  # examples as rows: see training.logistic_pass
            self.program.logistic_gradients(dw, db, *parts, w, b, XT, Yd, self._eps())
            return {"dw": dw.reshape(n_x, 1), "db": float(db[0])}
        g = super().gradients(X, Y)
        return {"dw": g["dW1"].T.copy(), "db": float(g["db1"][0, 0])}

    def _loop_parts(self, m):
        """The per-block partial sums: one block serially (the course's loop),
        a few per thread on "parallel"."""
        if self.backend == "parallel":
            import numba
            nblocks = max(1, min(m, 4 * numba.get_num_threads()))
        else:
            nblocks = 1
        return np.empty((nblocks, self.layer_dims[0]), self.dtype), np.empty((nblocks, 2), np.float64)

    def _chunk_runner(self, X, Y, costs, cost_every, learning_rate):
        if self.backend not in self.LOOP_BACKENDS:
            return super()._chunk_runner(X, Y, costs, cost_every, learning_rate)
        n_x, dt, p = self.layer_dims[0], self.dtype, self.program
        w, b = self._loop_views()
        w_next, b_next, dw, db = np.empty(n_x, dt), np.empty(1, dt), np.empty(n_x, dt), np.empty(1, dt)
        dw_parts, parts = self._loop_parts(X.shape[1])
        eps = self._eps()
        XT = np.ascontiguousarray(X.T)  # once per fit: examples as rows (training.logistic_pass)

        def chunk(start, count):
            return p.logistic_fit_chunk(costs, w, b, w_next, b_next, dw, db, dw_parts, parts, XT, Y,
                                        start, count, cost_every, learning_rate, eps)

        return chunk
