"""kernels.vector_step: RMSprop's and Adam's float64 step eight cells a
vector on AVX-512 (its quotient seeded by vrcp14pd), against the scalar
loop with division: the very same cells (moments included), every size
(whole vectors and the tail through scratch), special values; where it
applies and where it does not; and its machine code."""

import re

import numba
import numpy as np
import pytest

from kernels import target, vector_step as vmod
from kernels.loops.update import _optimizer_block
from kernels.options import ADAM, GD, HELPER_OPTIONS, MOMENTUM, RMSPROP

avx512 = pytest.mark.skipif(not vmod.VECTOR_STEP, reason=f"the compile target ({target.describe()}) has no "
                                                          f"AVX-512: the scalar loop runs (tested elsewhere)")


@numba.njit(**HELPER_OPTIONS)
def _both_ways(out, v, s, out_d, v_d, s_d, p, g, lr, kind, b1, b2, e):
    """A block of cells with the FMA quotient (on AVX-512: vector_step) and with division."""
    _optimizer_block(out, v, s, p, g, lr, kind, b1, b2, e, True)
    _optimizer_block(out_d, v_d, s_d, p, g, lr, kind, b1, b2, e, False)


@numba.njit(**HELPER_OPTIONS)
def _compiled_vector_step(out, v, s, p, g, lr, kind, b1, b2, e):
    return vmod.vector_step(out, v, s, p, g, lr, kind, b1, b2, e)


def _cells(n, seed):
    """Gradients and moments of every size (zeros, tiny, huge)."""
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(n)
    g = rng.standard_normal(n) * 10.0 ** rng.integers(-150, 150, n)
    g[: n // 10] = 0.0
    v = rng.standard_normal(n) * 1e-3
    s = rng.random(n) * 10.0 ** rng.integers(-300, 300, n)
    s[n // 10: n // 5] = 0.0  # the divisor is epsilon itself
    return p, g, v, s


@pytest.mark.parametrize("kind", [ADAM, RMSPROP])
@pytest.mark.parametrize("n", [1, 7, 8, 9, 15, 16, 17, 64, 1003, 5000])
def test_vector_step_equals_the_divided_loop(kind, n):
    """Whole vectors and the last n mod 8 cells: the same out, v and s as
    the scalar loop that divides (division is correctly rounded, and so is
    the seeded quotient; the moments are the loop's own forms)."""
    p, g, v0, s0 = _cells(n, n + kind)
    lr, b1, b2, e = 0.003, 0.9, 0.999, 3e-10
    arrays = [np.empty(n), v0.copy(), s0.copy(), np.empty(n), v0.copy(), s0.copy()]
    _both_ways(*arrays, p, g, lr, kind, b1, b2, e)
    out, v, s, out_d, v_d, s_d = arrays
    np.testing.assert_array_equal(s, s_d)
    np.testing.assert_array_equal(v, v_d if kind == ADAM else v0)  # RMSprop leaves v alone
    np.testing.assert_array_equal(out, out_d)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("kind", [ADAM, RMSPROP])
def test_vector_step_in_place(kind):
    """out may be param (optimizer_step's contract): each group of eight
    cells is read before it is written, so stepping in place gives the
    cells stepping into another array gives (sizes with and without a tail)."""
    for n in (64, 1003):
        p, g, v0, s0 = _cells(n, 7 * n + kind)
        inplace, v1, s1 = p.copy(), v0.copy(), s0.copy()
        _both_ways(inplace, v1, s1, np.empty(n), v0.copy(), s0.copy(), inplace, g, 0.003, kind, 0.9, 0.999, 1e-8)
        want, v2, s2 = np.empty(n), v0.copy(), s0.copy()
        _both_ways(want, v2, s2, np.empty(n), v0.copy(), s0.copy(), p, g, 0.003, kind, 0.9, 0.999, 1e-8)
        np.testing.assert_array_equal(inplace, want)
        np.testing.assert_array_equal(s1, s2)
        np.testing.assert_array_equal(v1, v2)


@pytest.mark.parametrize("kind", [ADAM, RMSPROP])
def test_vector_quotient_is_the_correctly_rounded_one(kind):
    """The quotient alone over the whole domain, 200,000 pairs: with beta1 =
    beta2 = 1 the moments stay as given (v = v, s = s), lr = 1 and param = 0,
    so out = -(v / (sqrt(s) + epsilon)) for Adam (g / ... for RMSprop): equal
    to the divided loop's, bit for bit, divisors from 2^-490 to 2^491 and
    numerators from 2^-400 to 2^400 (the quotients normal)."""
    n = 200_000
    rng = np.random.default_rng(kind)
    top = rng.standard_normal(n) * 2.0 ** rng.integers(-400, 400, n)
    s0 = rng.uniform(1.0, 4.0, n) * 2.0 ** (2 * rng.integers(-490, 490, n))
    v0, g = (top, np.ones(n)) if kind == ADAM else (np.zeros(n), top)
    p = np.zeros(n)
    arrays = [np.empty(n), v0.copy(), s0.copy(), np.empty(n), v0.copy(), s0.copy()]
    _both_ways(*arrays, p, g, 1.0, kind, 1.0, 1.0, 2.0 ** -1000)
    out, out_d = arrays[0], arrays[3]
    np.testing.assert_array_equal(arrays[2], s0)  # the moments as given: the pairs are the ones meant
    assert np.isfinite(out_d).all() and (np.abs(out_d) >= np.finfo(np.float64).tiny).all()
    np.testing.assert_array_equal(out, out_d)


@pytest.mark.parametrize("kind", [ADAM, RMSPROP])
def test_vector_step_special_values(kind):
    """inf and NaN gradients and moments give what division gives (NaN where
    the divisor is infinite: inf / inf; the training loop then stops)."""
    inf, nan = np.inf, np.nan
    g = np.array([inf, -inf, nan, 1.0, 0.0, 1e300, -1e-300, 2.0, 3.0, 0.0, 1.0])
    s0 = np.array([0.0, 1.0, 1.0, inf, nan, 0.0, 0.0, 1e-310, 4.0, 0.0, 1.0])
    v0 = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, inf, nan, 1.0])
    p = np.arange(len(g), dtype=np.float64)
    n = len(g)
    arrays = [np.empty(n), v0.copy(), s0.copy(), np.empty(n), v0.copy(), s0.copy()]
    with np.errstate(all="ignore"):
        _both_ways(*arrays, p, g, 0.01, kind, 0.9, 0.999, 1e-8)
    out, v, s, out_d, v_d, s_d = arrays
    np.testing.assert_array_equal(s, s_d)
    np.testing.assert_array_equal(v, v_d)
    np.testing.assert_array_equal(out, out_d)
    np.testing.assert_array_equal(np.signbit(out), np.signbit(out_d))


@pytest.mark.parametrize("kind,dtype,expected", [
    (ADAM, np.float64, True), (RMSPROP, np.float64, True),
    (MOMENTUM, np.float64, False), (GD, np.float64, False),
    (ADAM, np.float32, False), (RMSPROP, np.float32, False)])
def test_where_it_applies(kind, dtype, expected):
    """Adam and RMSprop in float64 on AVX-512; anything else (another kind,
    float32, a target without AVX-512, the interpreter) leaves the cells to
    the scalar loop and says so."""
    n = 20
    out, v, s, p, g = (np.ones(n, dtype) for _ in range(5))
    took = _compiled_vector_step(out, v, s, p, g, 0.01, kind, 0.9, 0.999, 1e-8)
    assert took == (1 if expected and vmod.VECTOR_STEP else vmod.SKIPPED)  # 1: taken, every new cell finite
    if took == vmod.SKIPPED:
        np.testing.assert_array_equal(out, np.ones(n, dtype))  # nothing written
    assert vmod.vector_step(out, v, s, p, g, 0.01, kind, 0.9, 0.999, 1e-8) == vmod.SKIPPED


def test_vector_step_follows_the_target():
    """VECTOR_STEP is the compile target's AVX-512 (NUMBA_CPU_NAME=znver1 on
    an AVX-512 machine compiles AVX2 code: no vrcp14pd there)."""
    assert vmod.VECTOR_STEP == ("avx512f" in target.features() and target.is_x86())


@avx512
def test_machine_code_seeds_with_vrcp14pd():
    """The optimizers' block of float64 cells (the step's tile): vrcp14pd
    estimates, zmm FMAs refine, the divider takes the square root alone
    (vsqrtpd zmm) in the vector step's own function."""
    n = 4096
    out, v, s, p, g = (np.zeros(n) for _ in range(5))

    @numba.njit(**HELPER_OPTIONS)
    def call(out, v, s, p, g):
        _optimizer_block(out, v, s, p, g, 0.01, ADAM, 0.9, 0.999, 1e-8, True)

    call(out, v, s, p, g)
    asm = call.inspect_asm(call.signatures[0])
    # the step's own function (kept out of line), linked into the caller's module
    start = re.search(r"^\S*_step_cells\S*:", asm, re.M).start()
    end = asm.find(".Lfunc_end", start)
    body = asm[start:end]
    assert "vrcp14pd" in body
    assert re.search(r"vsqrtpd\s+%zmm", body)
    assert re.search(r"vfmadd\d+pd\s+.*%zmm", body)
    assert not re.search(r"vdivpd\s+%zmm", body)  # the quotient is the FMA units'


def test_the_step_divides_where_the_divider_is_quick(monkeypatch):
    """options.DIVIDE_STEP: the optimizers' float64 step divides where the
    target has no AVX-512 estimate and its divider is quick (AMD Zen 2
    onwards, by LLVM's name for the CPU); Intel's AVX2 CPUs and Zen 1 keep
    kernels.quotient's Newton steps. Every way gives the same cells
    (test_vector_step_equals_the_divided_loop, tests/test_quotient.py)."""
    from kernels import options
    assert options.DIVIDE_STEP == (target.fast_divider() and not vmod.VECTOR_STEP)
    for name, quick in [("znver2", True), ("znver3", True), ("znver4", True), ("znver1", False),
                        ("haswell", False), ("skylake", False), ("skylake-avx512", False), ("generic", False)]:
        monkeypatch.setattr(target, "cpu_name", lambda name=name: name)
        assert target.fast_divider() is quick, name


@avx512
@pytest.mark.parametrize("kind", [ADAM, RMSPROP])
@pytest.mark.parametrize("n", [8, 13, 64])
def test_vector_step_says_whether_its_cells_are_finite(kind, n):
    """1 where every new cell is finite, 0 where one is not: a NaN or an
    infinite gradient in any lane of a whole vector or of the tail (the
    scratch's lanes past the tail are zeros, which step to 0: finite)."""
    p, g0, v0, s0 = _cells(n, n)
    for where in range(n):
        for bad in (np.nan, np.inf):
            g = g0.copy()
            g[where] = bad
            out, v, s = np.empty(n), v0.copy(), s0.copy()
            assert _compiled_vector_step(out, v, s, p, g, 0.01, kind, 0.9, 0.999, 1e-8) == 0, (where, bad)
            assert not np.isfinite(out).all()
    out = np.empty(n)
    assert _compiled_vector_step(out, v0.copy(), s0.copy(), p, g0, 0.01, kind, 0.9, 0.999, 1e-8) == 1
