"""kernels.quotient: v / d from Newton steps on the FMA units, against
division (correctly rounded), over the whole exponent range of its domain,
its special values, and the optimizers' steps it serves (the same values
as with division)."""

import numba
import numpy as np
import pytest

import kernels
from kernels import quotient as qmod
from kernels.loops.update import _optimizer_block
from kernels.options import ADAM, HELPER_OPTIONS, RMSPROP
from kernels.quotient import quotient


@numba.njit(error_model="numpy")
def _quotients(v, d, out):
    for j in range(v.shape[0]):
        out[j] = quotient(v[j], d[j])


def _pairs(n, seed):
    """v of any exponent, d over the whole domain (both signs), and the
    hard cases: d a power of two, d just below one, v a multiple of d."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(n) * 2.0 ** rng.integers(-900, 900, n)
    d = rng.uniform(1.0, 2.0, n) * 2.0 ** rng.integers(-999, 999, n) * rng.choice([-1.0, 1.0], n)
    d[:1000] = 2.0 ** rng.integers(-999, 999, 1000)
    d[1000:2000] = np.nextafter(1.0, 0.0) * 2.0 ** rng.integers(-999, 999, 1000)
    v[2000:3000] = d[2000:3000] * rng.integers(-1000, 1000, 1000)
    return v, d


def _ulps(got, want):
    return np.abs(got - want) / np.spacing(np.abs(want))


def test_quotient_is_the_correctly_rounded_one():
    """On 400,000 pairs the compiled quotient equals v / d (IEEE division,
    correctly rounded: the bound is 1/2 ulp of the exact quotient, i.e.
    the same float) wherever v / d is a normal number."""
    v, d = _pairs(400_000, 0)
    out = np.empty_like(v)
    _quotients(v, d, out)
    with np.errstate(all="ignore"):
        want = v / d
    normal = np.isfinite(want) & (np.abs(want) >= np.finfo(np.float64).tiny)
    assert normal.sum() > 300_000
    np.testing.assert_array_equal(out[normal], want[normal])


def test_interpreted_arithmetic_is_within_an_ulp():
    """The algorithm itself run by the interpreter (on NumPy scalars) is
    within an ulp of division (its remainder rounds without an FMA); the
    interpreted ``quotient`` (the python backend's) divides."""
    v, d = _pairs(3000, 1)
    with np.errstate(all="ignore"):
        got = np.array([qmod._quotient64(np.float64(a), np.float64(b)) for a, b in zip(v, d)])
        want = v / d
    normal = np.isfinite(want) & (np.abs(want) >= np.finfo(np.float64).tiny)
    assert _ulps(got[normal], want[normal]).max() <= 1.0  # no FMA interpreted: the remainder rounds
    assert quotient(np.float64(1.0), np.float64(3.0)) == 1.0 / 3.0


def test_quotient_special_values():
    """inf and NaN as division gives them, within the domain of d."""
    inf, nan = np.inf, np.nan
    v = np.array([0.0, -0.0, 1.0, -2.0, inf, -inf, nan, 1.0, inf, 3.0])
    d = np.array([3.0, 3.0, inf, inf, 2.0, 2.0, 1.0, nan, inf, -inf])
    out = np.empty_like(v)
    _quotients(v, d, out)
    with np.errstate(all="ignore"):
        want = v / d
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(np.signbit(out), np.signbit(want))


def test_quotient_float32_divides():
    v = np.array([1.0, 2.0, 7.0], np.float32)
    d = np.array([3.0, 7.0, 0.1], np.float32)
    out = np.empty_like(v)
    _quotients(v, d, out)
    np.testing.assert_array_equal(out, v / d)
    assert out.dtype == np.float32


@numba.njit(**HELPER_OPTIONS)
def _both_ways(out, v, s, out_d, v_d, s_d, p, g, lr, kind, b1, b2, e):
    """optimizer_step's block of cells with the FMA quotient and with division."""
    _optimizer_block(out, v, s, p, g, lr, kind, b1, b2, e, True)
    _optimizer_block(out_d, v_d, s_d, p, g, lr, kind, b1, b2, e, False)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", [ADAM, RMSPROP])
def test_optimizer_steps_equal_the_divided_ones(kind, dtype):
    """The optimizers' block of cells gives, with the quotient, the very
    cells (moments included) it gives with division, for gradients and
    moments of every size (zeros, tiny, huge)."""
    rng = np.random.default_rng(2)
    n = 5000
    big = 150 if dtype == np.float64 else 15
    p = rng.standard_normal(n).astype(dtype)
    g = (rng.standard_normal(n) * 10.0 ** rng.integers(-big, big, n)).astype(dtype)
    g[:50] = 0.0
    v0 = (rng.standard_normal(n) * 1e-3).astype(dtype)
    s0 = (rng.random(n) * 10.0 ** rng.integers(-2 * big, 2 * big, n)).astype(dtype)
    lr, b1, b2, e = (dtype(x) for x in (0.003, 0.9, 0.999, 3e-10))
    arrays = [np.empty(n, dtype), v0.copy(), s0.copy(), np.empty(n, dtype), v0.copy(), s0.copy()]
    _both_ways(*arrays, p, g, lr, kind, b1, b2, e)
    out, v, s, out_d, v_d, s_d = arrays
    np.testing.assert_array_equal(s, s_d)
    np.testing.assert_array_equal(v, v_d)
    np.testing.assert_array_equal(out, out_d)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("epsilon", [1e-8, 1e-320])
def test_optimizer_step_takes_division_below_the_domain(epsilon):
    """optimizer_step (compiled) with an epsilon below the quotient's domain
    (1e-320: the divisor may be subnormal) divides, with one inside it uses
    the quotient: the same cells either way."""
    step = kernels.get_backend("numba").kernels.optimizer_step
    rng = np.random.default_rng(3)
    n = 2000
    p, g = rng.standard_normal(n), rng.standard_normal(n) * 1e-3
    g[:100] = 0.0  # s = 0: the divisor is epsilon itself
    out, v, s = np.empty(n), np.zeros(n), np.zeros(n)
    step(out, v, s, p, g, 0.01, ADAM, 0.9, 0.999, epsilon, 1)
    r2 = np.sqrt(1.0 - 0.999)
    want, vw, sw = np.empty(n), np.zeros(n), np.zeros(n)
    _both_ways(np.empty(n), np.zeros(n), np.zeros(n), want, vw, sw, p, g, 0.01 * r2 / (1.0 - 0.9), ADAM, 0.9,
               0.999, epsilon * r2)
    np.testing.assert_array_equal(out, want)
    assert np.array_equal(out[:100], p[:100])  # no gradient, no step
