"""Vectorizable exp, expm1-based tanh, sigmoid and log, written as plain loop code.

Why: compiled loops that call ``math.exp``/``math.tanh``/``math.log`` call the
C math library one element at a time, while NumPy's ufuncs are SIMD (several
elements per instruction: the README's results). LLVM cannot vectorize a libm call
(no vector math library with current llvmlite), but it vectorizes arithmetic,
compares/selects and bit casts. So each function here is branch-free
arithmetic: a range reduction, a polynomial, and a rescaling by 2^n built from
its bits. Inlined into a loop over a row, the loop becomes SIMD (ymm/zmm
packed ops in ``inspect_asm``; ``tests/test_fastmath_approx.py`` checks it).

Each function is dtype-generic (float32 and float64 have their own
coefficients and bit layouts; a float32 input is computed in float32
throughout) and handles the whole float range: +-0, subnormals, huge values,
+-inf and NaN (NaN in, NaN out). Measured maximum errors over the whole range
(dense sampling of every binade plus the special values, against a float64
reference for float32 and an 80-bit long-double reference for float64; see
``tests/test_fastmath_approx.py``), in units in the last place of the result:

    function          float64   NumPy f64   float32   NumPy f32   asserted
    exp_approx        0.94      0.72        0.93      2.23        <= 1
    tanh_approx       2.38      1.08        2.47      1.34        <= 3
    sigmoid_approx    1.97      1.97        2.09      3.44        <= 3
    log_approx        0.74      0.58        0.74      2.54        <= 1

(maximum ulp over 4.2 million float64 / 2.1 million float32 points, every
binade of both signs; NumPy's column is its own ufunc on the same points,
sigmoid NumPy being the stable formula of ``kernels.vectorized``; reproduce
with ``python -m tests.test_fastmath_approx``.) The asserted bounds are
checked by the tests on a lighter sampling.

Compilation flags: these helpers are compiled with ``fastmath={'contract'}``
only. 'contract' lets a*b+c become one FMA (more accurate, never less), but
'reassoc' would let LLVM fold the Cody-Waite reduction ``x - n*ln2_hi -
n*ln2_lo`` into ``x - n*ln2`` and destroy the accuracy, so it is off here
even though the kernels that call them use it. Flags are per instruction in
LLVM, so inlining into a reassoc caller keeps them.

Interpreted (backend "python") the same code runs on NumPy scalars; the bit
casts then use ``ndarray.view``.

The exact path (the C math library) stays selectable: see ``EXACT`` in
``kernels.loops``.
"""

import math

import numpy as np
from numba import types
from numba.extending import intrinsic, overload, register_jitable

from .options import APPROX_OPTIONS

# --------------------------------------------------------------------------
# Bit casts: float <-> its IEEE-754 bit pattern as an integer.


def float_bits(x):
    """The bit pattern of ``x`` (a float32 or float64 NumPy scalar) as an int."""
    if isinstance(x, np.float32):
        return np.array(x, dtype=np.float32).view(np.int32)[()].astype(np.int64)
    return np.array(x, dtype=np.float64).view(np.int64)[()]


def float_from_bits(i, like):
    """The float of ``like``'s dtype whose bit pattern is the integer ``i``
    (for float32 the low 32 bits of ``i``)."""
    if isinstance(like, np.float32):
        return np.array(np.int64(i) & 0xFFFFFFFF, dtype=np.int64).astype(np.uint32).view(np.float32)[()]
    return np.array(i, dtype=np.int64).view(np.float64)[()]


@intrinsic
def _float_bits(typingctx, x):
    if x == types.float64:
        ity = types.int64
    elif x == types.float32:
        ity = types.int32
    else:
        return None

    def codegen(context, builder, signature, args):
        bits = builder.bitcast(args[0], context.get_value_type(ity))
        return builder.sext(bits, context.get_value_type(types.int64)) if ity is types.int32 else bits

    return types.int64(x), codegen


@intrinsic
def _float_from_bits(typingctx, i, like):
    if not isinstance(i, types.Integer) or like not in (types.float32, types.float64):
        return None
    width = 32 if like == types.float32 else 64

    def codegen(context, builder, signature, args):
        v = args[0]
        ity = context.get_value_type(types.int32 if width == 32 else types.int64)
        if i.bitwidth > width:
            v = builder.trunc(v, ity)
        elif i.bitwidth < width:
            v = builder.sext(v, ity) if i.signed else builder.zext(v, ity)
        return builder.bitcast(v, context.get_value_type(like))

    return like(i, like), codegen


@overload(float_bits, jit_options=APPROX_OPTIONS)
def _float_bits_impl(x):
    if x in (types.float32, types.float64):
        return lambda x: _float_bits(x)


@overload(float_from_bits, jit_options=APPROX_OPTIONS)
def _float_from_bits_impl(i, like):
    if isinstance(i, types.Integer) and like in (types.float32, types.float64):
        return lambda i, like: _float_from_bits(i, like)


# --------------------------------------------------------------------------
# Constants, one set per dtype (float32 constants are float32 so that a
# float32 computation is never promoted to float64).

F64 = np.float64
F32 = np.float32

LOG2E64 = F64(1.4426950408889634)
# Cody-Waite split of ln 2: LN2_HI has 32 trailing zero bits, so n * LN2_HI is
# exact for |n| < 2^20 (fdlibm's ln2HI/ln2LO).
LN2_HI64 = F64(6.93147180369123816490e-01)
LN2_LO64 = F64(1.90821492927058770002e-10)
SHIFT64 = F64(6755399441055744.0)  # 1.5 * 2^52: x + SHIFT rounds x to an integer
# e^r - 1 - r = r^2 (1/2! + r/3! + ... + r^11/13!) on |r| <= ln2/2: Taylor to
# r^13, truncation error < 1.3e-17 relative.
EXPC64 = tuple(F64(1.0 / math.factorial(k)) for k in range(2, 14))

LOG2E32 = F32(1.44269502)
LN2_HI32 = F32(6.9314575195e-01)  # 0x3f317200: 12 trailing zero bits
LN2_LO32 = F32(1.4286067653e-06)
SHIFT32 = F32(12582912.0)  # 1.5 * 2^23
EXPC32 = tuple(F32(1.0 / math.factorial(k)) for k in range(2, 9))  # Taylor to r^8

# Argument limits: outside them exp is 0 or inf whatever the rounding.
EXP_HI64, EXP_LO64 = F64(710.0), F64(-746.0)
EXP_HI32, EXP_LO32 = F32(89.0), F32(-104.0)

# log: fdlibm's e_log.c / e_logf.c coefficients (minimax for 2 atanh(s)/s).
LG64 = (F64(6.666666666666735130e-01), F64(3.999999999940941908e-01),
        F64(2.857142874366239149e-01), F64(2.222219843214978396e-01),
        F64(1.818357216161805012e-01), F64(1.531383769920937332e-01),
        F64(1.479819860511658591e-01))
LG32 = (F32(0.66666662693), F32(0.40000972152), F32(0.28498786688), F32(0.24279078841))
SQRT_HALF_BITS64 = 0x3FE6A09E667F3BCD  # bits of sqrt(1/2): mantissas land in [sqrt(1/2), sqrt(2))
SQRT_HALF_BITS32 = 0x3F3504F3
TWO54_64 = F64(18014398509481984.0)  # 2^54: scales subnormals up to normal
TWO25_32 = F32(33554432.0)  # 2^25
TINY64 = F64(2.2250738585072014e-308)  # smallest normal
TINY32 = F32(1.17549435e-38)


# --------------------------------------------------------------------------
# exp


@register_jitable(**APPROX_OPTIONS)
def _exp_reduce64(x):
    """x = n ln2 + r with n an integer-valued float, |r| <= ln2/2 (+ rounding)."""
    kn = x * LOG2E64 + SHIFT64  # fused: rounds x log2 e to the nearest integer
    n = kn - SHIFT64
    r = x - n * LN2_HI64  # exact (fused, and n * LN2_HI is exact)
    r = r - n * LN2_LO64
    return n, kn, r


@register_jitable(**APPROX_OPTIONS)
def _exp_reduce32(x):
    kn = x * LOG2E32 + SHIFT32
    n = kn - SHIFT32
    r = x - n * LN2_HI32
    r = r - n * LN2_LO32
    return n, kn, r


@register_jitable(**APPROX_OPTIONS)
def _expm1_poly64(r):
    """e^r - 1 for |r| <= 0.35, relative error < 2^-55."""
    c = EXPC64
    p = c[11]
    p = p * r + c[10]
    p = p * r + c[9]
    p = p * r + c[8]
    p = p * r + c[7]
    p = p * r + c[6]
    p = p * r + c[5]
    p = p * r + c[4]
    p = p * r + c[3]
    p = p * r + c[2]
    p = p * r + c[1]
    p = p * r + c[0]
    return r + (r * r) * p


@register_jitable(**APPROX_OPTIONS)
def _expm1_poly32(r):
    c = EXPC32
    p = c[6]
    p = p * r + c[5]
    p = p * r + c[4]
    p = p * r + c[3]
    p = p * r + c[2]
    p = p * r + c[1]
    p = p * r + c[0]
    return r + (r * r) * p


@register_jitable(**APPROX_OPTIONS)
def _exp64(x):
    x = EXP_HI64 if x > EXP_HI64 else x  # NaN fails both tests and stays NaN
    x = EXP_LO64 if x < EXP_LO64 else x
    n, kn, r = _exp_reduce64(x)
    p = _expm1_poly64(r) + F64(1.0)
    # 2^n as two factors 2^(n/2) so that n in [-1076, 1025] never leaves the
    # normal exponent range of either factor (gradual underflow rounds once).
    ni = float_bits(kn) - float_bits(SHIFT64)  # n as an integer
    n1 = ni >> 1
    n2 = ni - n1
    s1 = float_from_bits((n1 + 1023) << 52, x)
    s2 = float_from_bits((n2 + 1023) << 52, x)
    return p * s1 * s2


@register_jitable(**APPROX_OPTIONS)
def _exp32(x):
    x = EXP_HI32 if x > EXP_HI32 else x
    x = EXP_LO32 if x < EXP_LO32 else x
    n, kn, r = _exp_reduce32(x)
    p = _expm1_poly32(r) + F32(1.0)
    ni = float_bits(kn) - float_bits(SHIFT32)
    n1 = ni >> 1
    n2 = ni - n1
    s1 = float_from_bits((n1 + 127) << 23, x)
    s2 = float_from_bits((n2 + 127) << 23, x)
    return p * s1 * s2


def exp_approx(x):
    """e^x, vectorizable, within 1 ulp (module table). exp(-inf) = 0,
    exp(inf) = inf, overflow to inf, gradual underflow; NaN -> NaN."""
    with np.errstate(all="ignore"):  # interpreted: overflow to inf is intended
        return _exp32(x) if isinstance(x, np.float32) else _exp64(F64(x))


@overload(exp_approx, jit_options=APPROX_OPTIONS)
def _exp_approx_impl(x):
    if x == types.float32:
        return lambda x: _exp32(x)
    if x == types.float64:
        return lambda x: _exp64(x)


# --------------------------------------------------------------------------
# tanh = -expm1(-2|x|) / (2 + expm1(-2|x|)), sign restored


@register_jitable(**APPROX_OPTIONS)
def _tanh64(x):
    y = F64(-2.0) * abs(x)
    y = F64(-40.0) if y < F64(-40.0) else y  # tanh(20) rounds to 1; NaN passes
    n, kn, r = _exp_reduce64(y)
    q = _expm1_poly64(r)  # e^r - 1
    ni = float_bits(kn) - float_bits(SHIFT64)  # n in [-58, 0]
    s = float_from_bits((ni + 1023) << 52, x)  # 2^n
    e = s * q + (s - F64(1.0))  # e^y - 1 = 2^n (e^r - 1) + (2^n - 1), in (-1, 0]
    t = -e / (F64(2.0) + e)
    return math.copysign(t, x)


@register_jitable(**APPROX_OPTIONS)
def _tanh32(x):
    y = F32(-2.0) * abs(x)
    y = F32(-20.0) if y < F32(-20.0) else y  # tanh(10) rounds to 1 in float32
    n, kn, r = _exp_reduce32(y)
    q = _expm1_poly32(r)
    ni = float_bits(kn) - float_bits(SHIFT32)
    s = float_from_bits((ni + 127) << 23, x)
    e = s * q + (s - F32(1.0))
    t = -e / (F32(2.0) + e)
    return math.copysign(t, x)


def tanh_approx(x):
    """tanh(x), vectorizable, within 2.5 ulp (module table); odd, so
    tanh(-0) = -0. tanh(+-inf) = +-1, NaN -> NaN."""
    with np.errstate(all="ignore"):
        return _tanh32(x) if isinstance(x, np.float32) else _tanh64(F64(x))


@overload(tanh_approx, jit_options=APPROX_OPTIONS)
def _tanh_approx_impl(x):
    if x == types.float32:
        return lambda x: _tanh32(x)
    if x == types.float64:
        return lambda x: _tanh64(x)


# --------------------------------------------------------------------------
# sigmoid, never overflowing: exp only sees -|z|


@register_jitable(**APPROX_OPTIONS)
def _sigmoid_generic(z, e):
    one = type(z)(1.0)
    num = one if z >= type(z)(0.0) else e  # z < 0 or NaN: e (NaN for NaN)
    return num / (one + e)


def sigmoid_approx(z):
    """1 / (1 + e^-z), vectorizable, within 2.1 ulp (module table), no
    overflow for any z. sigmoid(-inf) = 0, sigmoid(inf) = 1, NaN -> NaN."""
    with np.errstate(all="ignore"):
        if isinstance(z, np.float32):
            return _sigmoid_generic(z, _exp32(-abs(z)))
        z = F64(z)
        return _sigmoid_generic(z, _exp64(-abs(z)))


@overload(sigmoid_approx, jit_options=APPROX_OPTIONS)
def _sigmoid_approx_impl(z):
    if z == types.float32:
        return lambda z: _sigmoid_generic(z, _exp32(-abs(z)))
    if z == types.float64:
        return lambda z: _sigmoid_generic(z, _exp64(-abs(z)))


# --------------------------------------------------------------------------
# log (fdlibm's algorithm, branch-free)


@register_jitable(**APPROX_OPTIONS)
def _log64(a):
    sub = a < TINY64  # subnormal (or <= 0, NaN handled below)
    x = a * TWO54_64 if sub else a
    bits = float_bits(x)
    ix = bits - SQRT_HALF_BITS64
    k = ix >> 52  # the exponent, with the mantissa taken in [sqrt(1/2), sqrt(2))
    m = float_from_bits(bits - (k << 52), x)
    kf = F64(k - 54) if sub else F64(k)
    f = m - F64(1.0)
    s = f / (F64(2.0) + f)
    z = s * s
    w = z * z
    c = LG64
    t1 = w * (c[1] + w * (c[3] + w * c[5]))
    t2 = z * (c[0] + w * (c[2] + w * (c[4] + w * c[6])))
    R = t2 + t1
    hfsq = F64(0.5) * f * f
    res = kf * LN2_HI64 - ((hfsq - (s * (hfsq + R) + kf * LN2_LO64)) - f)
    res = np.inf if a == np.inf else res
    res = -np.inf if a == F64(0.0) else res
    res = np.nan if a < F64(0.0) else res
    return a if a != a else res


@register_jitable(**APPROX_OPTIONS)
def _log32(a):
    sub = a < TINY32
    x = a * TWO25_32 if sub else a
    bits = float_bits(x)
    ix = bits - SQRT_HALF_BITS32
    k = ix >> 23
    m = float_from_bits(bits - (k << 23), x)
    kf = F32(k - 25) if sub else F32(k)
    f = m - F32(1.0)
    s = f / (F32(2.0) + f)
    z = s * s
    w = z * z
    c = LG32
    t1 = w * (c[1] + w * c[3])
    t2 = z * (c[0] + w * c[2])
    R = t2 + t1
    hfsq = F32(0.5) * f * f
    res = kf * LN2_HI32 - ((hfsq - (s * (hfsq + R) + kf * LN2_LO32)) - f)
    res = F32(np.inf) if a == F32(np.inf) else res
    res = F32(-np.inf) if a == F32(0.0) else res
    res = F32(np.nan) if a < F32(0.0) else res
    return a if a != a else res


def log_approx(a):
    """Natural log, vectorizable, within 0.75 ulp (module table). log(0) = -inf,
    log(inf) = inf, log(a < 0) = NaN, NaN -> NaN; subnormals exact-scaled."""
    with np.errstate(all="ignore"):  # interpreted: the bit arithmetic of NaN/negatives wraps
        return _log32(a) if isinstance(a, np.float32) else _log64(F64(a))


@overload(log_approx, jit_options=APPROX_OPTIONS)
def _log_approx_impl(a):
    if a == types.float32:
        return lambda a: _log32(a)
    if a == types.float64:
        return lambda a: _log64(a)
