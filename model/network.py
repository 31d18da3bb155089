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

import functools
import math
import operator

import numpy as np

import kernels
from kernels.loops import ACTIVATION_CODES, SOFTMAX
from kernels.loops.plans import SMALL_PLANS, plan_tier, plans_needed

from . import _guard
from .checks import (check_activations, check_dtype, check_int, check_keep_prob, check_labels, check_layer_dims,
                     check_learning_rate, check_output, check_parameters, check_positive, check_seed,
                     check_training_options, check_X, check_Y, default_init)
from .fit import FitLoop
from .inference import Inference
from .persistence import Persistence
from .program import get_program
from .training import DIVERGED, FINISHED, X_NOT_FINITE


@functools.lru_cache(maxsize=256)
def _plans_needed(layer_dims, ms, itemsize):
    """plans_needed, remembered: every fit, predict and cost asks it again."""
    return plans_needed(list(layer_dims), ms, itemsize)


__all__ = ["NeuralNetwork", "DivergenceError", "INITIALIZATIONS"]

INITIALIZATIONS = ("random", "he", "xavier", "zeros")
# the cost's clip (machine epsilon) by dtype: np.finfo is slow to ask at every call
_EPS = {np.dtype(t): float(np.finfo(t).eps) for t in (np.float32, np.float64)}


class DivergenceError(FloatingPointError):
    """fit stopped because the cost or a parameter became NaN or infinite.
    The network keeps the parameters of the last finite iteration."""



# What a network is made with, read-only afterwards: its parameters, kept
# buffers and compiled training loop are shaped by them, so a change would
# hand compiled code arrays of other shapes or types (a crash, not an error).
FIXED = ("layer_dims", "activations", "output", "dtype", "backend", "init", "init_scale", "seed")


def _fixed(name):
    """The read-only attribute ``name`` (FIXED), held in ``_<name>``."""

    def refuse(self, *value):
        raise AttributeError(
            f"{type(self).__name__}.{name} is fixed when the network is made (its parameters, buffers and compiled "
            f"training loop follow it): make a new network with the {name} you want; to take trained "
            f"parameters to another backend, save the network and NeuralNetwork.load(path, backend=...)")

    return property(operator.attrgetter("_" + name), refuse, refuse,
                    doc=f"The network's {name}, as it was made (read-only).")


class NeuralNetwork(Inference, FitLoop, Persistence):
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
    init_scale : None or a number > 0
        "random": the standard deviation instead of 0.01 (the course's "large
        random" initialization is 10); "he", "xavier": a factor on theirs.

    Attributes after fit: ``costs_`` (1-D: the cost at iterations 0, cost_every,
    ... of each fit, appended across fits), ``cost_iterations_`` (the iteration
    number, counted over all fits, of each entry of ``costs_``), ``n_iter_``
    (iterations done in all). ``set_parameters`` clears them.
    """

    def __init__(self, layer_dims, activations="relu", backend="numpy", init=None, seed=None,
                 dtype="float64", init_scale=None, output="sigmoid"):
        self._guard = _guard.Guard()
        self._output = check_output(output)
        self._layer_dims = check_layer_dims(layer_dims, self.output)
        self._activations = check_activations(activations, len(self.layer_dims) - 1, self.output)
        self._made_as(default_init(self.layer_dims, self.activations) if init is None else init, init_scale, seed)
        self._dtype = check_dtype(dtype)
        self._set_backend(backend)
        if self.output == "softmax" and not hasattr(self._ops.kernels, "softmax"):
            raise ValueError(f"backend {self.backend!r} has no softmax output yet (output='softmax'); "
                             f"use one of the CPU backends ('numba', 'parallel', 'numpy', 'python')")
        self._W, self._b = self._initial_parameters()
        self._clear_history()

    layer_dims, activations, output, dtype, backend, init, init_scale, seed = (_fixed(name) for name in FIXED)

    def _made_as(self, init, init_scale, seed):
        """Record how the first parameters are (or were) made: the
        constructor's, and a loaded or copied network's, which keeps the
        saved one's (its parameters are the saved ones)."""
        if init not in INITIALIZATIONS:
            raise ValueError(f"unknown init {init!r}; valid: {', '.join(INITIALIZATIONS)} (or None for the default)")
        self._init = init
        self._init_scale = None if init_scale is None else check_positive(init_scale, "init_scale")
        self._seed = check_seed(seed, "draws fresh parameters every time")

    # ------------------------------------------------------------ construction
    def _set_backend(self, backend):
        self._ops = kernels.get_backend(backend)
        self._backend = self._ops.name
        self._program = None  # compiled (or bound) on first use
        self._plans = SMALL_PLANS  # the products' plans the shapes so far reach (see _program_for)
        self._fit_buffers = None  # buffers and lists kept for the next fit: see KEEP_FIT_BUFFERS_BYTES
        self._chunk_hint = None  # (key, iterations per chunk) of the last fit
        self._optimizer_state = None  # the optimizer's moments, steps and epochs: see fit
        self._parameter_lists_kept = None  # (program, _W, _b, W list, b list): see _parameter_lists

    @property
    def program(self):
        """The training loop bound to this network's backend (``model.program``),
        compiled for the products' plans its shapes so far have reached."""
        if self._program is None:
            self._program = get_program(self._ops, self._plans)
        return self._program

    def _parameter_lists(self, p):
        """W, b as program ``p``'s lists: the last fit's while ``_W`` and
        ``_b`` are the very lists it left (``_keep_parameter_lists``), new
        ones otherwise (a typed list made from Python costs microseconds, a
        large part of a short fit's call)."""
        kept = self._parameter_lists_kept
        if kept is not None and kept[0] is p and kept[1] is self._W and kept[2] is self._b:
            return kept[3], kept[4]
        return p.list(self._W), p.list(self._b)

    def _keep_parameter_lists(self, p, W, b, traded=True):
        """After a run of ``p`` on the lists W, b: ``_W``, ``_b`` hold their
        arrays (read back only where the run may have ``traded`` them with
        the spare ones), and the lists are kept for the next run."""
        if traded:
            self._W, self._b = p.unlist(W), p.unlist(b)
        self._parameter_lists_kept = (p, self._W, self._b, W, b)

    def _program_for(self, *ms):
        """``program``, grown to the plans batches of each m in ``ms`` reach
        (kernels.loops.plans.plans_needed, rounded up by plan_tier): a
        compiled backend compiles only those, and a network's set only grows
        (a bigger one compiles once more)."""
        plans = plan_tier(self._plans | _plans_needed(tuple(self.layer_dims), ms, self.dtype.itemsize))
        if plans != self._plans:
            self._plans, self._program = plans, None
        return self.program

    def _initial_parameters(self):
        rng = np.random.RandomState(self.seed)
        W, b = [], []
        for l in range(1, len(self.layer_dims)):
            n, k = self.layer_dims[l], self.layer_dims[l - 1]
            with np.errstate(over="ignore"):  # a huge init_scale: the error below
                if self.init == "zeros":
                    w = np.zeros((n, k))
                elif self.init == "random":  # the course's randn * 0.01, or * init_scale ("large random": 10)
                    w = rng.randn(n, k) * (0.01 if self.init_scale is None else self.init_scale)
                else:
                    factor = 1.0 if self.init_scale is None else self.init_scale
                    w = rng.randn(n, k) * (math.sqrt((2.0 if self.init == "he" else 1.0) / k) * factor)
                w = w.astype(self.dtype)
            if not np.isfinite(w).all():
                raise ValueError(f"init_scale={self.init_scale!r} makes weights too large for {self.dtype.name} "
                                 f"(they become infinite); use a smaller init_scale")
            W.append(self._ops.asarray(w))
            b.append(self._ops.asarray(np.zeros((n, 1), dtype=self.dtype)))
        return W, b

    def _appended(self, name, values):
        """The history attribute ``name`` with ``values`` after it: a view of
        a buffer with room to spare (kept in _history_buffers, not pickled),
        so that the fits of a long run of short ones each append in time of
        their own entries, not of the whole history (a concatenation each fit
        copied all of it: quadratic in the fits). Where the attribute is not
        the buffer's view (set otherwise, unpickled), a new buffer."""
        current = getattr(self, name)
        n, r = len(current), len(values)
        buffers = self.__dict__.setdefault("_history_buffers", {})
        buf = buffers.get(name)
        if buf is None or current.base is not buf or n + r > len(buf):
            buf = np.empty(max(2 * (n + r), 16), dtype=current.dtype)
            buf[:n] = current
            buffers[name] = buf
        buf[n:n + r] = values
        return buf[:n + r]

    def _clear_history(self):
        self.costs_ = np.zeros(0)
        self.val_costs_ = np.zeros(0)
        self.best_epoch_ = None
        self.cost_iterations_ = np.zeros(0, dtype=np.int64)
        self.n_iter_ = 0

    def __repr__(self):
        hidden = self.activations[:-1]
        act = hidden[0] if len(set(hidden)) == 1 else list(hidden)
        output = ", output='softmax'" if self.output == "softmax" else ""
        return (f"{type(self).__name__}({list(self.layer_dims)}, activations={act!r}{output}, "
                f"backend={self.backend!r}, init={self.init!r}, seed={self.seed!r}, dtype={self.dtype.name!r})")

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
        dtype, all finite. Clears ``costs_`` and ``n_iter_``, and the optimizer's
        state (as a loaded network has none: the next fit starts it afresh).
        Returns self."""
        checked = check_parameters(parameters, self._parameter_shapes(), self.dtype)
        L = self.n_layers
        self._W = [self._ops.asarray(checked[f"W{l + 1}"]) for l in range(L)]
        self._b = [self._ops.asarray(checked[f"b{l + 1}"]) for l in range(L)]
        self._clear_history()
        self._optimizer_state = None  # moments of other parameters: the next fit starts its optimizer afresh
        return self

    # --------------------------------------------------------- data and buffers
    def _data(self, X, Y=None, finite=True):
        """Checked X (and Y) as backend arrays; X tested for NaN and infinity
        unless not ``finite`` (the caller tests it: see _gathers)."""
        self._ops.check_ready()
        Xh = check_X(X, self.layer_dims[0], self.dtype, finite, self._ops.host_all_finite)
        Xd = self._ops.asarray(Xh)
        if Y is None:
            return Xd
        if self.output == "softmax":
            return Xd, self._ops.asarray(check_labels(Y, Xh.shape[1], self.layer_dims[-1], self.dtype))
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
        p = self._program_for(X.shape[1])
        buf = {k: p.list(v) for k, v in self._buffers(X, backward=False).items()}
        p.forward(buf["Z"], buf["A"], *self._parameter_lists(p), p.codes(self._codes()), 0)
        self._check_output(buf["Z"][self.n_layers - 1], X)
        return buf

    def _codes(self):
        """The layers' activation codes for the raw kernels (with the backend's exact-math bit)."""
        codes = dict(ACTIVATION_CODES, softmax=SOFTMAX)
        return [codes[a] | self._ops.act_bits for a in self.activations]

    def _eps(self):
        return _EPS[self.dtype]

    # ------------------------------------------------------------------- fit
    @_guard.exclusive
    def fit(self, X, Y, epochs=None, learning_rate=None, *, iterations=None, batch_size=None, shuffle=True,
            seed=0, optimizer="gd", decay_rate=0.0, decay_every=1, l2=0.0, keep_prob=1.0, validation_data=None,
            early_stopping=False, n_iter_no_change=10, tol=1e-4, cost_every=100, progress=False):
        """Train, the course's way. X (n_x, m); Y (1, m) of 0/1. Continues from
        the current parameters. Returns self.

        With the defaults, batch gradient descent (the first course): each epoch
        (``iterations=`` is its name there) one forward propagation, cost,
        backward propagation and update of every parameter on all m examples.
        The second course's options:

        - ``batch_size``: mini-batches (None: all m). Each epoch a permutation
          of the columns (``shuffle``; drawn from ``seed`` and the epoch, the
          same on every backend) cut in consecutive batches, the last one
          smaller when batch_size does not divide m; shuffle=False takes X's
          columns in order.
        - ``optimizer``: "gd", "momentum", "rmsprop", "adam" or an instance of
          model.optimizers (their hyper-parameters). Its state (moments, step
          count, the epochs the decay counts) carries over to the next fit
          while the optimizer, decay_rate, decay_every and dtype stay the same.
        - ``decay_rate``, ``decay_every``: epoch e uses learning_rate / (1 +
          decay_rate * floor(e / decay_every)).
        - ``l2``: L2 regularization, the course's lambda: dW += (l2 / m) W
          (m the batch's size).
        - ``keep_prob``: inverted dropout on the hidden layers (a number, or
          one per hidden layer; never the input or the output): each unit kept
          with that probability and scaled by 1 / keep_prob, the same mask in
          backward, drawn from ``seed`` and the step (the same on every
          backend). cost, predict and gradients never drop units.
        - ``validation_data=(X_val, Y_val)``: ``val_costs_`` records the
          validation cost after the epochs ``costs_`` is recorded at (NaN for
          fits without). ``early_stopping=True`` checks it after every epoch
          and stops when it has not improved by more than ``tol`` for
          ``n_iter_no_change`` epochs in a row; then, or when the epochs run
          out first, the network takes the parameters of the best epoch
          (``best_epoch_``, counted over all fits), as scikit-learn's MLP does.

        ``costs_`` records, at epochs 0, cost_every, 2 cost_every, ... of this
        fit, the cost of the epoch's forward passes (before their updates; the
        mean over the epoch's examples of each batch's loss; no L2 term).
        ``progress=True`` shows a progress bar on stderr.

        Raises DivergenceError if the cost or a parameter becomes NaN or
        infinite (the network keeps the last finite parameters and the epochs
        done count). A Ctrl-C stops fit between two epochs, leaving the
        parameters of the last completed one.
        """
        epochs = self._epochs(epochs, iterations)
        if learning_rate is None:
            raise TypeError("fit() needs a learning_rate (a finite number > 0), e.g. fit(X, Y, 100, 0.1)")
        learning_rate = check_learning_rate(learning_rate)
        cost_every = check_int(cost_every, "cost_every", 1)
        if not isinstance(progress, (bool, np.bool_)):
            raise TypeError(f"progress must be True or False, got {progress!r}")
        options = check_training_options(batch_size, shuffle, seed, optimizer, decay_rate, decay_every, l2,
                                         validation_data is not None, early_stopping, n_iter_no_change, tol,
                                         check_keep_prob(keep_prob, self.n_layers - 1))
        Xd, Yd = self._data(X, Y, finite=not (epochs and self._fit_tests_X(X, options)))
        validation = self._validation_data(validation_data)
        costs, val_costs = self._cost_records(epochs, cost_every, validation is not None)
        previous_state = self._optimizer_state  # back in place if the fit's own test refuses X
        if options.plain:  # the course's batch gradient descent: its own, leaner loop
            self._optimizer_state = None
            chunk = self._chunk_runner(Xd, Yd, costs, cost_every, learning_rate)
            key = (self.backend, Xd.shape[1])
        else:
            missing = options.needs_kernels(self._ops)
            if missing:
                raise ValueError(f"backend {self.backend!r} trains with full-batch gradient descent only: "
                                 f"{missing} needs one of the CPU backends ('numba', 'parallel', 'numpy', "
                                 f"'python'); its raw kernels lack optimizer_step and the mini-batch gather")
            chunk = self._epoch_runner(Xd, Yd, costs, cost_every, learning_rate, options, validation, val_costs)
            key = (self.backend, Xd.shape[1], options.batch_size)
        done, status = self._drive(chunk, epochs, costs, cost_every, progress, key)
        if not options.plain:
            self._optimizer_state["epochs"] += done
        recorded = -(-done // cost_every)
        if options.early_stopping and self._early_stopping_track[2] >= 0:
            self.best_epoch_ = self.n_iter_ + int(self._early_stopping_track[2]) - (
                self._optimizer_state["epochs"] - done)
        best = self.__dict__.pop("_early_stopping_best", None)  # (W_best, b_best): not kept past the fit
        track = self._early_stopping_track if options.early_stopping else None
        if track is not None and status == FINISHED and track[2] >= 0 and track[1] > 0:
            self._restore_best(*best)  # the epochs ran out before the patience: the best epoch's, too
        self.costs_ = self._appended("costs_", costs[:recorded])
        self.val_costs_ = self._appended("val_costs_", val_costs[:recorded] if validation is not None
                                         else np.full(recorded, np.nan))
        self.cost_iterations_ = self._appended("cost_iterations_",
                                               np.arange(self.n_iter_, self.n_iter_ + done, cost_every))
        self.n_iter_ += done
        if status == DIVERGED:
            unit = "iteration" if options.plain else "epoch"  # the first course's word, or the second's
            raise DivergenceError(
                f"training diverged at {unit} {done} of this fit ({self.n_iter_} {unit}s done in all): "
                f"the cost or a parameter became NaN or infinite with learning_rate={learning_rate:g}. "
                f"Use a smaller learning rate (e.g. {learning_rate / 10:g}), or scale X where its values are "
                f"large (its largest magnitude: {float(np.max(np.abs(self._ops.to_host(Xd)))):.3g}); the network "
                f"keeps the parameters of the last finite step")
        if status == X_NOT_FINITE:  # the gather's test (no step made with it): check_X's own message
            self._optimizer_state = previous_state  # another optimizer's fresh state must not replace it
            check_X(X, self.layer_dims[0], self.dtype)
            raise ValueError("X contains NaN or infinity; remove or impute those values first")
        if isinstance(status, BaseException):  # a Ctrl-C, or a signal handler's exception: after the history
            raise status
        return self

    def _validation_data(self, validation_data):
        """(Xv, Yv) as backend arrays, or None."""
        if validation_data is None:
            return None
        try:
            Xv, Yv = validation_data
        except (TypeError, ValueError):
            raise TypeError(f"validation_data must be a pair (X_val, Y_val) of shapes (n_x, m_val) and "
                            f"(1, m_val), got {type(validation_data).__name__}") from None
        try:
            return self._data(Xv, Yv)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"validation_data: {exc}") from None

    @staticmethod
    def _epochs(epochs, iterations):
        if epochs is not None and iterations is not None:
            raise TypeError(f"fit() got epochs={epochs!r} and iterations={iterations!r}; iterations is full-batch "
                            f"training's name for epochs: give one of them")
        if epochs is None and iterations is None:
            raise TypeError("fit() needs the number of epochs (or iterations, its full-batch name), "
                            "e.g. fit(X, Y, epochs=100, learning_rate=0.1)")
        if epochs is None:
            return check_int(iterations, "iterations", 0)
        return check_int(epochs, "epochs", 0)
