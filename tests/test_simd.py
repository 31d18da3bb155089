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
