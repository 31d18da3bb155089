"""The checked op API of backend "cuda": ``CudaOps`` and its device-array checks.

``CudaOps`` takes NumPy arrays (copied in, results copied back) or device arrays
(results stay on the device); its raw kernels are ``kernels.cuda``'s (see
``kernels.cuda.launches``), passed in by ``kernels.get_backend``.
"""

import functools
import threading

import numpy as np
from numba import cuda

from .. import checks
from ..backend import Ops
from .device import SIMULATOR

if SIMULATOR:
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray as _DeviceArray
else:
    from numba.cuda.cudadrv.devicearray import DeviceNDArray as _DeviceArray


# ------------------------------------------------------------------ the op API
def is_device_array(x):
    """True for a numba.cuda device array (or, on a GPU, any object with
    ``__cuda_array_interface__``: CuPy, PyTorch CUDA tensors)."""
    if isinstance(x, _DeviceArray):
        return True
    return not SIMULATOR and cuda.is_cuda_array(x)


def _as_device(x):
    return x if isinstance(x, _DeviceArray) else cuda.as_cuda_array(x)


def _address_range(d):
    """[start, end) in device memory of a C-contiguous device array."""
    if SIMULATOR:
        start = d._ary.__array_interface__["data"][0]
    else:
        start = d.__cuda_array_interface__["data"][0]
    return start, start + d.size * d.dtype.itemsize


def _no_device_overlap(out, name, inputs, elementwise=False):
    """checks.no_overlap for device arrays: ValueError if ``out`` shares memory
    with an input, unless the op is elementwise and it is that very array."""
    o0, o1 = _address_range(out)
    for in_name, x in inputs.items():
        if x is None or not isinstance(x, _DeviceArray):
            continue
        x0, x1 = _address_range(x)
        if o0 < x1 and x0 < o1:
            if elementwise and o0 == x0 and out.shape == x.shape:
                continue
            raise ValueError(f"{name} overlaps the input {in_name}; this op cannot write over its input. "
                             f"Pass a separate output array")


def _check_device_input(d, name, ndim, shape_text):
    """The checks of checks.float_array for a device array, with its messages."""
    if d.ndim != ndim or d.dtype not in checks.FLOAT_DTYPES:
        # a NumPy stand-in with d's shape and dtype (no memory behind it) gets the
        # very message of the other backends; float_array raises before reading it
        checks.float_array(np.lib.stride_tricks.as_strided(np.zeros(1, d.dtype), d.shape, (0,) * d.ndim),
                           name, ndim, shape_text)
    if not d.is_c_contiguous():
        raise ValueError(f"{name} is a strided view of a device array; the CUDA kernels need "
                         f"C-contiguous arrays: pass a contiguous copy of it")


def _check_device_out(d, name, shape, dtype):
    """checks.out_array for a device array."""
    shape = tuple(shape)
    if d.shape != shape:
        raise ValueError(f"{name} has shape {d.shape} but the result has shape {shape}; pass an array of shape {shape}")
    if d.dtype != dtype:
        raise TypeError(f"{name} has dtype {d.dtype} but the result has dtype {dtype}; pass an array of dtype {dtype}")
    if not d.is_c_contiguous():
        raise ValueError(f"{name} must be C-contiguous (results are written in place); "
                         f"pass cuda.device_array({shape}, dtype=np.{dtype})")


class _Call:
    """Bookkeeping of one op call: were device arrays given, which NumPy arrays
    stand behind the device copies, which device results go back where."""

    def __init__(self):
        self.on_device = False  # a device array was passed: allocated results stay there
        self.host_input = {}    # id(device copy) -> the NumPy array it was copied from
        self.given = {}         # id(device array the kernel wrote) -> the array the caller passed
        self.copy_back = []     # (device result, NumPy array to fill)

    def finish(self, result):
        for d, host in self.copy_back:
            d.copy_to_host(host)
        if isinstance(result, tuple):
            return tuple(self._back(x) for x in result)
        return self._back(result)

    def _back(self, x):
        if not isinstance(x, _DeviceArray):
            return x
        if id(x) in self.given:
            return self.given[id(x)]
        return x if self.on_device else x.copy_to_host()


def _op(method):
    """A public op of ``Ops`` run on the device: NumPy in, NumPy out; device in, device out."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        call = self._local.call = _Call()
        try:
            return call.finish(method(self, *args, **kwargs))
        finally:
            self._local.call = None
    return run


class CudaOps(Ops):
    """The op API on the GPU (see ``kernels.backend.Ops`` for each op).

    Every op takes NumPy arrays or CUDA device arrays (numba's, or any object
    with ``__cuda_array_interface__`` on a real GPU):

    - NumPy inputs are checked exactly as on the other backends, copied to the
      device, and the results the op allocates come back as NumPy arrays;
    - if any input is a device array, allocated results stay on the device
      (device arrays), and nothing is copied back;
    - an ``out=`` array is filled and returned, NumPy or device alike.

    ``cross_entropy`` returns a float and ``dot`` a scalar in either case
    (their results are copied back: 8 bytes). The model trains through
    ``ops.kernels`` (this package's raw kernels) on arrays made by
    ``ops.empty`` / ``ops.asarray``, so a fit copies data in once and out once.
    """

    syncs_are_costly = True  # the model checks the parameters once per chunk (see Ops)

    def __init__(self, name, kernels, description=""):
        if SIMULATOR:
            description += " (Numba's CUDA simulator: every GPU thread runs in Python)"
        super().__init__(name, kernels, description)
        self._local = threading.local()
        self._local.call = None

    # array hooks
    def empty(self, shape, dtype):
        """An uninitialized device array."""
        return cuda.device_array(shape, dtype=np.dtype(dtype))

    def empty_lines(self, shape, dtype):
        """empty(): the device's allocations start far past a line."""
        return self.empty(shape, dtype)

    def asarray(self, x):
        """``x`` as a C-contiguous device array (copied in from NumPy; a device
        array is returned as it is)."""
        if is_device_array(x):
            return _as_device(x)
        return cuda.to_device(np.ascontiguousarray(x))

    def to_host(self, x):
        """A NumPy array holding ``x``'s values (copied back from the device)."""
        if is_device_array(x):
            return _as_device(x).copy_to_host()
        return np.asarray(x)

    def synchronize(self):
        """Wait for every queued kernel (launches are asynchronous)."""
        cuda.synchronize()

    def copy(self, dst, src):
        """dst[...] = src for two device arrays, device to device (no host round trip)."""
        _as_device(dst).copy_to_device(_as_device(src))

    # checks and allocation, device-aware
    def _call(self):
        call = getattr(self._local, "call", None)
        return call if call is not None else _Call()

    def _array(self, x, name, ndim, shape_text):
        call = self._call()
        if is_device_array(x):
            d = _as_device(x)
            _check_device_input(d, name, ndim, shape_text)
            call.on_device = True
            return d
        # the array the copy was made from: a strided x is copied first, as on the
        # CPU backends, so an out overlapping x's memory is not one the op reads
        host = checks.float_array(x, name, ndim, shape_text)
        d = cuda.to_device(host)
        call.host_input[id(d)] = host
        return d

    def _out(self, out, name, shape, dtype, inputs, elementwise=False):
        call = self._call()
        if out is None:
            return self._empty(shape, dtype)
        if is_device_array(out):
            d = _as_device(out)
            _check_device_out(d, name, shape, dtype)
            _no_device_overlap(d, name, inputs, elementwise)
            call.on_device = True
            call.given[id(d)] = out
            return d
        # a NumPy out: the checks of every backend (overlap with the NumPy inputs
        # it was given), then a device buffer copied into it when the op is done
        checks.out_array(out, name, shape, dtype)
        host_inputs = {k: call.host_input.get(id(x)) for k, x in inputs.items()}
        checks.no_overlap(out, name, {k: x for k, x in host_inputs.items() if isinstance(x, np.ndarray)},
                          elementwise)
        d = self._empty(shape, dtype)
        call.given[id(d)] = out
        call.copy_back.append((d, out))
        return d

    def _outs(self, outs, names, shapes, dtype, inputs):
        call = self._call()
        arrays = [self._out(o, n, s, dtype, inputs) for o, n, s in zip(outs, names, shapes)]
        given = [call.given.get(id(a)) for a in arrays]
        for i in range(len(arrays)):  # the outputs must not overlap each other either
            for j in range(i + 1, len(arrays)):
                if isinstance(given[i], np.ndarray) and isinstance(given[j], np.ndarray):
                    checks.no_overlap(given[i], names[i], {names[j]: given[j]})
                elif given[i] is not None and given[j] is not None:
                    _no_device_overlap(arrays[i], names[i], {names[j]: arrays[j]})
        return arrays

    # the ops: Ops's, run on the device
    linear_forward = _op(Ops.linear_forward)
    activation_forward = _op(Ops.activation_forward)
    linear_activation_forward = _op(Ops.linear_activation_forward)
    activation_backward = _op(Ops.activation_backward)
    linear_backward = _op(Ops.linear_backward)
    linear_activation_backward = _op(Ops.linear_activation_backward)
    cross_entropy_backward = _op(Ops.cross_entropy_backward)

    def _scalar_out(self, out, value, dtype):
        """Write the scalar result into ``out`` (shape (), NumPy or device)."""
        if is_device_array(out):
            d = _as_device(out)
            _check_device_out(d, "out", (), dtype)
            d.copy_to_device(np.asarray(value, dtype=dtype))
            self._call().on_device = True
            return out
        checks.out_array(out, "out", (), dtype)
        out[()] = value
        return out

    cross_entropy = _op(Ops.cross_entropy)
    dot = _op(Ops.dot)

    @_op
    def gradient_step(self, param, grad, learning_rate, *, out=None):
        """param -= learning_rate * grad, in place (param a writeable, C-contiguous
        NumPy array or a device array); with ``out=`` the result goes there and
        param is left alone. Returns the updated array."""
        lr = checks.learning_rate(learning_rate)
        call = self._call()
        if out is None:
            if isinstance(param, np.ndarray):
                checks.out_array(param, "param", param.shape, param.dtype)
            elif not is_device_array(param):
                raise TypeError(
                    f"gradient_step updates param in place, so param must be a NumPy array or a "
                    f"CUDA device array, got {type(param).__name__}; or pass out= to receive the result")
            if param.dtype not in checks.FLOAT_DTYPES:
                raise TypeError(f"param has dtype {param.dtype}; expected float32 or float64")
        grad_d = self._array(grad, "grad", np.ndim(grad), "(same as param)")
        param_d = self._array(param, "param", np.ndim(param), "(same as grad)")
        checks.same_dtype("gradient_step", dict(param=param_d, grad=grad_d))
        checks.shape_rule(param_d.shape == grad_d.shape,
                          f"param has shape {param_d.shape} but grad has shape {grad_d.shape}; they must match")
        lr = checks.learning_rate_for(lr, param_d.dtype)
        if out is not None:
            target = self._out(out, "out", param_d.shape, param_d.dtype,
                               dict(param=param_d, grad=grad_d), elementwise=True)
        elif isinstance(param, np.ndarray):  # in place: update the device copy, copy it back into param
            host_grad = call.host_input.get(id(grad_d))  # what grad's copy was made from (None: on the device)
            checks.no_overlap(param, "param", dict(grad=host_grad) if host_grad is not None else {},
                              elementwise=True)
            target = param_d
            call.given[id(param_d)] = param
            call.copy_back.append((param_d, param))
        else:
            _no_device_overlap(param_d, "param", dict(grad=grad_d), elementwise=True)
            target = param_d
            call.given[id(param_d)] = param
        self.kernels.gradient_step(target, param_d, grad_d, lr)
        return target
