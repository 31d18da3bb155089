"""The SIMD lesson, read from this machine's own compiled code (``jitloops simd``).

Two kernels are compiled in several variants, and for each variant we read the
assembly Numba generated (``dispatcher.inspect_asm(signature)``), count the
vector registers (xmm = 128 bits, ymm = 256, zmm = 512) and the floating-point
arithmetic instructions -- packed (``vfmadd231pd``, ``vaddps``: one
instruction, several lanes) or scalar (``vaddsd``: one lane) -- and time it:

- the dot product ``s += a[i] * b[i]``, the library's own ``kernels.loops.dot``,
  with and without fastmath, in float64 and float32;
- the linear forward ``Z = W A_prev + b`` written with two loop orders:
  "contiguous" (innermost loop over the examples j of a row: ``z[j] += w * a[j]``,
  unit stride, the order ``kernels.loops`` uses) and "strided" (innermost loop
  over the inputs p: ``acc += W[i, p] * A_prev[p, j]``, jumping m elements at a
  time), each with and without fastmath, float64 and float32.

Each variant is its own function object compiled without Numba's on-disk cache,
so no variant can be served another's machine code (see ``kernels.cpu``).

Usage::

    report = kernels.simd.report()     # dict: variants, counts, times, findings
    print(kernels.simd.format_report(report))
"""

import os
import platform
import re
import subprocess
import sys
import time
import types

import numpy as np

from . import loops

FASTMATH = {"reassoc", "contract"}  # the library's flags (kernels.cpu.FASTMATH)

# Sizes of the timed runs: the course's 1,000,000-element dot (16 MB in
# float64: memory sets the pace), a dot whose two vectors fit in L2
# (2 x 16384 x 8 bytes = 256 KiB) so that the arithmetic sets the pace and a
# call is long enough (microseconds) that the call overhead does not hide it,
# and one forward layer (n, k, m) that fits in L2.
DOT_N = 1_000_000
DOT_SMALL_N = 16384
FORWARD_SHAPE = (64, 64, 1024)


# --------------------------------------------------------------------------
# The loop variants (the dot is kernels.loops.dot itself)


def forward_contiguous(Z, A_prev, W, b):
    """Z = W A_prev + b, innermost loop over the examples j of one row: unit
    stride in Z and A_prev, no reduction in the inner loop (an "axpy"), so it
    vectorizes even without fastmath. Z (n, m) out; A_prev (k, m); W (n, k); b (n, 1)."""
    n, k = W.shape
    m = A_prev.shape[1]
    for i in range(n):
        z = Z[i]
        bi = b[i, 0]
        for j in range(m):
            z[j] = bi
        for p in range(k):
            wp = W[i, p]
            a = A_prev[p]
            for j in range(m):
                z[j] += wp * a[j]


def forward_strided(Z, A_prev, W, b):
    """Z = W A_prev + b, innermost loop over the inputs p: a reduction into one
    scalar reading A_prev[p, j] with a stride of m elements (one cache line per
    element). Same arguments as ``forward_contiguous``."""
    n, k = W.shape
    m = A_prev.shape[1]
    for i in range(n):
        for j in range(m):
            acc = b[i, 0]
            for p in range(k):
                acc += W[i, p] * A_prev[p, j]
            Z[i, j] = acc


def _fresh(func, suffix):
    """A new function object over ``func``'s code, so that each variant is its
    own dispatcher (and would have its own cache entry)."""
    g = types.FunctionType(func.__code__, dict(func.__globals__), func.__name__ + suffix,
                           func.__defaults__, func.__closure__)
    g.__qualname__ = func.__qualname__ + suffix
    return g


def compile_variant(func, fastmath, suffix=""):
    """``func`` compiled serially by ``numba.njit``, with the library's fastmath
    flags or none, no on-disk cache."""
    import numba
    tag = "__simd_fast" if fastmath else "__simd_plain"
    return numba.njit(cache=False, error_model="numpy",
                      fastmath=FASTMATH if fastmath else False)(_fresh(func, tag + suffix))


# --------------------------------------------------------------------------
# Reading the assembly

_FUNC_RE = re.compile(r"^\s*\.type\s+([^,\s]+),@function", re.M)
_INSN_RE = re.compile(r"^\s+([a-z][a-z0-9]*)\s*(.*)$")
# Floating-point arithmetic: add/sub/mul/div/min/max/sqrt and the FMA family,
# packed (p) or scalar (s), double (d) or single (s), VEX/EVEX-encoded (v...).
_FP_ARITH_RE = re.compile(r"^v?(f?n?m?(?:add|sub|mul|div|min|max|sqrt)(?:\d{3})?|fn?m(?:add|sub)\d{3})(p|s)(d|s)$")
_REG_RE = re.compile(r"%(xmm|ymm|zmm)\d+")


def kernel_asm(dispatcher, signature=None):
    """The assembly of the compiled kernel itself, without Numba's CPython
    wrapper (``cpython.*``), its C wrapper (``cfunc.*``) and runtime helpers
    (``NRT_*``): their register moves are not the loop's arithmetic."""
    if signature is None:
        signature = dispatcher.signatures[0]
    asm = dispatcher.inspect_asm(signature)
    starts = [(m.start(), m.group(1)) for m in _FUNC_RE.finditer(asm)]
    parts = []
    for idx, (pos, name) in enumerate(starts):
        end = starts[idx + 1][0] if idx + 1 < len(starts) else len(asm)
        if name.startswith(("_ZN7cpython", "cfunc.", "NRT_")):
            continue
        parts.append(asm[pos:end])
    return "".join(parts) if parts else asm


_TO_OR_FROM_DOUBLE_RE = re.compile(r"^v?cvt\w*(2sd|2pd|sd2|pd2)\w*$")


def float64_instructions(asm):
    """The lines of x86 ``asm`` that compute in float64: double-precision
    arithmetic (add, sub, mul, div, min, max, sqrt, FMA; packed or scalar) and
    conversions to or from double. Moves, shuffles, permutes, broadcasts and
    bitwise ops on "pd" registers (vpermpd, vmovapd, vbroadcastsd, vandpd)
    are not computation and are not listed: LLVM uses them on any data."""
    found = []
    for line in asm.splitlines():
        m = _INSN_RE.match(line)
        if not m:
            continue
        op = m.group(1)
        fp = _FP_ARITH_RE.match(op)
        if (fp and fp.group(3) == "d") or _TO_OR_FROM_DOUBLE_RE.match(op):
            found.append(line.strip())
    return found


def count_instructions(asm):
    """Counts in ``asm`` (text): vector-register mentions by width, and the
    floating-point arithmetic instructions, packed vs scalar, FMA among them.

    Returns a dict: xmm, ymm, zmm (register mentions anywhere in the kernel),
    packed, scalar, fma, packed_fma (arithmetic instructions), widest (the
    widest register any packed arithmetic instruction uses: 'xmm', 'ymm',
    'zmm' or None), examples (a few of the packed arithmetic lines).
    """
    counts = {"xmm": 0, "ymm": 0, "zmm": 0, "packed": 0, "scalar": 0, "fma": 0,
              "packed_fma": 0, "widest": None, "examples": []}
    order = {None: 0, "xmm": 1, "ymm": 2, "zmm": 3}
    for line in asm.splitlines():
        m = _INSN_RE.match(line)
        if not m or line.lstrip().startswith("."):
            continue
        mnemonic, operands = m.groups()
        regs = _REG_RE.findall(operands)
        for r in regs:
            counts[r] += 1
        fp = _FP_ARITH_RE.match(mnemonic)
        if not fp:
            continue
        is_fma = "fmadd" in mnemonic or "fmsub" in mnemonic
        counts["fma"] += is_fma
        if fp.group(2) == "p":
            counts["packed"] += 1
            counts["packed_fma"] += is_fma
            width = max(regs, key=order.__getitem__) if regs else None
            if order[width] > order[counts["widest"]]:
                counts["widest"] = width
            if len(counts["examples"]) < 3 and (mnemonic + operands) not in counts["examples"]:
                counts["examples"].append(f"{mnemonic} {operands}".strip())
        else:
            counts["scalar"] += 1
    return counts


# --------------------------------------------------------------------------
# Timing


def timings(fn, min_time=0.05, min_reps=3, max_reps=1000, warmup=1):
    """Seconds of each of repeated calls of ``fn()`` after ``warmup`` calls
    (so a compilation is never timed): at least ``min_reps`` calls, more until
    ``min_time`` seconds have been spent or ``max_reps`` calls made."""
    for _ in range(warmup):
        fn()
    times = []
    spent = 0.0
    while len(times) < min_reps or (spent < min_time and len(times) < max_reps):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        times.append(dt)
        spent += dt
    return times


def median_time(fn, min_time=0.05, min_reps=3, max_reps=1000, warmup=1):
    """Median seconds of ``fn()`` over ``timings(...)``."""
    return float(np.median(timings(fn, min_time, min_reps, max_reps, warmup)))


def best_time(fn, min_time=0.05, min_reps=3, max_reps=1000, warmup=1):
    """Fastest call of ``fn()`` over ``timings(...)`` (as ``timeit`` reports):
    on a shared machine the least disturbed call."""
    return float(np.min(timings(fn, min_time, min_reps, max_reps, warmup)))


# --------------------------------------------------------------------------
# The lesson


def _dot_variants(rng, min_time):
    rows = []
    for dtype in (np.float64, np.float32):
        a = rng.standard_normal(DOT_N).astype(dtype)
        b = rng.standard_normal(DOT_N).astype(dtype)
        as_, bs_ = a[:DOT_SMALL_N].copy(), b[:DOT_SMALL_N].copy()
        ref = float(np.dot(a.astype(np.float64), b.astype(np.float64)))
        for fastmath in (False, True):
            d = compile_variant(loops.dot, fastmath, "_" + np.dtype(dtype).name)
            got = float(d(a, b))  # compiles
            counts = count_instructions(kernel_asm(d))
            t = best_time(lambda: d(a, b), min_time)
            t1 = best_time(lambda: d(as_, bs_), min_time)
            rows.append(dict(
                kernel="dot", variant="fastmath" if fastmath else "plain", dtype=np.dtype(dtype).name,
                order="contiguous", counts=counts, time_s=t, n=DOT_N,
                gflops=2 * DOT_N / t / 1e9, time_small_s=t1, n_small=DOT_SMALL_N,
                gflops_small=2 * DOT_SMALL_N / t1 / 1e9,
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
        for order, func in (("contiguous", forward_contiguous), ("strided", forward_strided)):
            for fastmath in (False, True):
                d = compile_variant(func, fastmath, "_" + np.dtype(dtype).name)
                Z = np.empty((n, m), dtype)
                d(Z, A, W, b)
                counts = count_instructions(kernel_asm(d))
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
d = simd.compile_variant(loops.dot, True, "_zmm")
a = np.random.default_rng(0).standard_normal(%d); b = a[::-1].copy()
d(a, b)
c = simd.count_instructions(simd.kernel_asm(d))
print(json.dumps(dict(counts=c, time_small_s=simd.best_time(lambda: d(a, b), %r))))
"""


def _zmm_variant(min_time):
    """The fastmath float64 dot compiled in a fresh process with LLVM's
    'prefer-256-bit' tuning turned off (NUMBA_CPU_FEATURES = host features +
    '-prefer-256-bit'), so it may use 512-bit zmm registers. None where the CPU
    has no AVX-512 or the subprocess fails."""
    from . import target
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
        import json
        result = json.loads(out.stdout.strip().splitlines()[-1])
    except Exception as exc:  # a lesson extra, never a failure
        return {"error": f"{type(exc).__name__}: {exc}"}
    result["gflops_small"] = 2 * DOT_SMALL_N / result["time_small_s"] / 1e9
    return result


def cpu_info():
    """CPU model, logical cores, and the SIMD extensions and LLVM CPU name
    that Numba compiles for (``kernels.target``: NUMBA_CPU_NAME can differ
    from the host)."""
    from . import target
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if model == "unknown CPU":
        model = platform.processor() or platform.machine() or model
    feats = target.features()
    simd = [name.replace(".", "_").replace("-", "_") for name in
            ("sse2", "sse4.2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl",
             "avx512fp16", "avx512bf16", "amx-tile", "neon", "sve") if name in feats]
    return dict(model=model, cores=os.cpu_count(), simd=simd, llvm_cpu=target.cpu_name(),
                vector_bits=target.vector_bits())


LESSONS = {
    "reduction": (
        "The plain dot is scalar: `s += a[i] * b[i]` is a chain of additions into one "
        "variable, and IEEE arithmetic is not associative, so the compiler may not reorder "
        "it into several partial sums (one per SIMD lane) without changing the rounding. "
        "Without permission it keeps the exact order: one scalar add after another, each "
        "waiting for the previous one's result (the add's latency, 2 to 4 cycles by core)."),
    "fastmath": (
        "fastmath ('reassoc' + 'contract') grants that permission: LLVM keeps several "
        "vector accumulators (4 ymm registers of 4 doubles each = 16 partial sums), fuses "
        "each multiply-add into one FMA instruction, and adds the partial sums at the "
        "end. Same math, different rounding (it is usually *more* accurate: pairwise-like "
        "summation)."),
    "float32": (
        "float32 doubles the lanes: a 256-bit ymm register holds 4 doubles or 8 floats, "
        "so the same instruction count does twice the work and half the bytes are read."),
    "strided": (
        "The strided order is slow: its innermost loop walks down a column of A_prev, m "
        "elements apart, so each element sits on its own cache line and no vector can be "
        "loaded in one go. Without fastmath it is a scalar reduction as well. With fastmath "
        "LLVM does vectorize it -- packed FMAs over 4 values of p, W's row loaded as a "
        "vector -- but each vector of A_prev is assembled from 4 scalar loads from 4 cache "
        "lines, so the packed arithmetic buys nothing. The contiguous order walks a row "
        "with unit stride (an axpy `z[j] += w * a[j]`, no reduction), which vectorizes even "
        "without fastmath (then with a multiply and an add instead of one FMA)."),
    "width": (
        "256-bit ymm registers even on a CPU with 512-bit zmm ones: LLVM's tuning for "
        "Intel server cores (Skylake-X and later) sets 'prefer-256-bit' "
        "(prefer-vector-width=256), because heavy 512-bit instructions lower the core "
        "clock (AVX-512 frequency licences) and that can slow the whole program, while "
        "memory often cannot feed 512-bit loads anyway. Turning the tuning off "
        "(NUMBA_CPU_FEATURES=<host features>,-prefer-256-bit) gives zmm code; the '512-bit' "
        "row measures it (a loop limited by the cache's bandwidth gains nothing)."),
}


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
    )
    return dict(cpu=cpu_info(), dot=dots, linear_forward=forwards,
                zmm=_zmm_variant(min_time) if zmm else None,
                findings=findings, lessons=dict(LESSONS))


def _fmt_time(t):
    if t >= 1:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.2f} ms"
    return f"{t * 1e6:.1f} us"


def _counts_cells(c):
    return [str(c["xmm"]), str(c["ymm"]), str(c["zmm"]), str(c["packed"]), str(c["scalar"]),
            str(c["packed_fma"]), c["widest"] or "-"]


def _table(headers, rows):
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


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
            _fmt_time(r["time_s"]), f"{r['gflops']:.1f}", _fmt_time(r["time_small_s"]), f"{r['gflops_small']:.1f}"])
    z = rep.get("zmm")
    if z and "counts" in z:
        rows.append(["fastmath, 512-bit", "float64"] + _counts_cells(z["counts"]) + [
            "-", "-", _fmt_time(z["time_small_s"]), f"{z['gflops_small']:.1f}"])
    out.append(f"dot product s += a[i]*b[i] (kernels.loops.dot), n = {DOT_N:,} and n = {DOT_SMALL_N} (fits L2)")
    out.append(_table(hdr + [f"time {DOT_N // 10**6}M", "GFLOP/s", f"time {DOT_SMALL_N}", "GFLOP/s"], rows))
    out.append("")
    n, k, m = FORWARD_SHAPE
    rows = []
    for r in rep["linear_forward"]:
        rows.append([f"{r['order']} {r['variant']}", r["dtype"]] + _counts_cells(r["counts"]) + [
            _fmt_time(r["time_s"]), f"{r['gflops']:.1f}"])
    out.append(f"linear forward Z = W A_prev + b, (n, k, m) = ({n}, {k}, {m})")
    out.append(_table(hdr + ["time", "GFLOP/s"], rows))
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
# CLI: jitloops simd


def add_arguments(parser):
    parser.add_argument("--min-time", type=float, default=0.05,
                        help="seconds spent timing each variant (the fastest call is reported; default 0.05)")
    parser.add_argument("--no-zmm", action="store_true",
                        help="skip the 512-bit variant (compiled in a subprocess)")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON to PATH")


def run(args):
    rep = report(min_time=args.min_time, zmm=not args.no_zmm)
    print(format_report(rep))
    if args.json:
        import json
        with open(args.json, "w") as f:
            json.dump(rep, f, indent=2, default=str)
        print(f"\nwrote {args.json}")
    return 0
