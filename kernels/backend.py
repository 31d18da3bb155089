"""The op API, the same on every backend: checks, allocation, then a kernel.

``Ops`` wraps a namespace of raw kernels (``kernels.loops``, the compiled
variants in ``kernels.cpu``, or ``kernels.vectorized``) whose signatures are
outputs first, then inputs. Each public op validates its inputs
(``kernels.checks``), allocates its outputs unless ``out=`` is given, and calls
the kernel. ``ops.kernels`` exposes the raw, unchecked kernels for callers that
have validated their inputs already (the model layer).

Shapes in the course's notation: A_prev (n[l-1], m), W (n[l], n[l-1]),
b (n[l], 1), Z, A, dZ, dA (n[l], m), AL, Y (1, m).
"""

import numpy as np

from . import checks
from .loops import EXACT
from .loops.memory import LINE_BYTES

_A_PREV = "(n[l-1], m)"
_W = "(n[l], n[l-1])"
_B = "(n[l], 1)"
_Z = "(n[l], m)"
_AL = "(1, m)"
# all_finite's second argument (unused on the CPU), by dtype: one compiled signature each
_ZEROS = {np.dtype(np.float32): np.zeros(1, np.float32), np.dtype(np.float64): np.zeros(1, np.float64)}


class Ops:
    """The ops of one backend. Get one with ``kernels.get_backend(name)``."""

    # A device backend sets this: there every value the host reads (a cost, a
    # finiteness test) waits for all queued kernels and copies across the bus,
    # so the model tests the parameters once per chunk of iterations instead of
    # once per iteration (see model.network, NeuralNetwork._chunk_runner).
    syncs_are_costly = False

    def __init__(self, name, kernels, description="", exact_math=False, ready=None, loops=False,
                 parallel=False, compiled=False):
        self.name = name
        # compiled: the kernels are machine code (Numba's), cheap to call on a host array
        self.compiled = bool(compiled)
        # loops: the kernels are the explicit-loop formulation (kernels.loops,
        # interpreted or compiled); parallel: they run on all cores (the model
        # keeps NumPy's BLAS to one thread meanwhile, so the two do not compete).
        self.loops = bool(loops)
        self.parallel = bool(parallel)
        # ready(): raises RuntimeError where the backend cannot run in this
        # process (the parallel backend in a child forked after GNU OpenMP
        # started: kernels.threads); every public op and the model call it.
        self._ready = ready
        self.kernels = kernels
        self.description = description
        # exact_math (loop backends only): tanh, sigmoid, the softmax's exp and
        # the cost's log from the C math library instead of the vectorizable
        # approximations of kernels.approx (see kernels.loops.EXACT).
        self.exact_math = bool(exact_math)
        # OR-ed into the activation codes handed to the raw kernels
        self.act_bits = EXACT if exact_math else 0

    def __repr__(self):
        exact = ", exact math" if self.exact_math else ""
        return f"<jitloops backend {self.name!r}: {self.description}{exact}>"

    def _activation(self, activation):
        return checks.activation_code(activation) | self.act_bits

    # Array hooks: a device backend (CUDA) overrides these so the model can
    # keep its arrays where the backend's kernels read them.
    def empty(self, shape, dtype):
        """An uninitialized array of the backend's own kind (NumPy here)."""
        return np.empty(shape, dtype=dtype)

    def empty_lines(self, shape, dtype):
        """empty(), its first cell at the start of a 64-byte cache line: the
        epoch's gather of a large X writes whole lines there with streaming
        stores (kernels.loops.memory). A device backend: its empty()."""
        dtype = np.dtype(dtype)
        count = int(np.prod(shape))
        raw = np.empty(count * dtype.itemsize + LINE_BYTES, dtype=np.uint8)
        skip = -raw.ctypes.data % LINE_BYTES
        return raw[skip:skip + count * dtype.itemsize].view(dtype).reshape(shape)

    def asarray(self, x):
        """``x`` (a NumPy array) as an array the raw kernels take: C-contiguous
        (on the device, for a device backend). CPU backends return ``x`` itself
        when it already is C-contiguous."""
        return np.ascontiguousarray(x)

    def to_host(self, x):
        """A NumPy array holding ``x``'s values (``x`` itself on CPU backends)."""
        return np.asarray(x)

    def host_all_finite(self, x):
        """Whether no cell of the NumPy array ``x`` is NaN or +-inf: the
        model's test of X at every fit and predict. The compiled backends
        (``compiled``) run their all_finite loop on a C-contiguous float32 or
        float64 matrix: no temporary the size of x, which NumPy's
        isfinite(x).all() allocates, writes and reads again."""
        flags = x.flags  # a read-only or unaligned array would compile another signature: NumPy's test there
        if self.compiled and x.ndim == 2 and x.dtype in _ZEROS and flags.c_contiguous and flags.writeable \
                and flags.aligned:
            return bool(self.kernels.all_finite(x, _ZEROS[x.dtype]))
        return bool(np.isfinite(x).all())

    def synchronize(self):
        """Wait for queued work (a no-op on CPU backends); call before reading a clock."""

    def copy(self, dst, src):
        """dst[...] = src for two arrays of the backend's kind of one shape and
        dtype (device to device on a device backend: nothing crosses to the host)."""
        np.copyto(dst, src)

    def check_ready(self):
        """Raise RuntimeError, saying why and how to fix it, if this backend
        cannot run in this process; else do nothing."""
        if self._ready is not None:
            self._ready()

    def _array(self, x, name, ndim, shape_text):
        self.check_ready()  # every public op checks its inputs here first
        return checks.float_array(x, name, ndim, shape_text)

    def _empty(self, shape, dtype):
        return self.empty(shape, dtype)

    def _out(self, out, name, shape, dtype, inputs, elementwise=False):
        if out is None:
            return self._empty(shape, dtype)
        checks.out_array(out, name, shape, dtype)
        checks.no_overlap(out, name, inputs, elementwise)
        return out

    def _outs(self, outs, names, shapes, dtype, inputs):
        arrays = []
        for o, n, s in zip(outs, names, shapes):
            arrays.append(self._out(o, n, s, dtype, inputs))
        for i in range(len(arrays)):  # the outputs must not overlap each other either
            checks.no_overlap(arrays[i], names[i], dict(zip(names[i + 1:], arrays[i + 1:])))
        return arrays

    # ---------------------------------------------------------------- shapes
    def _linear_inputs(self, op, A_prev, W, b):
        A_prev = self._array(A_prev, "A_prev", 2, _A_PREV)
        W = self._array(W, "W", 2, _W)
        b = self._array(b, "b", 2, _B)
        dtype = checks.same_dtype(op, dict(A_prev=A_prev, W=W, b=b))
        n, k = W.shape
        checks.shape_rule(
            A_prev.shape[0] == k,
            f"W has shape {W.shape} but A_prev has {A_prev.shape[0]} rows; "
            f"W must be {_W} and A_prev {_A_PREV}, so A_prev needs {k} rows "
            f"(examples are columns: did you pass A_prev.T?)",
        )
        checks.shape_rule(
            b.shape == (n, 1),
            f"b has shape {b.shape} but W has shape {W.shape}; b must be {_B} = ({n}, 1)",
        )
        return A_prev, W, b, dtype

    def _backward_inputs(self, op, dZ, A_prev, W, dZ_name="dZ"):
        A_prev = self._array(A_prev, "A_prev", 2, _A_PREV)
        W = self._array(W, "W", 2, _W)
        dtype = checks.same_dtype(op, {dZ_name: dZ, "A_prev": A_prev, "W": W})
        n, k = W.shape
        checks.shape_rule(
            dZ.shape[0] == n,
            f"{dZ_name} has shape {dZ.shape} but W has shape {W.shape}; "
            f"{dZ_name} must be {_Z} with n[l] = {n} rows",
        )
        checks.shape_rule(
            A_prev.shape == (k, dZ.shape[1]),
            f"A_prev has shape {A_prev.shape} but W has shape {W.shape} and {dZ_name} {dZ.shape}; "
            f"A_prev must be {_A_PREV} = ({k}, {dZ.shape[1]})",
        )
        checks.shape_rule(dZ.shape[1] >= 1, f"{op} needs at least one example: {dZ_name} has shape {dZ.shape}, "
                                            f"and dW = (1/m) dZ A_prev^T, db = (1/m) sum(dZ) divide by m")
        return A_prev, W, dtype

    def _product_kernels(self, *factors):
        """The raw kernels for a product: this backend's, or NumPy's where one
        of ``factors`` (those the loops' sparse tiles multiply by the other
        factor's zeros: W, and A_prev in dW) holds a NaN or an infinity. The
        tiles leave a multiply by zero out (products/sparse.py), where NumPy
        forms 0 x inf = NaN: the reference's answer for such inputs."""
        if self.loops and not all(self.host_all_finite(x) for x in factors):
            from . import vectorized
            return _NumPyKernels(vectorized)
        return self.kernels

    def _cost_inputs(self, op, AL, Y):
        AL = self._array(AL, "AL", 2, _AL)
        Y = self._array(Y, "Y", 2, _AL)
        checks.same_dtype(op, dict(AL=AL, Y=Y))
        checks.shape_rule(
            AL.shape[0] == 1 and AL.shape[1] >= 1,
            f"AL must be {_AL} with at least one example, got shape {AL.shape}",
        )
        checks.shape_rule(
            Y.shape == AL.shape,
            f"Y has shape {Y.shape} but AL has shape {AL.shape}; both must be {_AL}",
        )
        return AL, Y, float(np.finfo(AL.dtype).eps)

    # ------------------------------------------------------------------- ops
    def linear_forward(self, A_prev, W, b, *, out=None):
        """Z = W A_prev + b. A_prev (n[l-1], m), W (n[l], n[l-1]), b (n[l], 1) -> Z (n[l], m)."""
        A_prev, W, b, dtype = self._linear_inputs("linear_forward", A_prev, W, b)
        Z = self._out(out, "out", (W.shape[0], A_prev.shape[1]), dtype, dict(A_prev=A_prev, W=W, b=b))
        self._product_kernels(W).linear_forward(Z, A_prev, W, b)
        return Z

    def activation_forward(self, Z, activation, *, out=None):
        """A = g(Z) elementwise; Z (n[l], m) -> A (n[l], m). ``out`` may be Z itself."""
        act = self._activation(activation)
        Z = self._array(Z, "Z", 2, _Z)
        A = self._out(out, "out", Z.shape, Z.dtype, dict(Z=Z), elementwise=True)
        self.kernels.activation_forward(A, Z, act)
        return A

    def linear_activation_forward(self, A_prev, W, b, activation, *, out=None):
        """Z = W A_prev + b and A = g(Z), fused in one pass. Returns (Z, A), each (n[l], m)."""
        act = self._activation(activation)
        A_prev, W, b, dtype = self._linear_inputs("linear_activation_forward", A_prev, W, b)
        shape = (W.shape[0], A_prev.shape[1])
        outs = (None, None) if out is None else checks.out_tuple(out, ("Z", "A"), "(Z, A) of two arrays")
        Z, A = self._outs(outs, ("out[0] (Z)", "out[1] (A)"), (shape, shape), dtype,
                          dict(A_prev=A_prev, W=W, b=b))
        self._product_kernels(W).linear_activation_forward(Z, A, A_prev, W, b, act)
        return Z, A

    def activation_backward(self, dA, Z, activation, *, out=None):
        """dZ = dA * g'(Z); dA, Z (n[l], m) -> dZ (n[l], m). g'(0) = 0 for relu, 0.01 for leaky_relu."""
        act = self._activation(activation)
        dA = self._array(dA, "dA", 2, _Z)
        Z = self._array(Z, "Z", 2, _Z)
        checks.same_dtype("activation_backward", dict(dA=dA, Z=Z))
        checks.shape_rule(dA.shape == Z.shape,
                          f"dA has shape {dA.shape} but Z has shape {Z.shape}; both must be {_Z}")
        dZ = self._out(out, "out", Z.shape, Z.dtype, dict(dA=dA, Z=Z), elementwise=True)
        self.kernels.activation_backward(dZ, dA, Z, act)
        return dZ

    def linear_backward(self, dZ, A_prev, W, *, out=None):
        """dA_prev = W^T dZ, dW = (1/m) dZ A_prev^T, db = (1/m) sum(dZ, axis=1).

        dZ (n[l], m), A_prev (n[l-1], m), W (n[l], n[l-1]) -> (dA_prev, dW, db).
        """
        dZ = self._array(dZ, "dZ", 2, _Z)
        A_prev, W, dtype = self._backward_inputs("linear_backward", dZ, A_prev, W)
        n, k = W.shape
        outs = (None,) * 3 if out is None else checks.out_tuple(out, "123", "(dA_prev, dW, db) of three arrays")
        dA_prev, dW, db = self._outs(
            outs, ("out[0] (dA_prev)", "out[1] (dW)", "out[2] (db)"),
            ((k, dZ.shape[1]), (n, k), (n, 1)), dtype, dict(dZ=dZ, A_prev=A_prev, W=W))
        self._product_kernels(W, A_prev).linear_backward(dA_prev, dW, db, dZ, A_prev, W)
        return dA_prev, dW, db

    def linear_activation_backward(self, dA, Z, A_prev, W, activation, *, out=None):
        """dZ = dA * g'(Z), then linear_backward, fused. Returns (dA_prev, dW, db).

        dA, Z (n[l], m), A_prev (n[l-1], m), W (n[l], n[l-1]). The op needs dZ
        (n[l], m) as working memory: pass ``out=(dA_prev, dW, db, dZ)`` to allocate
        nothing (dZ is then also filled in); ``out=(dA_prev, dW, db)`` allocates dZ.
        """
        act = self._activation(activation)
        dA = self._array(dA, "dA", 2, _Z)
        Z = self._array(Z, "Z", 2, _Z)
        checks.shape_rule(dA.shape == Z.shape,
                          f"dA has shape {dA.shape} but Z has shape {Z.shape}; both must be {_Z}")
        A_prev, W, dtype = self._backward_inputs("linear_activation_backward", Z, A_prev, W, "Z")
        checks.same_dtype("linear_activation_backward", dict(dA=dA, Z=Z))
        n, k = W.shape
        m = Z.shape[1]
        if out is None:
            outs = (None,) * 4
        else:
            if isinstance(out, (tuple, list)) and len(out) == 3:
                out = tuple(out) + (None,)
            outs = checks.out_tuple(out, "1234", "(dA_prev, dW, db) or (dA_prev, dW, db, dZ)")
        dA_prev, dW, db, dZ = self._outs(
            outs, ("out[0] (dA_prev)", "out[1] (dW)", "out[2] (db)", "out[3] (dZ)"),
            ((k, m), (n, k), (n, 1), (n, m)), dtype, dict(dA=dA, Z=Z, A_prev=A_prev, W=W))
        self._product_kernels(W, A_prev).linear_activation_backward(dA_prev, dW, db, dZ, dA, Z, A_prev, W, act)
        return dA_prev, dW, db

    def cross_entropy(self, AL, Y, *, out=None):
        """J = -(1/m) sum(Y log AL + (1 - Y) log(1 - AL)); AL, Y (1, m).

        AL is clipped to [eps, 1 - eps] (eps the dtype's machine epsilon), so
        the cost is finite even where AL is exactly 0 or 1. Returns a float
        (accumulated in float64), or writes it into ``out``, a float64 array of
        shape (), and returns ``out``.
        """
        AL, Y, eps = self._cost_inputs("cross_entropy", AL, Y)
        J = self.kernels.cross_entropy(AL, Y, eps, self.exact_math)
        return float(J) if out is None else self._scalar_out(out, float(J), np.dtype(np.float64))

    def cross_entropy_backward(self, AL, Y, *, out=None):
        """dAL = -(Y / AL - (1 - Y) / (1 - AL)); AL, Y (1, m) -> dAL (1, m).

        AL is clipped to [eps, 1 - eps] first, so nothing is divided by zero.
        """
        AL, Y, eps = self._cost_inputs("cross_entropy_backward", AL, Y)
        dAL = self._out(out, "out", AL.shape, AL.dtype, dict(AL=AL, Y=Y), elementwise=True)
        self.kernels.cross_entropy_backward(dAL, AL, Y, eps)
        return dAL

    def gradient_step(self, param, grad, learning_rate, *, out=None):
        """param -= learning_rate * grad, in place (param must be a writeable,
        C-contiguous float array); with ``out=`` the result goes there instead
        and param is left alone. Returns the updated array."""
        lr = checks.learning_rate(learning_rate)
        if out is None:
            if not isinstance(param, np.ndarray):
                raise TypeError(
                    f"gradient_step updates param in place, so param must be a NumPy array, "
                    f"got {type(param).__name__}; or pass out= to receive the result")
            if param.dtype.kind != "f" or param.dtype.itemsize not in (4, 8):
                raise TypeError(f"param has dtype {param.dtype}; expected float32 or float64")
            checks.out_array(param, "param", param.shape, param.dtype)
        grad = self._array(grad, "grad", np.ndim(grad), "(same as param)")
        if out is not None:
            param = self._array(param, "param", np.ndim(param), "(same as grad)")
        checks.same_dtype("gradient_step", dict(param=param, grad=grad))
        checks.shape_rule(param.shape == grad.shape,
                          f"param has shape {param.shape} but grad has shape {grad.shape}; they must match")
        lr = checks.learning_rate_for(lr, param.dtype)
        target = param if out is None else self._out(
            out, "out", param.shape, param.dtype, dict(param=param, grad=grad), elementwise=True)
        if out is None:
            checks.no_overlap(param, "param", dict(grad=grad), elementwise=True)
        self.kernels.gradient_step(target, param, grad, lr)
        return target

    def dot(self, a, b, *, out=None):
        """s = sum_i a[i] b[i]; a, b 1-D of one length. Returns a scalar of
        their dtype, or writes it into ``out`` (shape (), their dtype)."""
        a = self._array(a, "a", 1, "(n,)")
        b = self._array(b, "b", 1, "(n,)")
        dtype = checks.same_dtype("dot", dict(a=a, b=b))
        checks.shape_rule(a.shape == b.shape,
                          f"a has shape {a.shape} but b has shape {b.shape}; dot needs two vectors of one length")
        s = dtype.type(self.kernels.dot(a, b))
        return s if out is None else self._scalar_out(out, s, dtype)

    def _scalar_out(self, out, value, dtype):
        """Write a scalar result into ``out`` (an array of shape () and ``dtype``)."""
        checks.out_array(out, "out", (), dtype)
        out[()] = value
        return out


class _NumPyKernels:
    """kernels.vectorized's products for Ops._product_kernels, taking the
    loop backends' activation codes (their exact-math bit: NumPy's math is
    the C library's anyway)."""

    def __init__(self, vectorized):
        self._k = vectorized

    def linear_forward(self, Z, A_prev, W, b):
        self._k.linear_forward(Z, A_prev, W, b)

    def linear_activation_forward(self, Z, A, A_prev, W, b, act):
        self._k.linear_activation_forward(Z, A, A_prev, W, b, act & ~EXACT)

    def linear_backward(self, dA_prev, dW, db, dZ, A_prev, W):
        self._k.linear_backward(dA_prev, dW, db, dZ, A_prev, W)

    def linear_activation_backward(self, dA_prev, dW, db, dZ, dA, Z, A_prev, W, act):
        self._k.linear_activation_backward(dA_prev, dW, db, dZ, dA, Z, A_prev, W, act & ~EXACT)
