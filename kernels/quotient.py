"""v / d in float64 without the divider: the quotient of the optimizers' steps.

Why: RMSprop's and Adam's steps divide every cell by sqrt(s) + epsilon, and
a CPU's divider does one float64 division (vdivpd) and one square root
(vsqrtpd) at a time for a whole vector, many cycles each (a digits Adam
step: a fifth of its time, the divider busy for both). The FMA units are
idle meanwhile. So the quotient is computed there: a reciprocal r of d
from its bits (an integer subtraction: relative error under 1/8), four
Newton steps r += r (1 - d r) (each squares the error: under 2^-48), then
Markstein's correction q = q0 + r (v - q0 d) of q0 = v r (the remainder
v - q0 d is exact in one FMA). Measured: equal to v / d, correctly rounded,
on 1.5 million random pairs over the whole exponent range (a one-off
run); ``tests/test_quotient.py`` asserts the same on 400,000. The
remainder is exact only as one FMA: interpreted (no FMA) the same steps
are within an ulp.

Domain: |d| normal and within 2^-1000 .. 2^1000, or infinite (v / inf =
+-0), and any v; NaN in gives NaN, and v = +-inf gives +-inf as division
does. d = 0, subnormal or beyond 2^1000 is outside it (the seed's exponent
would leave the normal range): callers check the smallest d they can meet
(optimizer_step: epsilon). float32 divides (its divider is twice as wide
and the quotient's share of a step small).

Compiled with 'contract' only, like ``kernels.approx`` ('reassoc' would let
LLVM regroup the Newton steps and lose their exactness).
"""

import math

import numpy as np
from numba import types
from numba.extending import overload, register_jitable

from .approx import float_bits, float_from_bits
from .options import APPROX_OPTIONS

F64 = np.float64
# 2^1023 x (3 - 2^-52) read as an integer, minus a shift that centres the
# seed's error (Lomont's constant for doubles): bits(1/d) ~ MAGIC - bits(d).
RECIPROCAL_MAGIC64 = 0x7FDE623822FC16E6
# The range of |d| the quotient is exact in (see the module docstring).
QUOTIENT_MIN64 = F64(2.0 ** -1000)
QUOTIENT_MAX64 = F64(2.0 ** 1000)
# The largest epsilon the optimizers' quotient takes: sqrt(s) is at most
# 1.4e154, so sqrt(s) + epsilon stays below QUOTIENT_MAX64.
EPSILON_MAX64 = F64(1e300)


@register_jitable(**APPROX_OPTIONS)
def _quotient64(v, d):
    one = F64(1.0)
    r = float_from_bits(RECIPROCAL_MAGIC64 - float_bits(d), d)
    r = r + r * (one - d * r)
    r = r + r * (one - d * r)
    r = r + r * (one - d * r)
    r = r + r * (one - d * r)
    q = v * r
    rem = v - q * d
    # v = +-inf: q stays +-inf; rem = 0 (v = +-0, or q exact): q keeps its sign
    q = q + r * rem if abs(q) < F64(np.inf) and rem != F64(0.0) else q
    return v * math.copysign(F64(0.0), d) if abs(d) == F64(np.inf) else q


def quotient(v, d):
    """v / d: compiled, float64 computed on the FMA units (the module
    docstring: its domain and error), float32 by division. Interpreted:
    division (the same value, at a Python call's cost rather than twenty;
    the tests run _quotient64's arithmetic interpreted too)."""
    return v / d


@overload(quotient, jit_options=APPROX_OPTIONS)
def _quotient_impl(v, d):
    if v == types.float64 and d == types.float64:
        return lambda v, d: _quotient64(v, d)
    if isinstance(v, types.Number) and isinstance(d, types.Number):  # float32, mixed: divide
        return lambda v, d: v / d
