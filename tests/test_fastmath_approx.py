"""Error bounds of the vectorizable transcendentals in ``kernels.approx``.

Every binade of the float range is sampled densely (both signs, subnormals
included, plus each binade's end points), and the special values are checked
exactly. The error is measured in units in the last place (ulp) of the true
result: against np.longdouble (80-bit x87, 64-bit mantissa) for float64 and
against float64 NumPy for float32. The bounds asserted here are the ones
documented in ``kernels.approx``; NumPy's own error on the same points is
printed beside them by ``python -m tests.test_fastmath_approx``.
"""

import re

import numba
import numpy as np
import pytest

from kernels import approx, simd, target

FUNCS = {
    "exp": approx.exp_approx,
    "tanh": approx.tanh_approx,
    "sigmoid": approx.sigmoid_approx,
    "log": approx.log_approx,
}

# Maximum error in ulp, asserted (the measured maxima are in kernels/approx.py).
BOUNDS = {
    ("exp", np.float64): 1.0, ("exp", np.float32): 1.0,
    ("tanh", np.float64): 3.0, ("tanh", np.float32): 3.0,
    ("sigmoid", np.float64): 3.0, ("sigmoid", np.float32): 3.0,
    ("log", np.float64): 1.0, ("log", np.float32): 1.0,
}


def _reference(name, x):
    """The true value, in a wider type than x's."""
    wide = np.longdouble if x.dtype == np.float64 else np.float64
    xw = x.astype(wide)
    with np.errstate(all="ignore"):
        if name == "exp":
            return np.exp(xw)
        if name == "tanh":
            return np.tanh(xw)
        if name == "sigmoid":
            e = np.exp(-np.abs(xw))
            return np.where(xw >= 0, 1, e) / (1 + e)
        return np.log(xw)


def ulp_error(approx_values, ref, dtype):
    """|approx - ref| in ulps of ref's binade in ``dtype`` (subnormal spacing
    below the normal range); 0 where both are the same inf or both NaN, inf
    where only one of them is inf or NaN."""
    fi = np.finfo(dtype)
    p = fi.nmant + 1
    wide = ref.dtype
    a = approx_values.astype(wide)
    with np.errstate(all="ignore"):
        _, e = np.frexp(np.where(np.isfinite(ref) & (ref != 0), ref, 1).astype(wide))
        ulp = np.ldexp(np.ones_like(ref), (e - p).astype(np.int32))
        ulp = np.maximum(ulp, wide.type(fi.smallest_subnormal))
        err = np.abs(a - ref) / ulp
    with np.errstate(all="ignore"):
        rounded = ref.astype(dtype).astype(wide)  # inf where the true value overflows dtype
    same = (a == ref) | (a == rounded) | (np.isnan(a) & np.isnan(ref))
    err = np.where(same, 0, err)
    return np.where(np.isfinite(err), err, np.inf)


def samples(dtype, per_binade, seed=0):
    """Each binade's end points and ``per_binade`` random mantissas, both signs."""
    rng = np.random.default_rng(seed)
    if dtype == np.float64:
        nbits, nmant, itype = 64, 52, np.int64
    else:
        nbits, nmant, itype = 32, 23, np.int32
    emax = (1 << (nbits - 1 - nmant)) - 1  # exponent field of inf/NaN
    exps = np.arange(0, emax, dtype=np.int64)  # 0 is the subnormal "binade"
    mant = rng.integers(0, 1 << nmant, size=(exps.size, per_binade), dtype=np.int64)
    mant[:, 0] = 0
    mant[:, 1] = (1 << nmant) - 1
    bits = (exps[:, None] << nmant) | mant
    x = bits.astype(itype).view(dtype).ravel()
    return np.concatenate([x, -x])


SPECIALS = {
    # (x, expected f(x)) checked exactly, NaN in -> NaN out
    "exp": [(0.0, 1.0), (-0.0, 1.0), (np.inf, np.inf), (-np.inf, 0.0), (np.nan, np.nan)],
    "tanh": [(0.0, 0.0), (-0.0, -0.0), (np.inf, 1.0), (-np.inf, -1.0), (np.nan, np.nan),
             (30.0, 1.0), (-30.0, -1.0)],
    "sigmoid": [(0.0, 0.5), (-0.0, 0.5), (np.inf, 1.0), (-np.inf, 0.0), (np.nan, np.nan),
                (-1e30, 0.0), (1e30, 1.0)],
    "log": [(1.0, 0.0), (0.0, -np.inf), (-0.0, -np.inf), (np.inf, np.inf), (-np.inf, np.nan),
            (-1.0, np.nan), (np.nan, np.nan)],
}

_compiled = {}


def compiled_row(name):
    """f applied over a row inside an njit loop, with the kernels' flags."""
    if name not in _compiled:
        f = FUNCS[name]

        @numba.njit(error_model="numpy", fastmath={"reassoc", "contract"})
        def row(out, x):
            for j in range(x.shape[0]):
                out[j] = f(x[j])

        _compiled[name] = row
    return _compiled[name]


def measure(name, dtype, per_binade=256):
    x = samples(dtype, per_binade)
    out = np.empty_like(x)
    compiled_row(name)(out, x)
    ref = _reference(name, x)
    err = ulp_error(out, ref, dtype)
    with np.errstate(all="ignore"):
        mine = {"exp": np.exp, "tanh": np.tanh, "log": np.log,
                "sigmoid": lambda v: np.where(v >= 0, 1, np.exp(-np.abs(v))) / (1 + np.exp(-np.abs(v)))}[name](x)
    return x, err, ulp_error(mine, ref, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(FUNCS))
def test_error_bound_whole_range(name, dtype):
    x, err, _ = measure(name, dtype)
    worst = int(np.argmax(err))
    assert err[worst] <= BOUNDS[name, dtype], (
        f"{name} {dtype.__name__}: {err[worst]:.3f} ulp at x = {x[worst]!r}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(FUNCS))
def test_special_values(name, dtype):
    xs = np.array([v for v, _ in SPECIALS[name]], dtype=dtype)
    want = np.array([w for _, w in SPECIALS[name]], dtype=dtype)
    got = np.empty_like(xs)
    compiled_row(name)(got, xs)
    np.testing.assert_array_equal(got, want)
    ok = ~np.isnan(want)  # the sign of a NaN means nothing
    np.testing.assert_array_equal(np.signbit(got[ok]), np.signbit(want[ok]))
    interpreted = np.array([FUNCS[name](v) for v in xs], dtype=dtype)  # backend "python"
    np.testing.assert_array_equal(interpreted, want)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(FUNCS))
def test_interpreted_matches_compiled(name, dtype):
    """The same source run by the interpreter (backend "python") agrees with
    the compiled one (FMA contraction may differ by an ulp)."""
    x = samples(dtype, 2, seed=1)[::7]
    got = np.empty_like(x)
    compiled_row(name)(got, x)
    interpreted = np.array([FUNCS[name](v) for v in x], dtype=dtype)
    assert interpreted.dtype == dtype
    ref = _reference(name, x)
    assert ulp_error(interpreted, ref, dtype).max() <= BOUNDS[name, dtype] + 1


# These read x86-64 assembly (AT&T syntax, as LLVM prints it); what they
# expect follows from what the compile target has (kernels.target), which
# NUMBA_CPU_NAME can make different from the machine the tests run on.
x86_only = pytest.mark.skipif(not target.is_x86(), reason="reads x86-64 assembly; this CPU is not x86-64")


@x86_only
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(FUNCS))
def test_vectorized_without_libm_calls(name, dtype):
    """The loop over a row is SIMD (packed arithmetic, in ymm or zmm registers
    where the target has AVX) and calls no libm function: the reason these
    approximations exist."""
    row = compiled_row(name)
    x = np.ones(8, dtype=dtype)
    row(np.empty_like(x), x)
    sig = [s for s in row.signatures if s[1].dtype == numba.from_dtype(np.dtype(dtype))][0]
    asm = row.inspect_asm(sig)
    suffix = "pd" if dtype == np.float64 else "ps"
    registers = "[yz]mm" if "avx" in target.features() else "xmm"
    assert re.search(rf"\bv?(mul|fmadd\w*|add){suffix}\s+.*%{registers}", asm), \
        f"loop not vectorized: no packed {suffix} arithmetic on %{registers} ({target.describe()})"
    assert not re.search(r"call\w*\s+.*\b(exp|expf|tanh|tanhf|log|logf)\b", asm)


@x86_only
def test_float32_stays_float32():
    """No float64 computation in the float32 versions (a float64 constant
    would promote them): no double-precision arithmetic and no conversion to
    or from double (simd.float64_instructions; shuffles such as vpermpd move
    bits, they do not compute in float64)."""
    for name in FUNCS:
        row = compiled_row(name)
        x = np.ones(8, dtype=np.float32)
        row(np.empty_like(x), x)
        sig = [s for s in row.signatures if s[1].dtype == numba.float32][0]
        asm = simd.kernel_asm(row, sig)
        assert simd.float64_instructions(asm) == [], name


def test_float64_detector_reads_meaning_not_suffixes():
    """The detector above flags double arithmetic and conversions, and not the
    lane permutes, moves and broadcasts that LLVM emits for float32 data on
    AVX2 targets (vpermpd failed the old pattern on an AMD EPYC)."""
    moves = "\n".join("\t" + line for line in (
        "vpermpd $78, %ymm0, %ymm1", "vmovapd %ymm0, %ymm1", "vmovsd (%rax), %xmm0",
        "vbroadcastsd (%rax), %ymm0", "vandpd %ymm0, %ymm1, %ymm2", "vshufpd $1, %xmm0, %xmm0, %xmm1",
        "vaddps %ymm1, %ymm2, %ymm3", "vcvtsi2ss %rax, %xmm0, %xmm0"))
    assert simd.float64_instructions(moves) == []
    for line in ("vaddpd %ymm1, %ymm2, %ymm3", "vfmadd231sd %xmm1, %xmm2, %xmm3", "vcvtss2sd %xmm0, %xmm0, %xmm0",
                 "vcvtps2pd %xmm0, %ymm0", "vcvtpd2ps %ymm0, %xmm0", "vdivsd %xmm0, %xmm1, %xmm1", "mulpd %xmm0, %xmm1"):
        assert simd.float64_instructions("\t" + line) == [line], line


if __name__ == "__main__":  # the table in kernels/approx.py
    for name in FUNCS:
        for dtype in (np.float64, np.float32):
            x, err, npy = measure(name, dtype, per_binade=4096 if dtype == np.float32 else 1024)
            w = int(np.argmax(err))
            print(f"{name:8s} {dtype.__name__:8s} max {err[w]:.3f} ulp at {x[w]!r}; "
                  f"NumPy {npy.max():.3f} ulp; points {x.size}")
