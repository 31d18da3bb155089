"""``jitloops simd``: the SIMD lesson, read from this machine's own compiled code.

Two kernels are compiled in several variants (``kernels.simd``: the lesson's
material), and for each variant we read the assembly Numba generated, count
the vector registers (xmm = 128 bits, ymm = 256, zmm = 512) and the
floating-point arithmetic instructions -- packed (``vfmadd231pd``,
``vaddps``: one instruction, several lanes) or scalar (``vaddsd``: one lane)
-- and time it:

- the dot product ``s += a[i] * b[i]``, the library's own ``kernels.loops.dot``,
  with and without fastmath, in float64 and float32;
- the linear forward ``Z = W A_prev + b`` written with two loop orders,
  "contiguous" (``kernels.simd.forward_contiguous``, the order
  ``kernels.loops`` uses) and "strided" (``kernels.simd.forward_strided``),
  each with and without fastmath, float64 and float32.

Usage::

    from jitloops.simd import format_report, report
    rep = report()                   # dict: variants, counts, times, findings
    print(format_report(rep))
"""

import json
import os
import re
import subprocess
import sys

import numpy as np

from kernels import loops, simd, target

from . import options
from .bench.dot import DOT_N
from .bench.machine import cpu_info
from .bench.report import format_table
from .timing import best_time, format_seconds

# Sizes of the timed runs: the course's 1,000,000-element dot (DOT_N, 16 MB in
# float64: memory sets the pace), a dot whose two vectors fit in L2
# (2 x 16384 x 8 bytes = 256 KiB) so that the arithmetic sets the pace and a
# call is long enough (microseconds) that the call overhead does not hide it,
# and one forward layer (n, k, m) that fits in L2.
DOT_SMALL_N = 16384
FORWARD_SHAPE = (64, 64, 1024)


def _dot_variants(rng, min_time):
    rows = []
    for dtype in (np.float64, np.float32):
        a = rng.standard_normal(DOT_N).astype(dtype)
        b = rng.standard_normal(DOT_N).astype(dtype)
        as_, bs_ = a[:DOT_SMALL_N].copy(), b[:DOT_SMALL_N].copy()
        ref = float(np.dot(a.astype(np.float64), b.astype(np.float64)))
        for fastmath in (False, True):
            d = simd.compile_variant(loops.dot, fastmath, "_" + np.dtype(dtype).name)
            got = float(d(a, b))  # compiles
            asm = simd.kernel_asm(d)
            counts = simd.count_instructions(asm)
            t = best_time(lambda: d(a, b), min_time)
            t1 = best_time(lambda: d(as_, bs_), min_time)
            rows.append(dict(
                kernel="dot", variant="fastmath" if fastmath else "plain", dtype=np.dtype(dtype).name,
                order="contiguous", counts=counts, time_s=t, n=DOT_N,
                gflops=2 * DOT_N / t / 1e9, time_small_s=t1, n_small=DOT_SMALL_N,
                gflops_small=2 * DOT_SMALL_N / t1 / 1e9, accumulators=accumulators(asm, counts["widest"]),
                rel_error=abs(got - ref) / max(abs(ref), 1e-30)))
    return rows


def _forward_variants(rng, min_time):
    n, k, m = FORWARD_SHAPE
    rows = []
    for dtype in (np.float64, np.float32):
        W = rng.standard_normal((n, k)).astype(dtype)
        A = rng.standard_normal((k, m)).astype(dtype)
        b = rng.standard_normal((n, 1)).astype(dtype)
        ref = W.astype(np.float64) @ A.astype(np.float64) + b
        for order, func in (("contiguous", simd.forward_contiguous), ("strided", simd.forward_strided)):
            for fastmath in (False, True):
                d = simd.compile_variant(func, fastmath, "_" + np.dtype(dtype).name)
                Z = np.empty((n, m), dtype)
                d(Z, A, W, b)
                counts = simd.count_instructions(simd.kernel_asm(d))
                t = best_time(lambda: d(Z, A, W, b), min_time)
                rows.append(dict(
                    kernel="linear_forward", variant="fastmath" if fastmath else "plain",
                    dtype=np.dtype(dtype).name, order=order, counts=counts, time_s=t,
                    shape=FORWARD_SHAPE, gflops=2 * n * k * m / t / 1e9,
                    rel_error=float(np.max(np.abs(Z - ref)) / np.max(np.abs(ref)))))
    return rows


_ZMM_SCRIPT = r"""
import json, numpy as np
from kernels import loops, simd
from jitloops.timing import best_time
d = simd.compile_variant(loops.dot, True, "_zmm")
a = np.random.default_rng(0).standard_normal(%d); b = a[::-1].copy()
d(a, b)
c = simd.count_instructions(simd.kernel_asm(d))
print(json.dumps(dict(counts=c, time_small_s=best_time(lambda: d(a, b), %r))))
"""


def _zmm_variant(min_time):
    """The fastmath float64 dot compiled in a fresh process with LLVM's
    'prefer-256-bit' tuning turned off (NUMBA_CPU_FEATURES = host features +
    '-prefer-256-bit'), so it may use 512-bit zmm registers. None where the CPU
    has no AVX-512 or the subprocess fails."""
    if not target.is_x86() or "avx512f" not in target.features():
        return None
    try:
        import llvmlite.binding as llb
        features = llb.get_host_cpu_features().flatten()
    except Exception:
        return None
    env = dict(os.environ, NUMBA_CPU_FEATURES=features + ",-prefer-256-bit")
    try:
        out = subprocess.run([sys.executable, "-c", _ZMM_SCRIPT % (DOT_SMALL_N, min_time)],
                             env=env, capture_output=True, text=True, timeout=120, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
    except Exception as exc:  # a lesson extra, never a failure
        return {"error": f"{type(exc).__name__}: {exc}"}
    result["gflops_small"] = 2 * DOT_SMALL_N / result["time_small_s"] / 1e9
    return result


REGISTER_BITS = {"xmm": 128, "ymm": 256, "zmm": 512}
# a packed FMA or add (SSE or VEX/EVEX) and its operands; AT&T syntax: the destination is the last one
_PACKED_SUM_RE = re.compile(r"^\s+v?(fmadd\d{3}|add)p[sd]\s+(.*?%([xyz]mm\d+))\s*$")


def accumulators(asm, width):
    """How many distinct ``width`` registers (e.g. "zmm") the packed FMAs of
    ``asm`` write, or its packed adds where it has no FMA: a reduction's
    vector partial sums, the registers it keeps its running sums in."""
    found = {"fmadd": set(), "add": set()}
    for line in asm.splitlines():
        m = _PACKED_SUM_RE.match(line)
        if m and width and m.group(3).startswith(width):
            found["fmadd" if m.group(1).startswith("fmadd") else "add"].add(m.group(3))
    return len(found["fmadd"] or found["add"])


def _lane_words(width):
    """ "a 512-bit zmm register holds 8 doubles or 16 floats" for a register kind."""
    bits = REGISTER_BITS[width]
    return f"a {bits}-bit {width} register holds {bits // 64} doubles or {bits // 32} floats"


def lessons(findings, llvm_cpu="this CPU", zmm=None):
    """The explanations, worded from what this run measured (``findings``:
    report()'s; ``zmm``: the 512-bit variant's row or None): the register
    kind and count the fastmath dot's code uses, the lanes the strided
    forward packs, the CPU's widest registers."""
    f = findings
    width, acc, widest = f["fastmath_dot_width"], f["fastmath_dot_accumulators"], f["target_widest"]
    lanes = REGISTER_BITS[width] // 64 if width else 1
    out = {"reduction": (
        "The plain dot is scalar: `s += a[i] * b[i]` is a chain of additions into one "
        "variable, and IEEE arithmetic is not associative, so the compiler may not reorder "
        "it into several partial sums (one per SIMD lane) without changing the rounding. "
        "Without permission it keeps the exact order: one scalar add after another, each "
        "waiting for the previous one's result (the add's latency, 2 to 4 cycles by core).")}
    if width:
        fused = ("fuses each multiply-add into one FMA instruction" if f["fastmath_dot_uses_fma"]
                 else "multiplies and adds with packed instructions (no FMA in this code)")
        out["fastmath"] = (
            f"fastmath ('reassoc' + 'contract') grants that permission: LLVM keeps several vector "
            + (f"accumulators (here {acc} {width} registers of {lanes} doubles each = {acc * lanes} partial sums), "
               if acc else f"accumulators ({width} registers of {lanes} doubles each), ")
            + f"{fused}, and adds the partial sums at the end. Same math, different rounding (it is usually "
            f"*more* accurate: pairwise-like summation).")
        out["float32"] = (f"float32 doubles the lanes: {_lane_words(width)}, so the same instruction count "
                          f"does twice the work and half the bytes are read.")
    else:
        out["fastmath"] = ("fastmath ('reassoc' + 'contract') grants the permission to keep several partial "
                           "sums, but this machine's code for the dot has no packed arithmetic at all.")
        out["float32"] = "float32 has twice the lanes of float64 in a vector register, where the code is packed."
    s_width = f["strided_fastmath_width"]
    s_lanes = REGISTER_BITS[s_width] // 64 if s_width else 0
    out["strided"] = (
        "The strided order is slow: its innermost loop walks down a column of A_prev, m elements apart, so "
        "each element sits on its own cache line and no vector can be loaded in one go. "
        + ("Without fastmath it is a scalar reduction as well. " if f["strided_plain_is_scalar"] else "")
        + (f"With fastmath LLVM does vectorize it -- packed FMAs over {s_lanes} values of p ({s_width}), W's row "
           f"loaded as a vector -- but each vector of A_prev is assembled from {s_lanes} scalar loads from "
           f"{s_lanes} cache lines, so the packed arithmetic buys nothing. " if s_width else
           "Even with fastmath this machine's code for it has no packed arithmetic. ")
        + "The contiguous order walks a row with unit stride (an axpy `z[j] += w * a[j]`, no reduction)"
        + (", which vectorizes even without fastmath (then with a multiply and an add instead of one FMA)."
           if f["contiguous_plain_is_packed"] else "."))
    tuning = ("LLVM's tuning for Intel server cores (Skylake-X and later) sets 'prefer-256-bit' "
              "(prefer-vector-width=256), because heavy 512-bit instructions lower the core clock (AVX-512 "
              "frequency licences) and that can slow the whole program, while memory often cannot feed 512-bit "
              "loads anyway")
    if widest is None:
        out["width"] = ("The register names above are x86's; this CPU is not x86, so its vector code is not "
                        "counted in them.")
    elif width == "zmm":
        out["width"] = (f"512-bit zmm registers: LLVM's tuning for this CPU ({llvm_cpu}) lets the vectorizer "
                        f"use the full AVX-512 width. Not every AVX-512 CPU gets them: {tuning}, and there the "
                        f"same loop gets ymm registers.")
    elif widest == "zmm":
        out["width"] = (f"{width} registers even on a CPU with 512-bit zmm ones: {tuning}. This CPU's tuning "
                        f"({llvm_cpu}) does the same. Turning it off (NUMBA_CPU_FEATURES=<host "
                        f"features>,-prefer-256-bit) gives zmm code.")
    else:
        out["width"] = (f"{width or 'No vector'} registers; this CPU's widest are {widest} (no AVX-512: on "
                        f"CPUs with it, LLVM's 'prefer-256-bit' tuning decides between ymm and zmm).")
    if zmm and "counts" in zmm and f.get("zmm_speedup_small"):
        out["width"] += (f" The '512-bit' row, compiled with 'prefer-256-bit' off, uses "
                         f"{zmm['counts']['widest'] or 'no vector'} registers: {f['zmm_speedup_small']:.2f}x "
                         f"the speed of the default code in L2.")
    return out


def report(min_time=0.05, zmm=True, seed=0):
    """Compile, read and time every variant. Returns a dict:

    cpu: ``cpu_info()``; dot, linear_forward: lists of variant dicts (kernel,
    variant 'plain'/'fastmath', dtype, order, counts from
    ``count_instructions``, time_s, gflops, rel_error against float64 NumPy);
    zmm: the 512-bit dot variant or None; findings: booleans the lesson rests
    on, read from this machine's code; lessons: the explanations.
    """
    rng = np.random.default_rng(seed)
    dots = _dot_variants(rng, min_time)
    forwards = _forward_variants(rng, min_time)

    def pick(rows, **kw):
        return next(r for r in rows if all(r[k] == v for k, v in kw.items()))

    plain = pick(dots, variant="plain", dtype="float64")
    fast = pick(dots, variant="fastmath", dtype="float64")
    fast32 = pick(dots, variant="fastmath", dtype="float32")
    contig = pick(forwards, variant="fastmath", dtype="float64", order="contiguous")
    strided = pick(forwards, variant="fastmath", dtype="float64", order="strided")
    findings = dict(
        plain_dot_is_scalar=plain["counts"]["packed"] == 0 and plain["counts"]["scalar"] > 0,
        fastmath_dot_is_packed=fast["counts"]["packed"] > 0,
        fastmath_dot_uses_fma=fast["counts"]["packed_fma"] > 0,
        fastmath_dot_width=fast["counts"]["widest"],
        fastmath_speedup_small=plain["time_small_s"] / fast["time_small_s"],
        fastmath_speedup_1m=plain["time_s"] / fast["time_s"],
        float32_speedup_small=fast["time_small_s"] / fast32["time_small_s"],
        strided_slowdown=strided["time_s"] / contig["time_s"],
        fastmath_dot_accumulators=fast["accumulators"],
        strided_fastmath_width=strided["counts"]["widest"],
        strided_plain_is_scalar=pick(forwards, variant="plain", dtype="float64", order="strided")["counts"][
            "packed"] == 0,
        contiguous_plain_is_packed=pick(forwards, variant="plain", dtype="float64", order="contiguous")["counts"][
            "packed"] > 0,
        target_widest=target.widest_register(),
    )
    wide = _zmm_variant(min_time) if zmm else None
    if wide and "counts" in wide:
        findings["zmm_speedup_small"] = fast["time_small_s"] / wide["time_small_s"]
    cpu = cpu_info()
    return dict(cpu=cpu, dot=dots, linear_forward=forwards, zmm=wide, findings=findings,
                lessons=lessons(findings, cpu.get("llvm_cpu") or "this CPU", wide))


def _counts_cells(c):
    return [str(c["xmm"]), str(c["ymm"]), str(c["zmm"]), str(c["packed"]), str(c["scalar"]),
            str(c["packed_fma"]), c["widest"] or "-"]


def format_report(rep):
    """The report as text: the tables and the lessons."""
    cpu = rep["cpu"]
    out = [f"CPU: {cpu['model']} (LLVM: {cpu['llvm_cpu']}), {cpu['cores']} cores, "
           f"SIMD: {' '.join(cpu['simd'])}",
           "Registers counted in the kernel's own assembly (wrappers excluded); "
           "packed/scalar = floating-point arithmetic instructions; "
           "pFMA = packed fused multiply-adds; widest = widest register of a packed one. "
           "Times: the fastest of repeated calls after a warm-up call.",
           ""]
    hdr = ["variant", "dtype", "xmm", "ymm", "zmm", "packed", "scalar", "pFMA", "widest"]
    rows = []
    for r in rep["dot"]:
        rows.append([r["variant"], r["dtype"]] + _counts_cells(r["counts"]) + [
            format_seconds(r["time_s"]), f"{r['gflops']:.1f}", format_seconds(r["time_small_s"]),
            f"{r['gflops_small']:.1f}"])
    z = rep.get("zmm")
    if z and "counts" in z:
        rows.append(["fastmath, 512-bit", "float64"] + _counts_cells(z["counts"]) + [
            "-", "-", format_seconds(z["time_small_s"]), f"{z['gflops_small']:.1f}"])
    out.append(f"dot product s += a[i]*b[i] (kernels.loops.dot), n = {DOT_N:,} and n = {DOT_SMALL_N} (fits L2)")
    out.append(format_table(hdr + [f"time {DOT_N // 10**6}M", "GFLOP/s", f"time {DOT_SMALL_N}", "GFLOP/s"], rows,
                            left=1))
    out.append("")
    n, k, m = FORWARD_SHAPE
    rows = []
    for r in rep["linear_forward"]:
        rows.append([f"{r['order']} {r['variant']}", r["dtype"]] + _counts_cells(r["counts"]) + [
            format_seconds(r["time_s"]), f"{r['gflops']:.1f}"])
    out.append(f"linear forward Z = W A_prev + b, (n, k, m) = ({n}, {k}, {m})")
    out.append(format_table(hdr + ["time", "GFLOP/s"], rows, left=1))
    out.append("")
    f = rep["findings"]
    out.append("On this machine:")
    out.append(f"  plain dot scalar only: {f['plain_dot_is_scalar']}; fastmath dot packed: "
               f"{f['fastmath_dot_is_packed']} (FMA: {f['fastmath_dot_uses_fma']}, widest register "
               f"{f['fastmath_dot_width']})")
    out.append(f"  fastmath speed-up of the dot: {f['fastmath_speedup_small']:.1f}x in L2, "
               f"{f['fastmath_speedup_1m']:.1f}x at 1M elements (memory-bound there)")
    out.append(f"  float32 over float64 (fastmath dot, in L2): {f['float32_speedup_small']:.1f}x; "
               f"strided over contiguous forward (fastmath, float64): {f['strided_slowdown']:.1f}x slower")
    if z and "error" in z:
        out.append(f"  (512-bit variant not measured: {z['error']})")
    out.append("")
    out.append("Why:")
    for key in ("reduction", "fastmath", "float32", "strided", "width"):
        out.append(f"- {rep['lessons'][key]}")
    return "\n".join(out)


# --------------------------------------------------------------------------
# The command


def add_arguments(parser):
    parser.add_argument("--min-time", type=float, default=0.05,
                        help="seconds spent timing each variant (the fastest call is reported; default 0.05)")
    parser.add_argument("--no-zmm", action="store_true",
                        help="skip the 512-bit variant (compiled in a subprocess)")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON to PATH")


def run(args):
    try:  # before the lesson's minute of compiling and timing, not after it
        options.finite(args.min_time, "--min-time")
        if args.json is not None:
            options.output_path(args.json, "--json")
    except ValueError as exc:
        print(f"jitloops simd: {exc}", file=sys.stderr)
        return 2
    rep = report(min_time=args.min_time, zmm=not args.no_zmm)
    if args.json:  # before the printing: a reader that stops early (`| head`) must not cost the file
        with open(args.json, "w") as f:
            json.dump(rep, f, indent=2, default=str)
    print(format_report(rep))
    if args.json:
        print(f"\nwrote {args.json}")
    return 0
