"""``vectorization``: the first course's 1,000,000-element dot product, from
the Python loop to SIMD.

The week-2 "Vectorization" lecture times ``c += a[i]*b[i]`` over two vectors
of 1,000,000 random numbers against ``np.dot(a, b)`` (474 ms against 1.5 ms
on the lecturer's machine). Here the very same loop, ``kernels.loops.dot``,
runs five ways: interpreted (backend "python"), as ``np.dot`` (BLAS), and
compiled by Numba without fastmath, with the library's fastmath flags and in
parallel; the two serial compilations are made fresh
(``kernels.simd.compile_variant``) so that their assembly can be read
(``kernels.simd.count_instructions``): packed or scalar arithmetic, FMA, and
the register width, which ``kernels.target`` says the CPU allows.

Shapes: a, b (n,) float64, n = 1,000,000 (``DOT_N``).
"""

import numpy as np

import kernels
from kernels import loops, simd, target

from ..bench.dot import DOT_N
from ..bench.machine import cpu_model, level_of
from ..timing import best_time, format_seconds
from .common import Lesson

SUMMARY = "the course's 1,000,000-element dot product: the Python loop, np.dot, and the loop compiled plain, " \
          "with fastmath and in parallel, with what the assembly shows"

# The lecture's demo, as its screenshot printed it: yearing1017/RecoSys,
# Reco_note/深度学习/神经网络与深度学习（3）-python与向量化.md ("Vectorized
# version:1.5027523040771484ms ... For loop:474.29513931274414ms"); the
# lecture's words (fengdu78/deeplearning_ai_books, markdown/lesson1-week2.md,
# 2.11): 1.5 ms vectorized, almost 500 ms for the loop, 300 times longer.
COURSE_LOOP_MS = 474.29513931274414
COURSE_VECTORIZED_MS = 1.5027523040771484
COURSE_N = 1_000_000  # the lecture's vectors' length

# Elements the interpreted loop is timed on: its cost per element does not
# depend on n, and 200,000 keep the lesson's Python part near a second.
PYTHON_N = 200_000

VARIANTS = ("Python loop", "np.dot", "numba, plain", "numba, fastmath", "numba, parallel")


def _counts_of(dispatcher):
    return simd.count_instructions(simd.kernel_asm(dispatcher))


def run(backend=None, n=DOT_N, python_n=PYTHON_N, min_time=0.1, seed=0):
    """Time the dot of two (n,) float64 vectors each way (the Python loop on
    the first ``python_n`` elements, scaled to n) and read the compiled
    loops' assembly. ``backend``: None only (the lesson races the backends)."""
    if backend is not None:
        raise ValueError("the vectorization lesson races the Python loop, np.dot, numba and parallel itself; "
                         "run it without --backend")
    python_n = min(python_n, n)
    rng = np.random.default_rng(seed)
    a, b = rng.random(n), rng.random(n)  # the lecture's np.random.rand(1000000)
    a_py, b_py = a[:python_n].copy(), b[:python_n].copy()

    plain = simd.compile_variant(loops.dot, fastmath=False, suffix="_lesson")
    fast = simd.compile_variant(loops.dot, fastmath=True, suffix="_lesson")
    calls = {
        "Python loop": (kernels.get_backend("python").kernels.dot, a_py, b_py),
        "np.dot": (np.dot, a, b),
        "numba, plain": (plain, a, b),
        "numba, fastmath": (fast, a, b),
        "numba, parallel": (kernels.get_backend("parallel").kernels.dot, a, b),
    }
    res = {}
    for name in VARIANTS:
        fn, x, y = calls[name]
        got = float(fn(x, y))  # compiles (or loads) before any timing
        t = best_time(lambda: fn(x, y), min_time=min_time)
        want = float(np.dot(x, y))
        res[name] = dict(n=x.shape[0], time=t, ns=t / x.shape[0] * 1e9, time_n=t / x.shape[0] * n,
                         # |got - want| over sum |a b|: the sums' forward error bound's scale
                         error_ratio=abs(got - want) / float(np.dot(np.abs(x), np.abs(y))))
    res["numba, plain"]["counts"] = _counts_of(plain)
    res["numba, fastmath"]["counts"] = _counts_of(fast)

    t_np = res["np.dot"]["time_n"]
    figures = dict(n=n, python_n=python_n, course_loop_ms=COURSE_LOOP_MS,
                   course_vectorized_ms=COURSE_VECTORIZED_MS,
                   course_ratio=COURSE_LOOP_MS / COURSE_VECTORIZED_MS,
                   measured_ratio=res["Python loop"]["time_n"] / t_np,
                   error_bound=n * np.finfo(np.float64).eps,
                   target_widest=target.widest_register(), target_has_fma=target.has_fma(),
                   target_vector_bits=target.vector_bits(), variants=list(VARIANTS))
    rows = []
    for name in VARIANTS:
        r = res[name]
        c = r.get("counts")
        for key in ("time_n", "ns", "error_ratio"):
            figures[f"{key}[{name}]"] = r[key]
        figures[f"x_npdot[{name}]"] = r["time_n"] / t_np
        if c is not None:
            for key in ("packed", "scalar", "packed_fma", "widest"):
                figures[f"{key}[{name}]"] = c[key]
        time_text = format_seconds(r["time_n"]) + (" (scaled)" if r["n"] != n else "")
        rows.append([name, f"{r['n']:,}", time_text, r["ns"], r["time_n"] / t_np,
                     res["Python loop"]["time_n"] / r["time_n"],
                     *([c["packed"], c["scalar"], c["packed_fma"], c["widest"] or "-"] if c else ["-"] * 4)])
    text = _sentences(res, figures, n, python_n)
    cpu = f"{cpu_model()} ({target.describe()})"

    def draw(plt):
        return _draw(plt, res, n, cpu)

    return Lesson("vectorization", f"The course's dot product, n = {n:,} float64, on {cpu}",
                  ["variant", "elements timed", f"time for {n:,}", "ns / element", "x np.dot", "x Python",
                   "packed", "scalar", "pFMA", "widest"], rows, text, figures, draw)


def _sentences(res, f, n, python_n):
    py, npd, pl, fm, par = (res[v] for v in VARIANTS)
    cp, cf = pl["counts"], fm["counts"]
    bits_per = {"xmm": 128, "ymm": 256, "zmm": 512}
    lanes = bits_per.get(cf["widest"], 64) // 64
    gbps = lambda r: 16 * n / r["time_n"] / 1e9  # noqa: E731  two float64 streams
    parts = [
        f"The lecture's demo printed {COURSE_LOOP_MS:.0f} ms for the loop and {COURSE_VECTORIZED_MS:.1f} ms for "
        f"np.dot, {f['course_ratio']:.0f}x. Here the Python loop takes {py['ns']:.0f} ns an element "
        f"({format_seconds(py['time_n'])} for {n:,}) and np.dot {format_seconds(npd['time_n'])}: "
        f"{f['measured_ratio']:.0f}x (the demo timed one call of each with time.time(); these are the fastest "
        f"of repeated calls).",
        f"Compiled by Numba, the same loop (kernels.loops.dot) takes {format_seconds(pl['time_n'])}, "
        f"{py['time_n'] / pl['time_n']:.0f}x faster than interpreted: the per-element work of the interpreter "
        f"(reading a[i] as a new Python float, dispatching * and + by type) is gone. Its assembly has "
        f"{cp['scalar']} scalar and {cp['packed']} packed arithmetic instructions: the sum is one chain of "
        f"scalar adds in source order, because reordering a floating-point sum changes its rounding.",
        f"With fastmath (reassoc, contract) LLVM may reorder: {cf['packed']} packed instructions, "
        f"{cf['packed_fma']} of them FMAs, on {cf['widest'] or 'no vector'} registers ({lanes} float64 "
        f"lanes; this CPU's widest are {target.widest_register() or 'not x86'}): "
        f"{format_seconds(fm['time_n'])}, {pl['time_n'] / fm['time_n']:.1f}x the plain loop.",
        f"At {n:,} elements the two vectors ({16 * n / 1e6:.0f} MB) {_where(16 * n)}: "
        f"{gbps(fm):.1f} GB/s for fastmath, {gbps(npd):.1f} GB/s for np.dot, {gbps(par):.1f} GB/s in parallel "
        f"({format_seconds(par['time_n'])}); `jitloops simd` times the loops in L2 too.",
        f"The Python loop was timed on the first {python_n:,} elements and scaled to {n:,}; every other "
        f"variant ran on all {n:,}. Times are the fastest of repeated calls after a warm-up call.",
    ]
    return "\n".join(parts)


def _where(nbytes):
    """Where a working set of ``nbytes`` is read from once warm, as words."""
    level = level_of(nbytes)
    if level == "memory":
        return "exceed the last cache and stream from memory, whose bandwidth sets the pace"
    return f"fit in this CPU's {level}, so after the warm-up call they are read from {level}, not memory"


def _draw(plt, res, n, cpu):
    labels = [v if res[v]["n"] == n else f"{v} (on {res[v]['n']:,})" for v in VARIANTS] + \
        ["course: for loop", "course: np.dot"]
    ns = [res[v]["ns"] for v in VARIANTS] + [ms * 1e6 / COURSE_N for ms in (COURSE_LOOP_MS, COURSE_VECTORIZED_MS)]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    y = np.arange(len(labels))[::-1]
    colors = ["tab:red", "tab:blue", "tab:orange", "tab:green", "tab:purple", "lightgray", "lightgray"]
    bars = ax.barh(y, ns, color=colors, edgecolor="k", linewidth=0.5)
    for bar in bars[-2:]:
        bar.set_hatch("//")
    for yi, v in zip(y, ns):
        ax.text(v * 1.08, yi, f"{v:,.0f} ns" if v >= 100 else f"{v:.3g} ns", va="center", fontsize=8)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=9)
    ax.set_xscale("log")
    ax.set_xlim(min(ns) / 2, max(ns) * 6)
    ax.set_xlabel(f"ns per element (log scale); x {n:,} = the time of the whole dot")
    ax.set_title(f"s += a[i] * b[i], n = {n:,} float64 (hatched: the lecture's published demo)\n{cpu}",
                 fontsize=9)
    return fig
