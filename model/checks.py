"""The model's input checks: done once, at the public boundary, each error
saying what was expected, what arrived and how to fix it.

Shapes (the course's): X (n_x, m), examples as columns; Y (1, m) of 0/1;
W[l] (n[l], n[l-1]), b[l] (n[l], 1).
"""

import math
import numbers
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from kernels import checks as kernel_checks
from kernels.loops import ACTIVATION_CODES
from kernels.options import OUTPUTS


def check_dtype(dtype):
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError):
        dt = None
    # dt is None where NumPy made no dtype of it (dtype=None itself is NumPy's float64, the default);
    # tested first, as NumPy compares a dtype equal to None
    if dt is None or dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return dt


# The largest int the compiled loops take (they count in int64).
INT_MAX = 2**63 - 1
# Seeds are NumPy's RandomState's (the initialization, the datasets) and the
# counter-based draws' (kernels/loops/draws.py hashes 32 bits of the seed:
# a larger one would silently repeat a smaller one's draws).
SEED_MAX = 2**32 - 1


def _scalar(value):
    """A 0-d NumPy array's item (what arr.sum() or arr[()] may give), else ``value``."""
    return value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value


def check_int(value, name, minimum, maximum=INT_MAX, why="the compiled loops count in 64-bit ints"):
    if type(value) is int and minimum <= value <= maximum:  # the usual case first: fit checks several each call
        return value
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value > maximum:
        raise ValueError(f"{name} must be at most {maximum} ({why}), got {value!r}")
    return int(value)


def check_seed(seed, none_means):
    """``seed`` for NumPy's RandomState: None (``none_means`` says what it
    draws) or an int in [0, 2**32 - 1]."""
    seed = _scalar(seed)
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__} {seed!r}; "
                        f"pass e.g. seed=0 (None {none_means})")
    if not 0 <= seed <= SEED_MAX:
        raise ValueError(f"seed must be in [0, 2**32 - 1] (NumPy's RandomState seeds), got {seed!r}")
    return int(seed)


def check_learning_rate(value):
    """A finite learning rate > 0 (the kernels' check, which the op
    gradient_step uses without the sign requirement)."""
    if type(value) is float and 0.0 < value < math.inf:  # the usual case first
        return value
    return kernel_checks.learning_rate(_scalar(value), positive=True)


def _numeric(x, name, shape_text):
    """``x`` as a NumPy array of a bool/int/float dtype, or a TypeError."""
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:  # ragged nested lists and the like (not a signal handler's exception)
        raise TypeError(f"{name} must be an array of shape {shape_text}, got {type(x).__name__}: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold numbers (float, int or bool), got dtype {arr.dtype}; "
            f"{name} must be an array of shape {shape_text}")
    return arr


def _numpy_all_finite(x):
    return bool(np.isfinite(x).all())


def check_X(X, n_x, dtype, finite=True, all_finite=_numpy_all_finite):
    """X as a C-contiguous (n_x, m) array of ``dtype``, or an error that says
    how to fix it; NaN and infinity (also from the conversion to ``dtype``)
    are errors unless not ``finite``: the caller's own pass finds them (fit's
    epoch gather, logistic regression's compiled loop: FitLoop._fit_tests_X).
    ``all_finite(x)``: the test (a backend's ``host_all_finite``)."""
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
    if finite and X.dtype.kind == "f" and not all_finite(X):
        raise ValueError("X contains NaN or infinity; remove or impute those values first")
    if X.dtype == dtype and X.flags.c_contiguous:  # as fit needs it, and checked
        return _writable(X)
    with np.errstate(over="ignore"):
        X = np.ascontiguousarray(X, dtype=dtype)
    if finite and not all_finite(X):  # finite in float64 but out of float32's range
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


def check_output(output):
    if output not in OUTPUTS:
        raise ValueError(f"output must be 'sigmoid' (binary: one unit, labels 0/1) or 'softmax' (C >= 2 classes), "
                         f"got {output!r}")
    return output


def check_labels(Y, m, C, dtype):
    """Y of a softmax output as a C-contiguous one-hot (C, m) array of
    ``dtype``: from (1, m) integer labels 0..C-1, or a (C, m) one-hot array."""
    Y = _numeric(Y, "Y", f"(1, m) of labels 0..{C - 1} or (C, m) = ({C}, m) one-hot")
    if Y.ndim != 2 or Y.shape[0] not in (1, C):
        raise ValueError(f"Y must be (1, m) labels 0..{C - 1} or ({C}, m) one-hot columns, got shape {Y.shape}"
                         + ("; reshape labels: Y.reshape(1, -1)" if Y.ndim == 1 else ""))
    if Y.shape[1] != m:
        raise ValueError(f"X has m = {m} examples (columns) but Y has {Y.shape[1]}; X (n_x, m) and Y need the same m")
    if Y.shape[0] == 1:
        labels = Y[0]
        bad = ~((labels == np.round(labels)) & (labels >= 0) & (labels < C))
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            raise ValueError(f"Y's labels must be integers 0..{C - 1} (the network has C = {C} outputs), got "
                             f"{labels[j].item()!r} at column {j}")
        onehot = np.zeros((C, m), dtype=dtype)
        onehot[labels.astype(np.int64), np.arange(m)] = 1
        return onehot
    if not (((Y == 0) | (Y == 1)).all() and (Y.sum(axis=0) == 1).all()):
        j = int(np.flatnonzero(~(((Y == 0) | (Y == 1)).all(axis=0) & (Y.sum(axis=0) == 1)))[0])
        raise ValueError(f"a ({C}, m) Y must be one-hot: each column one 1 and the rest 0; column {j} is "
                         f"{Y[:, j].tolist()}")
    return _writable(np.ascontiguousarray(Y, dtype=dtype))


def check_layer_dims(layer_dims, output="sigmoid"):
    """layer_dims as a tuple of positive ints [n_x, ..., 1] (sigmoid) or [n_x, ..., C] (softmax, C >= 2)."""
    try:
        dims = list(layer_dims)
    except TypeError:
        raise TypeError(f"layer_dims must be a sequence of ints [n_x, n[1], ..., 1], got {layer_dims!r}") from None
    if len(dims) < 2 or any(isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1 for n in dims):
        raise ValueError(f"layer_dims must be at least two positive ints [n_x, ..., 1], got {layer_dims!r}")
    if output == "sigmoid" and dims[-1] != 1:
        raise ValueError(f"the output layer has one sigmoid unit (binary classification), so layer_dims "
                         f"must end in 1, got {layer_dims!r}; for C classes use output='softmax' and end in C")
    if output == "softmax" and dims[-1] < 2:
        raise ValueError(f"a softmax output needs C >= 2 units (one per class), got layer_dims {layer_dims!r}; "
                         f"for two classes with one unit use output='sigmoid'")
    return tuple(int(n) for n in dims)


def check_activations(activations, L, output="sigmoid"):
    """One hidden activation name per hidden layer, plus ``output`` for the output layer."""
    valid = ", ".join(ACTIVATION_CODES)
    if isinstance(activations, str):
        names = [activations] * (L - 1)
    else:
        try:
            names = list(activations)
        except TypeError:
            raise TypeError(f"activations must be a name or a sequence of names ({valid}), "
                            f"got {activations!r}") from None
        if len(names) == L and L > 0 and names[-1] == output:
            names = names[:-1]
        if len(names) != L - 1:
            raise ValueError(f"activations has {len(names)} names but the network has {L - 1} hidden "
                             f"layers; give one name, one per hidden layer ({L - 1}), or one per layer "
                             f"({L}, the last {output!r})")
    for name in names:
        if name not in ACTIVATION_CODES:
            raise ValueError(f"unknown activation {name!r}; valid names: {valid}")
    return tuple(names) + (output,)


def check_parameters(parameters, shapes, dtype):
    """A dict with exactly the keys of ``shapes``, each an array of that
    shape and of ``dtype``, all finite; returns C-contiguous copies."""
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


def default_init(layer_dims, activations):
    """The default initialization (see NeuralNetwork)."""
    hidden = activations[:-1]
    if len(hidden) <= 1:
        return "random"
    if all(a in ("relu", "leaky_relu") for a in hidden):
        return "he"
    return "xavier"


@dataclass(frozen=True)
class TrainingOptions:
    """fit's second-course options, checked (see NeuralNetwork.fit)."""

    batch_size: object
    shuffle: bool
    seed: int
    optimizer: object
    decay_rate: float
    decay_every: int
    l2: float
    validation: bool = False
    early_stopping: bool = False
    n_iter_no_change: int = 10
    tol: float = 1e-4
    keep_prob: tuple = ()  # per hidden layer

    @cached_property
    def plain(self):
        """True for the first course's batch gradient descent (none of the options)."""
        from kernels.options import GD
        return (self.batch_size is None and self.optimizer.code == GD and self.l2 == 0.0
                and self.decay_rate == 0.0 and not self.validation and min(self.keep_prob, default=1.0) == 1.0)

    def needs_kernels(self, ops):
        """"" if ``ops`` has the kernels these options need, else the options it lacks, as text."""
        from .program import MINIBATCH_KERNELS
        if all(hasattr(ops.kernels, k) for k in MINIBATCH_KERNELS):
            return ""
        asked = [f"batch_size={self.batch_size}" if self.batch_size is not None else "",
                 f"optimizer={self.optimizer!r}" if self.optimizer.code else "",
                 f"l2={self.l2}" if self.l2 else "", f"decay_rate={self.decay_rate}" if self.decay_rate else "",
                 "validation_data" if self.validation else "",
                 f"keep_prob={list(self.keep_prob)}" if min(self.keep_prob, default=1.0) < 1.0 else ""]
        return ", ".join(a for a in asked if a)


def check_positive(value, name):
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_nonnegative(value, name):
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


# The dropout masks keep a cell where a 24-bit draw is below keep_prob * 2**24
# (kernels/loops/draws.py): a smaller keep_prob would keep no unit at all.
KEEP_PROB_MIN = 2.0**-24


def check_keep_prob(keep_prob, hidden):
    """keep_prob as a tuple, one probability in [2**-24, 1] per hidden layer."""
    if type(keep_prob) is float and keep_prob == 1.0:  # the default, at every fit
        return (1.0,) * hidden
    keep_prob = _scalar(keep_prob)
    number = isinstance(keep_prob, numbers.Real) and not isinstance(keep_prob, bool)
    values = [keep_prob] * max(hidden, 1) if number else keep_prob
    try:
        if isinstance(values, (str, bytes)):
            raise TypeError
        values = [_scalar(v) for v in values]
    except TypeError:
        raise TypeError(f"keep_prob must be a number in (0, 1] or one per hidden layer ({hidden}), "
                        f"got {keep_prob!r}") from None
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 < v <= 1:
            raise ValueError(f"keep_prob values must be in (0, 1] (the probability of keeping a unit), got {v!r}")
        if v < KEEP_PROB_MIN:
            raise ValueError(f"keep_prob {v!r} is below 2**-24 (about 6e-08), the smallest probability the "
                             f"dropout masks draw: it would drop every unit; use a larger keep_prob")
    if hidden == 0:
        if min(values, default=1.0) < 1.0:
            raise ValueError(f"keep_prob={keep_prob!r}, but this network has no hidden layer, and dropout never "
                             f"applies to the input or the output: leave keep_prob at 1")
        return ()
    if len(values) != hidden:
        raise ValueError(f"keep_prob has {len(values)} values but the network has {hidden} hidden layers "
                         f"(dropout never applies to the input or the output): give one number or {hidden}")
    return tuple(float(v) for v in values)


# check_training_options' results by their arguments (each with its type,
# so that True and 1, or 1 and 1.0, are never taken for one another): a fit
# called again with the same options skips ~10 us of checks.
_checked_options = {}


def check_training_options(*args):
    """The second course's fit options as TrainingOptions, or an error that
    says how to fix it (the arguments of _check_training_options)."""
    try:
        key = tuple((type(a), a) for a in args)
        options = _checked_options.get(key)
    except TypeError:  # an unhashable argument (an optimizer object that is not)
        return _check_training_options(*args)
    if options is None:
        options = _check_training_options(*args)
        if len(_checked_options) >= 64:
            _checked_options.clear()
        _checked_options[key] = options
    return options


def _check_training_options(batch_size, shuffle, seed, optimizer, decay_rate, decay_every, l2,
                            validation=False, early_stopping=False, n_iter_no_change=10, tol=1e-4,
                            keep_prob=()):
    if not isinstance(early_stopping, (bool, np.bool_)):
        raise TypeError(f"early_stopping must be True or False, got {early_stopping!r}")
    if early_stopping and not validation:
        raise ValueError("early_stopping=True watches the validation cost: pass validation_data=(X_val, Y_val) "
                         "too (e.g. a held-out fifth of the training examples)")
    from . import optimizers
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size", 1)
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
    seed = check_int(seed, "seed", 0, SEED_MAX, "the batches' and dropout masks' draws hash 32 bits of it")
    return TrainingOptions(batch_size, bool(shuffle), seed, optimizers.get(optimizer),
                           check_nonnegative(decay_rate, "decay_rate"), check_int(decay_every, "decay_every", 1),
                           check_nonnegative(l2, "l2"), bool(validation), bool(early_stopping),
                           check_int(n_iter_no_change, "n_iter_no_change", 1), check_nonnegative(tol, "tol"),
                           tuple(keep_prob))
