"""The SIMD lesson's claims, read from this machine's compiled code."""

import platform

import numpy as np
import pytest

from jitloops import simd as lesson
from kernels import loops, simd

# The instruction and register names read here are x86-64's (SSE/AVX).
x86_only = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                              reason="the SIMD lesson reads x86-64 assembly")


@pytest.fixture(scope="module")
def dot_counts():
    a = np.linspace(0.0, 1.0, 1000)
    counts = {}
    for fastmath in (False, True):
        d = simd.compile_variant(loops.dot, fastmath, "_test")
        assert d(a, a) == pytest.approx(float(a @ a), rel=1e-12)
        counts[fastmath] = simd.count_instructions(simd.kernel_asm(d))
    return counts


@x86_only
def test_plain_dot_is_scalar(dot_counts):
    c = dot_counts[False]
    assert c["packed"] == 0, f"plain dot has packed arithmetic: {c['examples']}"
    assert c["scalar"] > 0


@x86_only
def test_fastmath_dot_is_packed_fma(dot_counts):
    c = dot_counts[True]
    assert c["packed"] > 0
    if "fma" in lesson.cpu_info()["simd"]:
        assert c["packed_fma"] > 0
    if "avx" in lesson.cpu_info()["simd"]:
        assert c["widest"] in ("ymm", "zmm") and c["ymm"] + c["zmm"] > 0


def test_count_instructions_on_known_text():
    asm = "\n".join([
        "\tvfmadd231pd\t(%rcx,%r9,8), %ymm4, %ymm1",
        "\tvaddpd\t%xmm1, %xmm0, %xmm0",
        "\tvaddsd\t%xmm1, %xmm0, %xmm0",
        "\tvmulss\t%xmm2, %xmm3, %xmm3",
        "\tvmovupd\t(%rax), %zmm0",   # a move: registers counted, not arithmetic
        "\t.p2align\t4, 0x90",
    ])
    c = simd.count_instructions(asm)
    assert (c["packed"], c["scalar"], c["fma"], c["packed_fma"]) == (2, 2, 1, 1)
    assert (c["xmm"], c["ymm"], c["zmm"]) == (9, 2, 1)
    assert c["widest"] == "ymm"


def test_report_structure():
    rep = lesson.report(min_time=0.0, zmm=False)
    assert set(rep) == {"cpu", "dot", "linear_forward", "zmm", "findings", "lessons"}
    assert len(rep["dot"]) == 4 and len(rep["linear_forward"]) == 8
    for row in rep["dot"] + rep["linear_forward"]:
        assert row["time_s"] > 0 and row["gflops"] > 0
        assert row["rel_error"] < (1e-2 if row["dtype"] == "float32" else 1e-10)
        assert {"packed", "scalar", "xmm", "ymm", "zmm"} <= set(row["counts"])
    f = rep["findings"]
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert f["plain_dot_is_scalar"] and f["fastmath_dot_is_packed"]
    text = lesson.format_report(rep)
    assert "fastmath" in text and "prefer-256-bit" in text
    # the explanations name what the table found, not one machine's registers
    fast = next(r for r in rep["dot"] if r["variant"] == "fastmath" and r["dtype"] == "float64")
    width = fast["counts"]["widest"]
    if width:
        lanes = lesson.REGISTER_BITS[width] // 64
        assert f"here {fast['accumulators']} {width} registers of {lanes} doubles each" in rep["lessons"]["fastmath"]
        assert f"{lesson.REGISTER_BITS[width]}-bit {width} register holds {lanes} doubles" in rep["lessons"]["float32"]
        assert rep["lessons"]["width"].startswith("512-bit zmm" if width == "zmm" else width)
        assert f["fastmath_dot_accumulators"] >= 1


def _findings(**kw):
    f = dict(fastmath_dot_width="ymm", fastmath_dot_accumulators=4, fastmath_dot_uses_fma=True, target_widest="zmm",
             strided_fastmath_width="ymm", strided_plain_is_scalar=True, contiguous_plain_is_packed=True)
    f.update(kw)
    return f


def test_the_explanations_follow_the_registers_the_code_uses():
    intel = lesson.lessons(_findings(), "skylake-avx512")
    assert "4 ymm registers of 4 doubles each = 16 partial sums" in intel["fastmath"]
    assert "a 256-bit ymm register holds 4 doubles or 8 floats" in intel["float32"]
    assert intel["width"].startswith("ymm registers even on a CPU with 512-bit zmm ones")
    assert "packed FMAs over 4 values of p" in intel["strided"]
    zen4 = lesson.lessons(_findings(fastmath_dot_width="zmm", strided_fastmath_width="zmm"), "znver4")
    assert "4 zmm registers of 8 doubles each = 32 partial sums" in zen4["fastmath"]
    assert "a 512-bit zmm register holds 8 doubles or 16 floats" in zen4["float32"]
    assert zen4["width"].startswith("512-bit zmm registers: LLVM's tuning for this CPU (znver4)")
    assert "ymm registers of" not in " ".join(zen4.values())
    avx2 = lesson.lessons(_findings(target_widest="ymm"), "haswell")
    assert avx2["width"].startswith("ymm registers; this CPU's widest are ymm")


def test_accumulators_are_the_packed_fmas_destinations():
    asm = "\n".join([
        "\tvfmadd231pd\t(%rax,%r9,8), %zmm4, %zmm1",
        "\tvfmadd231pd\t64(%rax,%r9,8), %zmm5, %zmm0",
        "\tvfmadd231pd\t(%rax,%r9,8), %zmm4, %zmm1",    # the loop's second copy: the same sums
        "\tvaddpd\t%zmm1, %zmm0, %zmm0",
        "\tvfmadd231pd\t(%rax,%r8,8), %ymm1, %ymm0",    # the remainder: narrower
    ])
    assert lesson.accumulators(asm, "zmm") == 2 and lesson.accumulators(asm, "ymm") == 1
    assert lesson.accumulators("\taddpd\t%xmm1, %xmm0\n\taddpd\t%xmm3, %xmm2", "xmm") == 2  # SSE2, no FMA
    assert lesson.accumulators(asm, None) == 0
