"""The ops theme: every op of the op API x backend over a size sweep.

The layer is (n, k) = ``OPS_LAYER``; m, the number of examples, grows over the
sweep (``OPS_SIZES``) so that the working sets fit L1, L2, L3 and main memory,
in float64 and float32. The raw kernels (``ops.kernels``, outputs
preallocated) are timed, so the numbers are the loops' and not the argument
checks'; every result is checked against the numpy backend's on the same
inputs.
"""

import numpy as np

import kernels
from kernels.loops import ACTIVATION_CODES

from .cases import PY_MAX_ROUND_S, PY_SECONDS_PER_ITER, Case, assert_close, bound_of, default_backends
from .machine import level_of, numba_threads


_CODE = ACTIVATION_CODES  # the raw kernels take activation codes, not names

OPS_LAYER = (32, 32)     # (n, k) of the layer the ops sweep uses
OPS_SIZES = {            # m, the number of examples, per sweep
    "smoke": (64,),
    "quick": (64, 2048),
    "default": (64, 2048, 65536),
    "full": (64, 2048, 65536, 1 << 20),
}
# op name -> (kernel name, activation, bound)
OPS = {
    "linear_forward": ("linear_forward", None, "compute"),
    "linear_activation_forward[relu]": ("linear_activation_forward", "relu", "compute"),
    "activation_forward[tanh]": ("activation_forward", "tanh", "memory"),
    "activation_forward[sigmoid]": ("activation_forward", "sigmoid", "memory"),
    "activation_backward[relu]": ("activation_backward", "relu", "memory"),
    "linear_backward": ("linear_backward", None, "compute"),
    "linear_activation_backward[tanh]": ("linear_activation_backward", "tanh", "compute"),
    "cross_entropy": ("cross_entropy", None, "memory"),
    "cross_entropy_backward": ("cross_entropy_backward", None, "memory"),
    "gradient_step": ("gradient_step", None, "memory"),
}


def _op_problem(op, n, k, m, dtype, rng):
    """(inputs, output shapes, call(kernels, outs, ins) -> result, flops,
    bytes, python work) of ``op`` on a layer (n, k) with m examples."""
    kname, act, _ = OPS[op]
    dt = np.dtype(dtype)
    it = dt.itemsize
    f = lambda *shape: rng.standard_normal(shape).astype(dt)
    code = _CODE.get(act)
    if kname in ("linear_forward", "linear_activation_forward"):
        ins = dict(A_prev=f(k, m), W=(f(n, k) / np.sqrt(k)).astype(dt), b=f(n, 1))
        outs = [(n, m)] if kname == "linear_forward" else [(n, m), (n, m)]
        if kname == "linear_forward":
            call = lambda K, o, i: K.linear_forward(o[0], i["A_prev"], i["W"], i["b"])
        else:
            call = lambda K, o, i: K.linear_activation_forward(o[0], o[1], i["A_prev"], i["W"], i["b"], code)
        flops = 2 * n * k * m
        nbytes = it * (k * m + n * k + n + len(outs) * n * m)
        return ins, outs, call, flops, nbytes, n * k * m
    if kname == "activation_forward":
        ins = dict(Z=f(n, m))
        call = lambda K, o, i: K.activation_forward(o[0], i["Z"], code)
        return ins, [(n, m)], call, n * m, 2 * it * n * m, n * m
    if kname == "activation_backward":
        ins = dict(dA=f(n, m), Z=f(n, m))
        call = lambda K, o, i: K.activation_backward(o[0], i["dA"], i["Z"], code)
        return ins, [(n, m)], call, n * m, 3 * it * n * m, n * m
    if kname in ("linear_backward", "linear_activation_backward"):
        ins = dict(A_prev=f(k, m), W=(f(n, k) / np.sqrt(k)).astype(dt), dZ=f(n, m), Z=f(n, m))
        if kname == "linear_backward":
            outs = [(k, m), (n, k), (n, 1)]
            call = lambda K, o, i: K.linear_backward(o[0], o[1], o[2], i["dZ"], i["A_prev"], i["W"])
        else:
            outs = [(k, m), (n, k), (n, 1), (n, m)]
            call = lambda K, o, i: K.linear_activation_backward(o[0], o[1], o[2], o[3], i["dZ"], i["Z"],
                                                                i["A_prev"], i["W"], code)
        flops = 4 * n * k * m + n * m
        nbytes = it * (2 * k * m + 2 * n * k + n + (3 if act else 1) * n * m)
        return ins, outs, call, flops, nbytes, 2 * n * k * m
    # (1, M) rows for the cost ops and the flat update: M = n * m elements
    M = n * m
    eps = float(np.finfo(dt).eps)
    if kname in ("cross_entropy", "cross_entropy_backward"):
        ins = dict(AL=rng.uniform(0.01, 0.99, (1, M)).astype(dt),
                   Y=(rng.random((1, M)) < 0.5).astype(dt))
        if kname == "cross_entropy":
            return ins, [], lambda K, o, i: K.cross_entropy(i["AL"], i["Y"], eps), 6 * M, 2 * it * M, M
        call = lambda K, o, i: K.cross_entropy_backward(o[0], i["AL"], i["Y"], eps)
        return ins, [(1, M)], call, 5 * M, 3 * it * M, M
    # gradient_step: out = param - lr * grad, (n, m) arrays
    ins = dict(param=f(n, m), grad=f(n, m))
    call = lambda K, o, i: K.gradient_step(o[0], i["param"], i["grad"], 0.01)
    return ins, [(n, m)], call, 2 * n * m, 3 * it * n * m, n * m


def _op_make(op, backend, n, k, m, dtype, seed):
    def make():
        rng = np.random.default_rng(seed)
        ins, out_shapes, call, *_ = _op_problem(op, n, k, m, dtype, rng)
        # the reference: the numpy backend on the same inputs
        ref_outs = [np.empty(s, dtype) for s in out_shapes]
        ref_result = call(kernels.get_backend("numpy").kernels, ref_outs, ins)
        ops = kernels.get_backend(backend)
        dev_ins = {name: ops.asarray(x) for name, x in ins.items()}
        outs = [ops.empty(s, dtype) for s in out_shapes]
        K = ops.kernels
        holder = {}

        def run():
            holder["result"] = call(K, outs, dev_ins)
            ops.synchronize()

        if backend != "python":
            run()  # compile / load from cache: never timed

        def check():
            if "result" not in holder:
                run()
            for idx, (got, want) in enumerate(zip(outs, ref_outs)):
                assert_close(f"{op} {backend} {dtype} m={m} output {idx}", ops.to_host(got), want, dtype)
            if ref_result is not None:
                assert_close(f"{op} {backend} {dtype} m={m} result", holder["result"], ref_result, dtype)
        return run, check
    return make


# the pure-Python backend's budget per call, by sweep (quick keeps it short)
PY_MAX_S = {"smoke": 0.1, "quick": 0.1, "default": PY_MAX_ROUND_S, "full": PY_MAX_ROUND_S}


def ops_cases(sweep="default", backends=None, dtypes=("float64", "float32"), ops_names=None, seed=0):
    """The ops theme: op x size x dtype x backend."""
    backends = backends or default_backends()
    n, k = OPS_LAYER
    cases = []
    nthreads = numba_threads()
    for op in ops_names or OPS:
        bound = OPS[op][2]
        for dtype in dtypes:
            for m in OPS_SIZES[sweep]:
                flops, nbytes, work = op_sizes(op, n, k, m, dtype)
                level = level_of(nbytes)
                for backend in backends:
                    if backend == "python" and work * PY_SECONDS_PER_ITER > PY_MAX_S[sweep]:
                        continue
                    threads = nthreads if backend in ("parallel", "cuda") or (
                        backend == "numpy" and bound == "compute") else 1
                    cases.append(Case(
                        theme="ops", group=f"ops {op} {dtype} m={m} ({level})", contender=backend,
                        make=_op_make(op, backend, n, k, m, dtype, seed), size=m, dtype=dtype,
                        flops=flops, nbytes=nbytes, bound=bound_of(backend, bound), threads=threads,
                        blas_threads=1 if backend == "parallel" else None,
                        label=f"{op} (n,k)=({n},{k}) m={m} [{level}]",
                        id=f"{op}-{dtype}-m{m}-{backend}"))
    return cases


class _NoRng:
    """Stands in for a Generator when only the sizes of a problem are wanted."""
    def __init__(self, dtype):
        self.dtype = dtype

    def standard_normal(self, shape):
        return np.zeros(shape)

    def uniform(self, lo, hi, shape):
        return np.zeros(shape)

    def random(self, shape):
        return np.zeros(shape)


def op_sizes(op, n, k, m, dtype):
    """(flops, bytes, python inner iterations) of ``op`` at m examples: each is
    affine in m, so it is read off two one- and two-example problems without
    allocating the real one."""
    one = _op_problem(op, n, k, 1, dtype, _NoRng(dtype))[3:]
    two = _op_problem(op, n, k, 2, dtype, _NoRng(dtype))[3:]
    return tuple(a + (b - a) * (m - 1) for a, b in zip(one, two))
