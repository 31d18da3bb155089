"""What ``jitloops bench`` prints and writes: the header, the tables, the goals, JSON, a plot.

Every function here takes measured rows (``runner.run_cases`` after
``runner.add_metrics``, ``startup.startup_times``, ``startup.fit_memory``) or
the whole report dict that ``command.run`` assembles, and measures nothing.
"""

import json

from jitloops.plotting import pyplot
from jitloops.timing import format_seconds

from .machine import PEAK_FORMULA, compute_peak, fma_units
from .ops import OPS_LAYER


def format_table(headers, rows, left=2):
    """``rows`` (lists of cells, as text) under ``headers``, columns padded to
    their widest cell: the first ``left`` columns left-aligned (the names), the
    rest right-aligned (the numbers)."""
    if not rows:
        return "(nothing ran)"
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i < left else c.rjust(w)
                                  for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(headers), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def _fmt(x, spec):
    return "-" if x is None else format(x, spec)


def _numpy_simd(info):
    """ "SIMD X86_V3, " for NumPy's best dispatched target (its ufuncs'; an
    AVX2 comparison on an AVX-512 CPU turns the others off:
    NPY_DISABLE_CPU_FEATURES), or nothing where unknown."""
    targets = info.get("numpy_simd") or []
    return f"SIMD {targets[-1]}, " if targets else ""


def header_lines(info, bandwidth=None, bandwidth_mb=None):
    blas = info["blas"]
    lines = [
        f"CPU: {info['cpu']} (LLVM: {info['llvm_cpu']}), {info['cores']} cores, "
        f"{_fmt(info['ghz'], '.2f')} GHz, SIMD: {' '.join(info['simd'])}; caches: "
        + ", ".join(f"L{l} {s // 1024} KiB" for l, s in sorted(info["caches"].items())),
        f"numba {info['numba']} (threading layer {info['numba_threading_layer']}, "
        f"{info['numba_threads']} threads), numpy {info['numpy']} ({_numpy_simd(info)}BLAS {blas['name']}, "
        f"{blas['threads']} threads), llvmlite {info['llvmlite']}, Python {info['python']}, "
        f"torch {info['torch'] or 'not installed'}",
    ]
    if info.get("gpu"):
        lines.append(f"GPU: {info['gpu']} (rows cuda and torch-cuda; no % peak: the peaks below are the CPU's)")
    bits = info["vector_bits"]
    lines.append(PEAK_FORMULA.format(fma=fma_units(info), bits=bits, l64=bits // 64, l32=bits // 32,
                                     mb=bandwidth_mb or 256))
    p64 = compute_peak(8, 1, info)
    if p64:
        lines.append(f"  = {p64:.1f} GFLOP/s float64 and {compute_peak(4, 1, info):.1f} float32 per thread; "
                     f"measured copy bandwidth {_fmt(bandwidth, '.1f')} GB/s")
    return lines


def handoff_text(row):
    """A row's cores' handoff (machine.handoff_ns) as "71" or "70-330" ns; "" where not measured."""
    if row.get("handoff_ns") is None:
        return ""
    lo, hi = row.get("handoff_ns_range", [row["handoff_ns"]] * 2)
    return f"{lo:.0f}" if hi < 1.5 * lo else f"{lo:.0f}-{hi:.0f}"


def theme_table(results, theme):
    """One theme's rows as a table: a problem's name on its first contender's
    row only, and (where it was measured) the cores' handoff while its
    contenders ran."""
    rows = []
    prev = None
    mine = [r for r in results if r["theme"] == theme]
    handoffs = any(r.get("handoff_ns") is not None for r in mine)
    for r in mine:
        first = (r["label"], r["dtype"]) != prev
        prev = (r["label"], r["dtype"])
        name = (f"{r['label']} {r['dtype']}" if first else "")
        tail = [handoff_text(r) if first else ""] if handoffs else []
        if "time_s" not in r:
            rows.append([name, r["contender"], "skipped", "", "", "", "", ""] + tail)
            continue
        rows.append([name, r["contender"], format_seconds(r["per_iteration_s"]),
                     format_seconds(r.get("per_iteration_min_s")), _fmt(r["speedup_vs_numpy"], ".2f"),
                     _fmt(r["gflops"], ".2f"), _fmt(r["gbs"], ".2f"),
                     "-" if r["peak_fraction"] is None else f"{100 * r['peak_fraction']:.1f}%"] + tail)
    what = "per iteration" if theme == "training" else "per call"
    return format_table(["problem", "contender", f"median {what}", "min", "x numpy", "GFLOP/s", "GB/s", "% peak"]
                        + (["handoff ns"] if handoffs else []), rows)


def startup_table(rows):
    """``startup.startup_times`` rows as a table."""
    out = []
    for r in rows:
        if "error" in r:
            out.append([r["backend"], r["phase"], "error", "", "", r["error"][:60]])
            continue
        out.append([r["backend"], r["phase"], format_seconds(r["import_s"]),
                    "-" if r["ops_s"] is None else format_seconds(r["ops_s"]),
                    "-" if r["fit_s"] is None else format_seconds(r["fit_s"]), format_seconds(r["wall_s"])])
    return format_table(["backend", "phase", "import", "first call of every op",
                         "first planar fit iteration", "whole process"], out)


def memory_table(rows):
    """``startup.fit_memory`` rows as a table."""
    out = []
    for r in rows:
        if "error" in r:
            out.append([r["backend"], str(r["iterations"]), "error", r["error"][:60]])
            continue
        out.append([r["backend"], f"{r['iterations']:,}", f"{r['traced_peak_bytes'] / 1024:.1f} KiB",
                    f"{r['maxrss_growth_kib']} KiB"])
    return format_table(["backend", "fit iterations", "traced peak (tracemalloc)", "max RSS growth"], out)


def goal_ratios(results):
    """The ratios the performance goals (issues 6, 4 and 16) are stated in,
    from one run's results: (what, ratio from medians, ratio from minima,
    goal text)."""
    return [row[:4] for row in goal_rows(results)]


def goal_rows(results):
    """goal_ratios' rows and, fifth, the problem's cores' handoff (handoff_text; "" where not measured)."""
    def handoff(label_start, dtype, theme="training"):
        for r in results:
            if r["theme"] == theme and r["label"].startswith(label_start) and r["dtype"] == dtype:
                text = handoff_text(r)
                if text:
                    return text
        return ""

    def t(label_start, dtype, contender, theme):
        for r in results:
            if (r["theme"] == theme and r["label"].startswith(label_start) and r["dtype"] == dtype
                    and r["contender"] == contender and "time_s" in r):
                return r["per_iteration_s"], r.get("per_iteration_min_s", r["per_iteration_s"])
        return None

    rows = []
    # planar: a fit iteration; adam64-*: an epoch of mini-batch (64) Adam
    for name, goal_numpy, goal_torch in (("planar", ">= 8", ">= 10"), ("adam64-digits", ">= 4", ">= 6"),
                                         ("adam64-mnist", ">= 4", ">= 6")):
        for dtype in ("float64", "float32"):
            numpy_t, torch_t = t(name, dtype, "numpy", "training"), t(name, dtype, "torch", "training")
            compiled = [x for x in (t(name, dtype, c, "training") for c in ("numba", "parallel")) if x]
            if compiled and numpy_t:
                best = (min(x[0] for x in compiled), min(x[1] for x in compiled))
                rows.append((f"{name} {dtype}: numpy / best compiled", numpy_t[0] / best[0], numpy_t[1] / best[1],
                             goal_numpy, handoff(name, dtype)))
                if torch_t:
                    rows.append((f"{name} {dtype}: torch / best compiled", torch_t[0] / best[0],
                                 torch_t[1] / best[1], goal_torch, handoff(name, dtype)))
    for name in ("deep", "mnist [784, 128, 64, 1] m=1024", "mnist60k"):
        for dtype in ("float64", "float32"):
            par, num = t(name, dtype, "parallel", "training"), t(name, dtype, "numpy", "training")
            tor = t(name, dtype, "torch", "training")
            short = name.split(' m=')[0].split(' [')[0]
            if par and num:
                rows.append((f"{short} {dtype}: parallel / numpy", par[0] / num[0], par[1] / num[1], "<= 1",
                             handoff(name, dtype)))
            if par and tor:
                rows.append((f"{short} {dtype}: parallel / torch", par[0] / tor[0], par[1] / tor[1], "<= 1.1",
                             handoff(name, dtype)))
    for name in ("planar", "mnist60k"):  # issue 4's goals, where a GPU ran
        for dtype in ("float64", "float32"):
            gpu, num, tgpu = (t(name, dtype, c, "training") for c in ("cuda", "numpy", "torch-cuda"))
            short = name.split(" ")[0]
            if gpu and num:
                rows.append((f"{short} {dtype}: numpy / cuda", num[0] / gpu[0], num[1] / gpu[1],
                             ">= 20" if name == "mnist60k" else "-"))
            if gpu and tgpu:
                rows.append((f"{short} {dtype}: cuda / torch-cuda", gpu[0] / tgpu[0], gpu[1] / tgpu[1],
                             "<= 2" if name == "mnist60k" else "-"))
    for dtype in ("float64", "float32"):
        par, nd = t("dot", dtype, "parallel", "dot"), t("dot", dtype, "np.dot all threads", "dot")
        fm, nd1 = t("dot", dtype, "njit fastmath", "dot"), t("dot", dtype, "np.dot 1 thread", "dot")
        if par and nd:
            rows.append((f"dot {dtype}: parallel / np.dot", par[0] / nd[0], par[1] / nd[1], "<= 1"))
        if fm and nd1:
            rows.append((f"dot {dtype}: fastmath serial / np.dot 1 thread", fm[0] / nd1[0], fm[1] / nd1[1], "<= 1.3"))
    return [row + ("",) * (5 - len(row)) for row in rows]


def goals_table(results):
    """``goal_ratios`` as a table, with the cores' handoff where it was
    measured; "" where no goal's contenders ran."""
    found = goal_rows(results)
    handoffs = any(h for *_, h in found)
    rows = [[what, f"{med:.2f}", f"{mn:.2f}", goal] + ([h] if handoffs else []) for what, med, mn, goal, h in found]
    return format_table(["ratio", "from medians", "from minima", "goal"] + (["handoff ns"] if handoffs else []),
                        rows) if rows else ""


def format_report(report):
    """The whole report as text: header, one table a theme, goals, start-up, memory."""
    out = header_lines(report["machine"], report.get("bandwidth_gbs"), report.get("bandwidth_mb"))
    out.append(f"sweep '{report['sweep']}': median and minimum of calls after a warm-up call (compilation "
               f"never timed); x numpy = numpy's median / this median (dot: np.dot on all threads); "
               f"GFLOP/s, GB/s and % peak from the median")
    if any(r.get("handoff_ns") is not None for r in report["results"]):
        out.append("handoff ns (problems with a multi-threaded contender): a cache line's round trip between "
                   "two threads, before each round of the problem's turns and after the last (min-max): tens of "
                   "ns between cores that share a cache, hundreds where the host put the vCPUs on cores that do "
                   "not, and then the team's mini-batch rows slow (README, \"Cores apart\")")
    titles = {"ops": "ops (raw kernels, outputs preallocated; layer (n, k) = "
                     f"{OPS_LAYER}; [level] = the cache the working set fits)",
              "training": "training (fit iterations; GFLOP/s counts the matrix products, "
                          "2 x (3 x sum n[l] n[l-1] - n[1] n[0]) m per iteration: no dX)",
              "dot": "dot product (the course's demo)"}
    for theme in report["themes"]:
        out += ["", titles[theme], theme_table(report["results"], theme)]
    goals = goals_table(report["results"])
    if goals:
        out += ["", "the performance goals' ratios (issue 16's where it restated them), from this run", goals]
    if report.get("startup"):
        cold = any(r["phase"] == "compile" for r in report["startup"])
        out += ["", "start-up, fresh processes (NUMBA_CACHE_DIR empty, then warm): compile vs cache-load time"
                if cold else "start-up, a fresh process with this run's (warm) Numba cache",
                startup_table(report["startup"])]
    if report.get("memory"):
        out += ["", "fit's memory vs iterations (planar [2, 4, 1], fresh processes, after a warm-up fit)",
                memory_table(report["memory"])]
    return "\n".join(out)


def plot(report, path):
    """Log-log time vs size per backend, one panel per op (ops theme; float64
    solid, float32 dashed). Needs matplotlib (the ``plot`` extra)."""
    plt = pyplot()
    rows = [r for r in report["results"] if r["theme"] == "ops" and "time_s" in r]
    names = list(dict.fromkeys(r["label"].split(" ")[0] for r in rows))
    if not names:
        rows = [r for r in report["results"] if "time_s" in r]
        names = ["all"]
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = {c: palette[i % len(palette)]
              for i, c in enumerate(dict.fromkeys(r["contender"] for r in rows))}  # one colour per backend
    cols = min(3, len(names))
    nrows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(5 * cols, 3.6 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        sel = [r for r in rows if name == "all" or r["label"].split(" ")[0] == name]
        for contender in dict.fromkeys(r["contender"] for r in sel):
            for dtype, style in (("float64", "-"), ("float32", "--")):
                pts = sorted((r["size"], r["time_s"]) for r in sel
                             if r["contender"] == contender and r["dtype"] == dtype)
                if pts:
                    ax.loglog(*zip(*pts), style, marker="o", color=colors[contender],
                              label=f"{contender} {dtype}")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("m (examples)")
        ax.set_ylabel("seconds per call")
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"jitloops ops: time vs size ({report['machine']['cpu']}, {report['machine']['cores']} cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)



def write_json(report, path):
    """Everything measured, as JSON (what ``--json`` writes)."""
    with open(path, "w") as f:
        json.dump(report, f, indent=1, default=str)
