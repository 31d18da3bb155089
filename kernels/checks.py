"""Input checks shared by every backend's public ops.

They run once at the public boundary, before any compiled loop: a compiled
loop trusts its shapes (an out-of-bounds read there is a wrong answer or a
crash, never an error), so every inconsistency must be caught here, with a
message that says what was expected, what arrived and how to fix it.
"""

import math
import numbers

import numpy as np

from .loops import ACTIVATION_CODES

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def activation_code(name):
    """The loop code of activation ``name``; ValueError lists the valid names."""
    if not isinstance(name, str):
        raise TypeError(
            f"activation must be a name (str), got {type(name).__name__} {name!r}; "
            f"valid names: {', '.join(ACTIVATION_CODES)}"
        )
    try:
        return ACTIVATION_CODES[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; valid names: {', '.join(ACTIVATION_CODES)}"
        ) from None


def float_array(x, name, ndim, shape_text):
    """``x`` as a C-contiguous, native-order float32/float64 array of ``ndim`` dims.

    ``shape_text`` is the expected shape in the course's notation, e.g. "(n[l], m)".
    Array-likes are converted; Fortran-ordered or strided arrays are copied.
    """
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except (ValueError, TypeError) as exc:  # ragged lists and the like (not a signal handler's exception)
            raise TypeError(f"{name} must be an array of shape {shape_text}, got {type(x).__name__}: {exc}") from None
    if x.ndim != ndim:
        if ndim == 2 and x.ndim == 1:
            fix = (f"; reshape it: {name}.reshape(1, -1) for one row, {name}.reshape(-1, 1) for one column")
        elif ndim == 1:
            fix = f"; flatten it with {name}.ravel()" if x.ndim > 1 else ""
        else:
            fix = ""
        raise ValueError(
            f"{name} must be a {ndim}-D array of shape {shape_text}, got a {x.ndim}-D array "
            f"of shape {x.shape}{fix}"
        )
    if x.dtype.kind != "f" or x.dtype.itemsize not in (4, 8):
        raise TypeError(
            f"{name} has dtype {x.dtype}; expected float32 or float64. "
            f"Convert it, e.g. {name}.astype(np.float64)"
        )
    if not x.dtype.isnative:
        x = x.astype(x.dtype.newbyteorder("="))
    # not ascontiguousarray, which makes a 0-d array 1-D; "E": a plain ndarray (not a matrix or a masked array)
    return np.require(x, requirements="CE")


def same_dtype(op, arrays):
    """TypeError unless every array in the dict ``arrays`` has one dtype; returns it."""
    dtypes = {a.dtype for a in arrays.values()}
    if len(dtypes) > 1:
        listing = ", ".join(f"{k} {a.dtype}" for k, a in arrays.items())
        raise TypeError(
            f"{op} needs one floating dtype for all its inputs, got {listing}; "
            f"convert them to one dtype, e.g. with .astype(np.float64)"
        )
    return dtypes.pop()


def shape_rule(ok, message):
    if not ok:
        raise ValueError(message)


def learning_rate(lr, positive=False):
    """``lr`` as a float: a finite real number, and > 0 where ``positive``
    (training: model.network; the op gradient_step takes any finite step)."""
    if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, numbers.Real):
        raise TypeError(f"learning_rate must be a real number, got {type(lr).__name__} {lr!r}")
    try:
        value = float(lr)
    except OverflowError:  # an int past float64's range
        value = math.inf
    if positive and not (math.isfinite(value) and lr > 0):
        raise ValueError(f"learning_rate must be a finite number > 0, got {lr!r}")
    if not math.isfinite(value):
        raise ValueError(f"learning_rate must be finite, got {lr!r}")
    return value


def learning_rate_for(lr, dtype):
    """``lr`` (a checked float) where it is finite in ``dtype`` too: cast to
    float32, 1e39 is infinite, and every cell of the step would be."""
    if abs(lr) > float(np.finfo(dtype).max):
        raise ValueError(f"learning_rate {lr!r} is past the largest {np.dtype(dtype).name} ({np.finfo(dtype).max:.4g}): "
                         f"in the step's {np.dtype(dtype).name} arithmetic it is infinite; use a smaller one")
    return lr


def out_array(out, name, shape, dtype):
    """Check an ``out=`` array: an ndarray of exactly ``shape`` and ``dtype``,
    C-contiguous and writeable (the op writes there and allocates nothing)."""
    if not isinstance(out, np.ndarray) or isinstance(out, np.matrix):  # a matrix's rows index as matrices
        raise TypeError(f"{name} must be a NumPy array of shape {shape} and dtype {dtype}, got {type(out).__name__}"
                        + ("; np.asarray(it) is a plain array over the same memory"
                           if isinstance(out, np.matrix) else ""))
    if out.dtype.kind == "f" and not out.dtype.isnative:
        raise TypeError(f"{name} has dtype {out.dtype.str}, not in this CPU's byte order, which the op writes in; "
                        f"pass an array of dtype {dtype} (x.astype(x.dtype.newbyteorder('=')) converts one)")
    if out.shape != tuple(shape):
        raise ValueError(f"{name} has shape {out.shape} but the result has shape {tuple(shape)}; pass an array of shape {tuple(shape)}")
    if out.dtype != dtype:
        raise TypeError(f"{name} has dtype {out.dtype} but the result has dtype {dtype}; pass an array of dtype {dtype}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (results are written in place); pass np.empty({tuple(shape)}, dtype=np.{dtype})")
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only; pass a writeable array")
    return out


def no_overlap(out, name, inputs, elementwise=False):
    """ValueError if ``out`` shares memory with one of ``inputs`` (a dict).

    An elementwise op may write over an input that is exactly the same array
    view (each cell is read, then written, by the same iteration); any other
    overlap would let the loop read cells it already overwrote.
    """
    for in_name, x in inputs.items():
        if x is None or not np.may_share_memory(out, x):
            continue
        same = (elementwise and out.shape == x.shape and out.strides == x.strides
                and out.__array_interface__["data"][0] == x.__array_interface__["data"][0])
        if not same:
            raise ValueError(
                f"{name} overlaps the input {in_name}; this op cannot write over its input. "
                f"Pass a separate output array"
            )


def out_tuple(out, names, count_text):
    """Unpack an ``out=`` tuple of len(names) arrays."""
    if not isinstance(out, (tuple, list)) or len(out) != len(names):
        raise TypeError(f"out must be a tuple {count_text}, got {type(out).__name__}"
                        + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""))
    return tuple(out)
