"""``loop-ladder``: one layer's product Z = W A_prev + b climbed rung by rung,
from the course's loop in the interpreter to BLAS.

Each rung changes one thing (kernels/loops/plans.py names the engine's plans):

    course loop, interpreted   kernels/loops/course.py run by Python (on a few examples)
    course loop, compiled      the same loops, @njit without fastmath
    loop order                 the example loop innermost (kernels.simd.forward_contiguous), no fastmath
    fastmath / SIMD            plan SIMPLE: that order with the library's flags
    register blocking          plan BLOCKED_ROWS: 4 x 4 blocks of multipliers in registers
    blocking, dot form         plan BLOCKED_DOT: A_prev packed transposed, 4 x 4 dot products
    packing + micro-kernel     plan PACKED: panels and the MR x NR micro-kernel (8 x 16 on AVX-512, 3 x 16 on AVX2) (what backend "numba" runs here)
    parallel                   backend "parallel": the PACKED tiles under prange
    BLAS, 1 thread / BLAS      np.matmul on one thread, then on all

For each rung: GFLOP/s, % of this CPU's peak, and the packed vs scalar
arithmetic instructions and register width of the rung's innermost function,
read from the assembly Numba generated for it (Numba's cached code cannot be
read back, so the counts of the cached rungs are kept beside their entries). Shapes (the course's): W (n, k), A_prev (k, m), b (n, 1),
Z (n, m); here n = n[l], k = n[l-1].
"""

import hashlib
import json
import os
import re
import time

import numba
import numpy as np

import kernels
from kernels import cpu, simd, target
from kernels.loops import course
from kernels.loops.forward import _dot_tile, _packed_tile, _rows_tile, _simple_tile
from kernels.loops.plans import BLOCKED_DOT, BLOCKED_ROWS, PACKED, PLAN_NAMES, SIMPLE, forward_plan
from kernels.loops.products.packed import packed_width
from kernels.options import BLOCK, JB, MICRO_BYTES, MICRO_ROWS, SERIAL_OPTIONS

from ..bench import machine
from ..timing import best_time, format_seconds
from .common import Lesson

SUMMARY = "one layer's product from the course's interpreted loop up the engine's plans to BLAS: GFLOP/s, " \
          "% of peak, packed vs scalar instructions per rung"

# (n, k, m): an MNIST-like first hidden layer, 784 inputs -> 128 units, 1024
# examples; big enough that the engine picks PACKED and threads pay.
LAYER = (128, 784, 1024)
# Examples the interpreted loop runs on (~0.1 s a call); reported per flop.
PYTHON_M = 2

RUNGS = ("course loop, interpreted", "course loop, compiled", "loop order", "fastmath / SIMD",
         "register blocking", "blocking, dot form", "packing + micro-kernel", "parallel", "BLAS, 1 thread",
         "BLAS")
# The function whose instructions a rung's row counts: its innermost loop.
HOT = {"course loop, compiled": "linear_activation_forward", "loop order": "forward_contiguous",
       "fastmath / SIMD": "_simple_tile", "register blocking": "rows_update", "blocking, dot form": "dot4x4",
       "packing + micro-kernel": f"micro_{MICRO_ROWS}x{MICRO_BYTES // 8}"}  # float64's, this target's shape
PLAN_RUNG = {SIMPLE: "fastmath / SIMD", BLOCKED_ROWS: "register blocking", BLOCKED_DOT: "blocking, dot form",
             PACKED: "packing + micro-kernel"}
STEPS = {
    "course loop, interpreted": "course.py's loops, each multiply-add a round of the interpreter",
    "course loop, compiled": "the same loops as machine code; the innermost walks down a column of A_prev",
    "loop order": "the example loop innermost: a contiguous row, z[j] += w * a[j]",
    "fastmath / SIMD": "plan SIMPLE: that order with reassoc + contract, so multiply and add fuse",
    "register blocking": "plan BLOCKED_ROWS: 4 x 4 multipliers held in registers, each load used 4 times",
    "blocking, dot form": "plan BLOCKED_DOT: A_prev's columns packed as rows, 4 x 4 dot products",
    "packing + micro-kernel": f"plan PACKED: 256-deep panels, a {MICRO_ROWS} x {MICRO_BYTES // 8} block of Z in "
                              f"vector registers",
    "parallel": "backend 'parallel': the PACKED tiles shared by prange",
    "BLAS, 1 thread": "np.matmul(W, A_prev) on one BLAS thread",
    "BLAS": "np.matmul(W, A_prev) on every BLAS thread",
}


PLAN = PACKED  # replaced in each compiled copy's globals (_compile_plan): Numba freezes it


def _plan_product(Z, A_prev, W, b, width):
    """Z = W A_prev + b by the engine's tiles of plan PLAN, serially; PLAN is a
    global of each compiled copy (see _compile_plan). Z (n, m) out; A_prev
    (k, m); W (n, k); b (n, 1); width: examples per tile."""
    n = W.shape[0]
    m = A_prev.shape[1]
    if PLAN == SIMPLE:
        for t in range((m + BLOCK - 1) // BLOCK * n):
            _simple_tile(Z, Z, A_prev, W, b, -1, t, n, m)
    elif PLAN == PACKED:
        for t in range((m + width - 1) // width):
            _packed_tile(Z, Z, A_prev, W, b, -1, t, width)
    elif PLAN == BLOCKED_DOT:
        for t in range((m + width - 1) // width):
            _dot_tile(Z, Z, A_prev, W, b, -1, t, width)
    else:  # BLOCKED_ROWS: tiles of all n rows
        for t in range((m + width - 1) // width):
            _rows_tile(Z, Z, A_prev, W, b, -1, t, width, 1, n)


def _compile_plan(plan, args):
    """(dispatcher, counts): _plan_product for ``plan`` compiled with the
    library's flags and cached like the kernels (the name carries their
    source digest, kernels.cpu), called once on ``args``; counts: the
    instructions of the plan's innermost function (HOT)."""
    # "__<letters>_<digest>": the form kernels.cpu prunes when the digest changes
    name = f"__ladder{PLAN_NAMES[plan].replace('_', '')}_{cpu.SOURCE_DIGEST}"
    d = numba.njit(**SERIAL_OPTIONS)(cpu.rebind(_plan_product, dict(globals(), PLAN=plan), suffix=name))
    d(*args)
    hot = HOT[PLAN_RUNG[plan]]
    # Numba's cached code cannot be read back (inspect_asm refuses it), so the
    # counts are read when the code is compiled and kept beside its cache
    # entry, named after the target they were compiled for.
    key = hashlib.sha1(f"{target.cpu_name()} {sorted(target.features())}".encode()).hexdigest()[:10]
    folder = d.stats.cache_path
    path = os.path.join(folder, f"{__name__.rsplit('.', 1)[1]}.{d.py_func.__qualname__}.{key}.counts.json")
    _prune(d, folder)
    source = d
    if sum(d.stats.cache_hits.values()):  # loaded from the cache: its counts were kept
        try:
            with open(path) as f:
                return d, json.load(f)
        except (OSError, ValueError):  # not kept: read a fresh copy's
            source = numba.njit(**dict(SERIAL_OPTIONS, cache=False))(
                cpu.rebind(_plan_product, dict(globals(), PLAN=plan), suffix=name + "_fresh"))
            source(*args)
    counts = simd.count_instructions(function_asm(source.inspect_asm(source.signatures[0]), hot))
    tmp = f"{path}.{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            json.dump(counts, f)
        os.replace(tmp, path)
    except OSError:  # a read-only cache folder: counted again next time
        pass
    return d, counts


def _prune(dispatcher, folder):
    """Drop the cache entries and counts of other kernels' digests, as kernels.cpu does for its own."""
    cpu._prune_stale(dispatcher, cpu.SOURCE_DIGEST)
    try:
        for name in os.listdir(folder):
            if name.endswith(".counts.json") and "__ladder" in name and cpu.SOURCE_DIGEST not in name:
                os.remove(os.path.join(folder, name))
    except OSError:  # best effort, as there
        pass


_FUNC_RE = re.compile(r"^\s*\.type\s+([^,\s]+),@function", re.M)


def function_asm(asm, name):
    """The assembly of the functions in ``asm`` whose (mangled) names contain
    ``name``, Numba's wrappers excluded."""
    starts = [(m.start(), m.group(1)) for m in _FUNC_RE.finditer(asm)]
    parts = [asm[pos:(starts[i + 1][0] if i + 1 < len(starts) else len(asm))]
             for i, (pos, fname) in enumerate(starts)
             if name in fname and not fname.startswith(("_ZN7cpython", "cfunc."))]
    return "".join(parts)


def _rungs(Z, A, W, b, Zp, Ap):
    """label -> (call, counts or None); every compilation (or cache load) happens here."""
    m = A.shape[1]
    plain_course = simd.compile_variant(course.linear_activation_forward, fastmath=False, suffix="_ladder")
    order = simd.compile_variant(simd.forward_contiguous, fastmath=False, suffix="_ladder")
    width = {SIMPLE: BLOCK, BLOCKED_ROWS: JB, BLOCKED_DOT: JB, PACKED: packed_width(m, MICRO_BYTES // W.itemsize)}
    par = kernels.get_backend("parallel").kernels.linear_forward

    def blas():
        np.matmul(W, A, out=Z)
        np.add(Z, b, out=Z)

    calls = {
        "course loop, interpreted": (lambda: course.linear_forward(Zp, Ap, W, b), None),
        "course loop, compiled": (lambda: plain_course(Z, Z, A, W, b, -1), None),
        "loop order": (lambda: order(Z, A, W, b), None),
        "parallel": (lambda: par(Z, A, W, b), None),
        "BLAS, 1 thread": (blas, None),
        "BLAS": (blas, None),
    }
    for plan, label in PLAN_RUNG.items():
        d, counts = _compile_plan(plan, (Z, A, W, b, width[plan]))
        calls[label] = ((lambda d=d, w=width[plan]: d(Z, A, W, b, w)), counts)
    for label, (call, _) in calls.items():  # compile (or load) everything before any timing
        call()
    for label, d in (("course loop, compiled", plain_course), ("loop order", order)):
        calls[label] = (calls[label][0], simd.count_instructions(function_asm(d.inspect_asm(d.signatures[0]),
                                                                              HOT[label])))
    return calls


def run(backend=None, layer=LAYER, python_m=PYTHON_M, min_time=0.1, seed=0):
    """Climb the ladder on one float64 layer of shape ``layer`` = (n, k, m)
    (the interpreted rung on ``python_m`` examples). ``backend``: None only."""
    if backend is not None:
        raise ValueError("the loop-ladder lesson runs every rung itself (interpreted, compiled, parallel, BLAS); "
                         "run it without --backend")
    n, k, m = layer
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((n, k))
    A = rng.standard_normal((k, m))
    b = rng.standard_normal((n, 1))
    Ap = A[:, :python_m].copy()
    Z, Zp = np.empty((n, m)), np.empty((n, python_m))
    ref = W @ A + b
    bound = np.abs(W) @ np.abs(A) + np.abs(b)  # sum |terms| of each cell

    t0 = time.perf_counter()
    calls = _rungs(Z, A, W, b, Zp, Ap)
    compile_s = time.perf_counter() - t0
    threads = {"parallel": numba.get_num_threads(), "BLAS, 1 thread": 1,
               "BLAS": machine._blas_info()["threads"] or numba.get_num_threads()}

    ghz = machine._cpu_ghz()
    info = {"ghz": ghz, "vector_bits": target.vector_bits(), "llvm_cpu": target.cpu_name()}
    cores = numba.config.NUMBA_NUM_THREADS
    peak, peak1 = machine.compute_peak(8, cores, info), machine.compute_peak(8, 1, info)
    res = {}
    for label in RUNGS:
        call, counts = calls[label]
        mm = python_m if label == "course loop, interpreted" else m
        if label == "BLAS, 1 thread":
            with machine.blas_threads(1):
                t = best_time(call, min_time=min_time)
        else:  # threads share the machine with whatever else runs: try longer for an undisturbed call
            t = best_time(call, min_time=min_time * (3 if threads.get(label, 1) > 1 else 1))
        got, want, scale = (Zp, ref[:, :python_m], bound[:, :python_m]) if mm != m else (Z, ref, bound)
        r = dict(time=t, time_layer=t * m / mm, gflops=2 * n * k * mm / t / 1e9, threads=threads.get(label, 1),
                 error_ratio=float(np.max(np.abs(got - want) / scale)))
        r["pct_peak"] = 100 * r["gflops"] / peak if peak else float("nan")
        if counts is not None:
            r["counts"] = counts
        res[label] = r
    res["parallel"]["counts"] = res["packing + micro-kernel"]["counts"]  # the same micro-kernel on each thread

    figures = dict(layer=tuple(layer), python_m=python_m, flop=2 * n * k * m, peak_gflops=peak,
                   peak_core_gflops=peak1, ghz=ghz, cores=cores, fma_units=machine.fma_units(info),
                   vector_bits=target.vector_bits(), widest_register=target.widest_register(),
                   has_fma=target.has_fma(), error_bound=2 * (k + 2) * np.finfo(np.float64).eps,
                   blas=machine._blas_info()["name"], engine_plan=PLAN_NAMES[forward_plan(n, k, m, MICRO_BYTES // 8)[0]], compile_s=compile_s,
                   rungs=list(RUNGS))
    rows = []
    for label in RUNGS:
        r = res[label]
        for key in ("gflops", "pct_peak", "time_layer", "error_ratio", "threads"):
            figures[f"{key}[{label}]"] = r[key]
        c = r.get("counts")
        if c:
            for key in ("packed", "scalar", "packed_fma", "widest"):
                figures[f"{key}[{label}]"] = c[key]
        cells = [c["packed"], c["scalar"], c["packed_fma"], c["widest"] or "-"] if c else ["-"] * 4
        time_text = ("~" if label == "course loop, interpreted" else "") + format_seconds(r["time_layer"])
        rows.append([label, r["threads"], time_text, r["gflops"], r["pct_peak"],
                     r["gflops"] / res[RUNGS[0]]["gflops"], *cells])
    cpu_text = f"{machine.cpu_model()} ({target.describe()})"
    text = _sentences(res, figures, cpu_text)

    def draw(plt):
        return _draw(plt, res, figures, cpu_text)

    return Lesson("loop-ladder", f"The loop ladder: Z = W A_prev + b, W ({n}, {k}), A_prev ({k}, {m}), float64, "
                  f"on {cpu_text}",
                  ["rung", "threads", "time / layer", "GFLOP/s", "% peak", "x interpreted", "packed", "scalar",
                   "pFMA", "widest"], rows, text, figures, draw)


def _sentences(res, f, cpu_text):
    n, k, m = f["layer"]
    g = {label: res[label]["gflops"] for label in RUNGS}
    c = {label: res[label].get("counts") for label in RUNGS}
    lanes = f["vector_bits"] // 64
    parts = [
        "Rungs:\n" + "\n".join(f"  {label:<25} {STEPS[label]}" for label in RUNGS),
        f"Peak: {f['cores']} cores x {lanes} float64 lanes ({f['vector_bits']}-bit vectors, from kernels.target: "
        f"{target.describe()}) x 2 flop per FMA x {f['fma_units']} full-width vector FMAs a cycle per core "
        f"(assumed from the CPU's name, as jitloops bench does: one where 512-bit vectors run on 256-bit "
        f"data paths) x {f['ghz']:.2f} GHz (the clock /proc/cpuinfo reports now) = "
        f"{f['peak_gflops']:.0f} GFLOP/s, {f['peak_core_gflops']:.0f} on one core, at that clock (a turbo "
        f"clock above it can take a rung past 100%, an AVX-512 clock licence below it holds it under); "
        f"'% peak' is of the whole CPU.",
        f"Compiled, the course's loop runs {g['course loop, compiled'] / g[RUNGS[0]]:.0f}x faster than "
        f"interpreted ({g['course loop, compiled']:.2f} GFLOP/s), yet its loop has "
        f"{c['course loop, compiled']['packed']} packed and {c['course loop, compiled']['scalar']} scalar "
        f"instructions: its innermost loop strides down a column of A_prev, {m} elements apart. With the example "
        f"loop innermost the same arithmetic vectorizes ({c['loop order']['packed']} packed instructions, "
        f"{c['loop order']['packed_fma']} FMAs, no fastmath): {g['loop order']:.1f} GFLOP/s, "
        f"{_change(g['loop order'], g['course loop, compiled'])}. Fastmath fuses multiply and add "
        f"({c['fastmath / SIMD']['packed_fma']} packed FMAs): {g['fastmath / SIMD']:.1f} GFLOP/s, "
        f"{_change(g['fastmath / SIMD'], g['loop order'])}: both orders read all of A_prev "
        f"({8 * k * m / 1e6:.1f} MB) again for each of the {n} units, so loads, not arithmetic, set their pace.",
        f"Register blocking keeps a block of Z in registers and uses each loaded vector 4 times: "
        f"{g['register blocking']:.1f} GFLOP/s ({g['blocking, dot form']:.1f} in dot form). Packing and the "
        f"micro-kernel ({c['packing + micro-kernel']['packed_fma']} packed FMAs, "
        f"{c['packing + micro-kernel']['scalar']} scalar instructions, on "
        f"{c['packing + micro-kernel']['widest']} registers) reach {g['packing + micro-kernel']:.1f} GFLOP/s, "
        f"{100 * g['packing + micro-kernel'] / f['peak_core_gflops']:.0f}% of one core's peak: the plan the "
        f"engine picks for this layer ({f['engine_plan']}). In parallel on {res['parallel']['threads']} "
        f"threads: {g['parallel']:.1f} GFLOP/s, {_change(g['parallel'], g['packing + micro-kernel'])}. "
        f"NumPy's BLAS ({f['blas']}): {g['BLAS, 1 thread']:.1f} GFLOP/s on one thread, {g['BLAS']:.1f} on "
        f"{res['BLAS']['threads']}." + _threads_note(res, f),
        f"The interpreted rung ran on {f['python_m']} examples ({2 * n * k * f['python_m']:,} flop) and its time "
        f"per layer is scaled to m = {m}; every other rung ran the whole layer "
        f"({f['flop'] / 1e6:.1f} MFLOP). Times are the fastest of repeated calls after a warm-up call, after "
        f"every rung was compiled or loaded from Numba's cache ({f['compile_s']:.1f} s, never timed). The "
        f"instruction counts are of each rung's innermost function, read from its assembly when it was "
        f"compiled (the two plain loops are compiled afresh each run; the engine's plans are cached like the "
        f"kernels, their counts kept beside the cache entry).",
    ]
    return "\n".join(parts)


def _change(new, old):
    """new against old as words: "3.2x that" or "about the same (x0.95)"."""
    r = new / old
    return f"about the same (x{r:.2f})" if 0.87 < r < 1.15 else f"{r:.1f}x that" if r > 1 else f"{r:.2f}x that"


def _threads_note(res, f):
    """A sentence when more threads ran slower than one (a shared machine), else ""."""
    if res["parallel"]["gflops"] >= res["packing + micro-kernel"]["gflops"] and \
            res["BLAS"]["gflops"] >= res["BLAS, 1 thread"]["gflops"]:
        return ""
    return (f" Here more threads were not faster everywhere: on a shared machine (load average "
            f"{machine.load_average():.1f} on {f['cores']} cores now) a thread that waits for a busy core "
            f"holds back the whole product.")


def _draw(plt, res, f, cpu_text):
    n, k, m = f["layer"]
    fig, ax = plt.subplots(figsize=(9, 4.6))
    x = np.arange(len(RUNGS))
    g = [res[label]["gflops"] for label in RUNGS]
    colors = ["tab:red", "tab:orange"] + ["tab:green"] * 5 + ["tab:purple", "tab:blue", "tab:blue"]
    ax.bar(x, g, color=colors, edgecolor="k", linewidth=0.5)
    for xi, label in zip(x, RUNGS):
        r = res[label]
        c = r.get("counts")
        note = f"{r['gflops']:.3g}\n{r['pct_peak']:.2g}%" + (f"\n{c['packed']}p/{c['scalar']}s" if c else "")
        ax.text(xi, r["gflops"] * 1.15, note, ha="center", va="bottom", fontsize=7, zorder=3,
                bbox=dict(fc="white", ec="none", alpha=0.85, pad=0.5))
    for level, name, color in ((f["peak_core_gflops"], "one core's peak", "gray"), (f["peak_gflops"], "CPU peak", "k")):
        ax.axhline(level, color=color, ls="--", lw=0.8, zorder=1)
        ax.text(-0.45, level * 1.08, f"{name} {level:.0f}", ha="left", va="bottom", fontsize=7, color=color)
    ax.set_yscale("log")
    ax.set_ylim(min(g) / 3, f["peak_gflops"] * 8)
    ax.set_xticks(x)
    ax.set_xticklabels(RUNGS, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("GFLOP/s (log scale)")
    ax.set_title(f"Z = W A_prev + b, W ({n}, {k}), A_prev ({k}, {m}), float64, on {cpu_text}\n"
                 f"over each bar: GFLOP/s, % of CPU peak, packed (p) / scalar (s) instructions of its innermost "
                 f"loop", fontsize=9)
    return fig
