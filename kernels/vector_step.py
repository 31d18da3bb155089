"""RMSprop's and Adam's float64 step eight cells at a time on AVX-512, its
quotient seeded by the CPU's reciprocal estimate.

Why: the step divides every cell by sqrt(s) + epsilon. kernels.quotient
computes that quotient on the FMA units, while the divider takes the square
root; its seed, from the divisor's bits, is within 1/8, so it takes four
Newton steps, and the FMA units end up as busy as the divider. AVX-512
has a reciprocal estimate, vrcp14pd, within 2^-14: two Newton steps
(2^-56) and the same correction give the same, correctly rounded
quotient (docs/performance-log.md, "Adam's quotient from the CPU's estimate"). LLVM's loop
vectorizer cannot use a target's intrinsic inside a scalar loop, so the
cells' whole update is written here as vector IR: ``_adam_cells8`` and
``_rmsprop_cells8`` update cells j .. j + 7.

The same bits as kernels.loops.update's scalar loop: its moments as LLVM
compiles that loop (v = fma(beta1, v, (1 - beta1) g), s = fma(beta2, s,
(1 - beta2) (g g)): its flags let LLVM pick these forms, and
tests/test_vector_step.py holds the two to the same bits), and the
quotient correctly rounded either way. The domain is kernels.quotient's
(callers check epsilon); float32 divides (kernels.quotient), as before.

Only where the target has AVX-512 (``VECTOR_STEP``); elsewhere
``vector_step`` returns SKIPPED and the scalar loop runs (dividing where the
CPU's divider is quick: options.DIVIDE_STEP). Interpreted: SKIPPED.
"""

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload, register_jitable

from . import target
from .options import ADAM, APPROX_OPTIONS, RMSPROP
from .wide import keep_out_of_line, prefer_wide_vectors

LANES = 8
# vrcp14pd needs AVX-512F (x86 only: target.vector_bits is 512 there alone).
VECTOR_STEP = target.vector_bits() == 512

_F64 = ir.DoubleType()
_VEC = ir.VectorType(_F64, LANES)


def _vector_function(builder, name, nargs):
    """LLVM's intrinsic llvm.<name>.v8f64 (llvmlite's declare_intrinsic takes no vector types)."""
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VEC, [_VEC] * nargs),
                                          f"llvm.{name}.v8f64")


def _fma(builder, a, b, c):
    return builder.call(_vector_function(builder, "fma", 3), [a, b, c])


def _splat(builder, x):
    first = builder.insert_element(ir.Constant(_VEC, ir.Undefined), x, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(first, ir.Constant(_VEC, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))


def _quotient8(builder, num, d):
    """num / d, eight lanes, correctly rounded (kernels.quotient's steps,
    from vrcp14pd's estimate: two Newton steps instead of four)."""
    one = ir.Constant(_VEC, [1.0] * LANES)
    zero = ir.Constant(_VEC, [0.0] * LANES)
    inf = ir.Constant(_VEC, [math.inf] * LANES)
    estimate = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(_VEC, [_VEC, _VEC, ir.IntType(8)]), "llvm.x86.avx512.rcp14.pd.512")
    r = builder.call(estimate, [d, zero, ir.Constant(ir.IntType(8), 255)])  # all lanes: mask 0xFF
    minus_d = builder.fneg(d)
    for _ in range(2):  # r += r (1 - d r): each squares the error
        r = _fma(builder, r, _fma(builder, minus_d, r, one), r)
    q = builder.fmul(num, r)
    rem = _fma(builder, builder.fneg(q), d, num)  # exact: one FMA
    fabs = _vector_function(builder, "fabs", 1)
    refine = builder.and_(builder.fcmp_ordered("<", builder.call(fabs, [q]), inf),
                          builder.fcmp_unordered("!=", rem, zero))
    q = builder.select(refine, _fma(builder, r, rem, q), q)
    # d = +-inf: num / d is +-0 (kernels.quotient's special case)
    signed_zero = builder.call(_vector_function(builder, "copysign", 2), [zero, d])
    return builder.select(builder.fcmp_ordered("==", builder.call(fabs, [d]), inf),
                          builder.fmul(num, signed_zero), q)


def _cells8_codegen(kind):
    def codegen(context, builder, signature, args):
        index = context.cast(builder, args[5], signature.args[5], types.intp)
        pointers = []
        for k in range(5):
            aryty = signature.args[k]
            ary = context.make_array(aryty)(context, builder, args[k])
            ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [index], wraparound=False)
            pointers.append(builder.bitcast(ptr, _VEC.as_pointer()))
        p_out, p_v, p_s, p_param, p_grad = pointers
        lr, beta1, beta2, epsilon = (_splat(builder, a) for a in args[6:10])
        one = ir.Constant(_VEC, [1.0] * LANES)
        g = builder.load(p_grad, align=8)
        param = builder.load(p_param, align=8)
        s = builder.load(p_s, align=8)
        s = _fma(builder, beta2, s, builder.fmul(builder.fsub(one, beta2), builder.fmul(g, g)))
        if kind == ADAM:
            v = builder.load(p_v, align=8)
            v = _fma(builder, beta1, v, builder.fmul(builder.fsub(one, beta1), g))
            builder.store(v, p_v, align=8)
            num = builder.fmul(lr, v)
        else:
            num = builder.fmul(lr, g)
        builder.store(s, p_s, align=8)
        d = builder.fadd(builder.call(_vector_function(builder, "sqrt", 1), [s]), epsilon)
        out = builder.fsub(param, _quotient8(builder, num, d))
        builder.store(out, p_out, align=8)
        # whether the eight new cells are finite: |out| < inf (false for NaN) and-ed over the lanes
        inf = ir.Constant(_VEC, [math.inf] * LANES)
        finite = builder.fcmp_ordered("<", builder.call(_vector_function(builder, "fabs", 1), [out]), inf)
        mask = ir.VectorType(ir.IntType(1), LANES)
        every = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(1), [mask]),
                                               f"llvm.vector.reduce.and.v{LANES}i1")
        return builder.call(every, [finite])
    return codegen


def _all_float64(*arrays):
    """Whether every type is a 1-D C-contiguous float64 array's."""
    return all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and a.dtype == types.float64
               for a in arrays)


def _cells8_typer(kind):
    def typer(typingctx, out, v, s, param, grad, j, lr, beta1, beta2, epsilon):
        if not (_all_float64(out, v, s, param, grad) and isinstance(j, types.Integer)):
            return None
        return types.boolean(out, v, s, param, grad, j, types.float64, types.float64, types.float64,
                             types.float64), _cells8_codegen(kind)
    return typer


# Cells j .. j + 7 of the step (optimizer_step's arguments as 1-D float64
# arrays; v unused by RMSprop): v, s updated, out = param - the quotient;
# returns whether the eight new cells of out are finite.
_adam_cells8 = intrinsic(_cells8_typer(ADAM))
_rmsprop_cells8 = intrinsic(_cells8_typer(RMSPROP))


# vector_step's answer where it does not apply (else 1 or 0: the new cells finite or not)
SKIPPED = -1


def vector_step(out, v, s, param, grad, lr, kind, beta1, beta2, epsilon):
    """Adam's or RMSprop's step (kernels.loops.update.optimizer_step; lr and
    epsilon bias-corrected) on 1-D float64 arrays, eight cells a vector.
    Returns 1 where every new cell of out is finite, 0 where one is not
    (the training loops' divergence test), or SKIPPED where it does not
    apply (another kind or dtype, a target without AVX-512, interpreted):
    the caller's scalar loop then runs."""
    return SKIPPED


@overload(vector_step, jit_options=APPROX_OPTIONS)
def _vector_step_impl(out, v, s, param, grad, lr, kind, beta1, beta2, epsilon):
    if not (VECTOR_STEP and _all_float64(out, v, s, param, grad)):
        return lambda out, v, s, param, grad, lr, kind, beta1, beta2, epsilon: SKIPPED

    def impl(out, v, s, param, grad, lr, kind, beta1, beta2, epsilon):
        if kind != ADAM and kind != RMSPROP:
            return SKIPPED
        return 1 if _step_cells(out, v if kind == ADAM else s, s, param, grad, lr, kind == ADAM, beta1, beta2,
                                epsilon) else 0
    return impl


@register_jitable(**APPROX_OPTIONS)
def _cells8(out, v, s, param, grad, j, lr, adam, beta1, beta2, epsilon):
    """Cells j .. j + 7: Adam's or RMSprop's. Returns whether they are finite."""
    if adam:
        return _adam_cells8(out, v, s, param, grad, j, lr, beta1, beta2, epsilon)
    return _rmsprop_cells8(out, v, s, param, grad, j, lr, beta1, beta2, epsilon)


@register_jitable(**APPROX_OPTIONS)
def _step_cells(out, v, s, param, grad, lr, adam, beta1, beta2, epsilon):
    """vector_step's loop (RMSprop passes s for v, unused): a function of
    its own, with zmm vectors wherever it is inlined from (kernels.wide).
    Compiled only (its cells are intrinsics). Returns whether every new
    cell of out is finite."""
    prefer_wide_vectors()
    keep_out_of_line()
    n = out.shape[0]
    full = n - n % LANES
    lr, beta1, beta2, epsilon = np.float64(lr), np.float64(beta1), np.float64(beta2), np.float64(epsilon)
    ok = True
    for j in range(0, full, LANES):
        ok &= _cells8(out, v, s, param, grad, j, lr, adam, beta1, beta2, epsilon)
    if full < n:  # the last n mod 8 cells: through eight of scratch (zeros past them: d = epsilon)
        tail = np.zeros((5, LANES), dtype=np.float64)
        left = n - full
        for c in range(left):
            tail[1, c] = v[full + c]
            tail[2, c] = s[full + c]
            tail[3, c] = param[full + c]
            tail[4, c] = grad[full + c]
        ok &= _cells8(tail[0], tail[1], tail[2], tail[3], tail[4], 0, lr, adam, beta1, beta2, epsilon)
        for c in range(left):
            if adam:
                v[full + c] = tail[1, c]
            s[full + c] = tail[2, c]
            out[full + c] = tail[0, c]
    return ok
