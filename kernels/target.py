"""The CPU that Numba compiles for: its LLVM name, its features, its widest vectors.

Everything that depends on the CPU (the tests that read generated code, the
benchmark's peak figures, the SIMD lesson) asks here, never the development
machine and never ``/proc/cpuinfo`` alone: what counts is what LLVM was told
to compile for, which ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` can change.

``NUMBA_CPU_NAME`` alone
------------------------
Numba passes the *host's* feature list to LLVM even when ``NUMBA_CPU_NAME``
names another CPU, and LLVM lets the features win: on an AVX-512 machine
``NUMBA_CPU_NAME=znver1`` still compiles AVX-512 code. jitloops takes a CPU
name given without ``NUMBA_CPU_FEATURES`` to mean that CPU's own features
(``config.CPU_FEATURES = ""``, which LLVM reads as "the named CPU's
defaults"), so ``NUMBA_CPU_NAME=znver1`` (or ``haswell``) gives AVX2 code on
any x86-64 machine that can run it. This is set when ``kernels`` is
imported; code Numba compiled before that is unaffected.
"""

import os
import platform

from numba.core import config


def _name_only_means_its_features():
    if config.CPU_NAME and config.CPU_FEATURES is None and "NUMBA_CPU_FEATURES" not in os.environ:
        config.CPU_FEATURES = ""


_name_only_means_its_features()


def _codegen():
    from numba.core.registry import cpu_target
    return cpu_target.target_context.codegen()


def cpu_name():
    """LLVM's name of the CPU Numba compiles for (e.g. "znver4", "skylake-avx512")."""
    return _codegen()._get_host_cpu_name()


def features():
    """The features LLVM compiles with, as a set of names ("avx2", "fma", "avx512f", ...).

    With an explicit feature list (``NUMBA_CPU_FEATURES``, or a CPU name alone:
    see above) the named CPU's defaults are included, as LLVM includes them.
    """
    import llvmlite.binding as llvm
    cg = _codegen()
    listed = cg._get_host_cpu_features()
    names = set()
    if config.CPU_FEATURES is not None:
        names |= _cpu_defaults(cg._get_host_cpu_name())
    for item in filter(None, str(listed).split(",")):
        sign, name = item[0], item[1:]
        if sign == "+":
            names.add(name)
        elif sign == "-":
            names.discard(name)
    if not names and config.CPU_FEATURES is None:  # no list from Numba: ask LLVM
        names = {k for k, v in llvm.get_host_cpu_features().items() if v}
    return frozenset(names)


def _cpu_defaults(name):
    """The features LLVM enables for CPU ``name`` by default (x86 names we
    test with; an unknown name gives an empty set and callers skip)."""
    base = {"sse", "sse2", "sse3", "ssse3", "sse4.1", "sse4.2", "popcnt"}
    avx2 = base | {"avx", "avx2", "fma", "f16c", "bmi", "bmi2"}
    avx512 = avx2 | {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}
    table = {
        "generic": set(), "x86-64": {"sse", "sse2"},
        "x86-64-v2": base, "x86-64-v3": avx2, "x86-64-v4": avx512,
        "haswell": avx2, "broadwell": avx2, "skylake": avx2,
        "znver1": avx2, "znver2": avx2, "znver3": avx2,
        "skylake-avx512": avx512, "cascadelake": avx512, "icelake-server": avx512,
        "sapphirerapids": avx512, "emeraldrapids": avx512, "znver4": avx512, "znver5": avx512,
    }
    return set(table.get(name, set()))


def is_x86():
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def vector_bits():
    """The widest SIMD registers of the compile target, in bits (x86: 512 with
    AVX-512F, 256 with AVX, else 128; other architectures: 128, e.g. NEON)."""
    f = features()
    if is_x86():
        return 512 if "avx512f" in f else 256 if "avx" in f else 128
    return 128


def vector_registers():
    """How many SIMD registers the target has (x86-64: 32 with AVX-512, else 16;
    AArch64: 32)."""
    if is_x86():
        return 32 if "avx512f" in features() else 16
    return 32


def widest_register():
    """The x86 name of the widest vector register ("zmm", "ymm", "xmm"), or
    None on another architecture."""
    if not is_x86():
        return None
    return {512: "zmm", 256: "ymm", 128: "xmm"}[vector_bits()]


def micro_shape():
    """(rows, vectors per row) of the packed products' micro-kernel block
    for this target, from its register count. Its rows x vectors
    accumulators stay in registers across the reduction; each q broadcasts
    one value of A per row and takes the panel row's vectors as memory
    operands of the FMAs. 32 registers (AVX-512, NEON): 8 x 2 (16
    accumulators); 16 (AVX2): 3 x 4 (12), which the micro-kernel benchmark
    measured at twice 8 x 2's speed there (8 x 2 spills, and 6 x 2 and 4 x 3
    wait on their loads; the README's results)."""
    return (8, 2) if vector_registers() >= 32 else (3, 4)


# CPUs whose float64 divider is pipelined and quick (AMD Zen 2 onwards: a
# 256-bit division or square root every few cycles). There the optimizers'
# step divides (options.DIVIDE_STEP) where it has no AVX-512 estimate: on
# AVX2 code that beat kernels.quotient's Newton steps by 1.7x (docs/performance-log.md,
# "Dividing where the divider is quick"). Intel's and Zen 1's dividers take
# two to five times as long a vector by the published instruction tables
# (not measured here): they keep the Newton steps.
FAST_DIVIDER_CPUS = frozenset({"znver2", "znver3", "znver4", "znver5"})


def fast_divider():
    """Whether the compile target's float64 divider is quick (FAST_DIVIDER_CPUS)."""
    return cpu_name() in FAST_DIVIDER_CPUS


def has_fma():
    f = features()
    return "fma" in f or not is_x86() and platform.machine().lower() in ("aarch64", "arm64")


def describe():
    """One line: "znver4, AVX-512 (512-bit vectors, 32 registers)"."""
    bits = vector_bits()
    kind = {512: "AVX-512", 256: "AVX2" if "avx2" in features() else "AVX"}.get(bits, "128-bit SIMD")
    return f"{cpu_name()}, {kind} ({bits}-bit vectors, {vector_registers()} registers)"
