"""``logistic-loop``: the first course's logistic regression, one example at
a time against vectorized, interpreted and compiled.

The week-2 lectures ("Gradient Descent on m Examples", then "Vectorization")
write one step of logistic regression's gradient as a loop over the examples
with accumulators, two features x1, x2:

    J = 0; dw1 = 0; dw2 = 0; db = 0
    for i in range(m):
        z = w1 x1(i) + w2 x2(i) + b;  a = sigma(z)
        J += -(y(i) log a + (1 - y(i)) log(1 - a))
        dz = a - y(i);  dw1 += x1(i) dz;  dw2 += x2(i) dz;  db += dz
    J /= m; dw1 /= m; dw2 /= m; db /= m

and then vectorize it: Z = w^T X + b, A = sigma(Z), dZ = A - Y,
dw = X dZ^T / m, db = sum(dZ) / m. Both run here, interpreted and compiled:
the loop written once (``prange`` is ``range`` uncompiled) runs in Python,
under @njit and under @njit(parallel=True) (J, dw1, dw2 and db are prange
reductions); the vectorized one runs as NumPy and under @njit.

Shapes (the course's): X (n_x, m) with n_x = 2, Y (1, m) of 0/1, w (n_x, 1),
b a float; dw (n_x, 1).
"""

import math

import numba
import numpy as np
from numba import prange

from kernels import cpu
from kernels.loops import sigmoid_scalar
from kernels.options import PARALLEL_OPTIONS, SERIAL_OPTIONS

from ..bench.machine import cpu_model
from ..timing import best_time, format_seconds
from .common import Lesson

SUMMARY = "the course's per-example logistic-regression loop (dw1, dw2, db accumulators) against the " \
          "vectorized formulas, interpreted and compiled"

M = 1_000_000  # examples: the scale of the lecture's 1,000,000-element demo
PYTHON_M = 50_000  # examples the interpreted loop is timed on (~0.1 s a call); reported per example

# The course's own check of this gradient: the week-2 assignment "Logistic
# Regression with a Neural Network mindset", propagate() on w = [[1], [2]],
# b = 2, X = [[1, 2], [3, 4]], Y = [[1, 0]], prints dw = [[0.99993216],
# [1.99980262]], db = 0.499935230625, cost = 6.000064773192205
# (Kulbear/deep-learning-coursera, "Neural Networks and Deep Learning/Logistic
# Regression with a Neural Network mindset.ipynb").
COURSE_CASE = dict(w=[[1.0], [2.0]], b=2.0, X=[[1.0, 2.0], [3.0, 4.0]], Y=[[1.0, 0.0]])
COURSE_EXPECTED = dict(dw1=0.99993216, dw2=1.99980262, db=0.499935230625, J=6.000064773192205)
# The lecture's words on the dot-product demo: the loop took about 300 times
# as long as the vectorized version (fengdu78/deeplearning_ai_books,
# markdown/lesson1-week2.md, 2.11).
COURSE_RATIO = 300

VARIANTS = ("loop, interpreted", "loop, numba", "loop, parallel", "vectorized, NumPy", "vectorized, numba")


def logistic_loop(X, Y, w, b):
    """(J, dw1, dw2, db): the lecture's loop over the m examples of X (2, m),
    Y (1, m) at w (2, 1), b. sigma is the library's overflow-free sigmoid."""
    m = X.shape[1]
    x1, x2, y = X[0], X[1], Y[0]
    w1, w2 = w[0, 0], w[1, 0]
    J = 0.0
    dw1 = 0.0
    dw2 = 0.0
    db = 0.0
    for i in prange(m):  # compiled with parallel=True: J, dw1, dw2, db are reductions
        z = w1 * x1[i] + w2 * x2[i] + b
        a = sigmoid_scalar(z)
        J += -(y[i] * math.log(a) + (1.0 - y[i]) * math.log(1.0 - a))
        dz = a - y[i]
        dw1 += x1[i] * dz
        dw2 += x2[i] * dz
        db += dz
    return J / m, dw1 / m, dw2 / m, db / m


def logistic_vectorized(X, Y, w, b):
    """(J, dw1, dw2, db) by the lecture's vectorized formulas; X (2, m),
    Y (1, m), w (2, 1). Stable sigmoid: exp only sees -|Z|."""
    m = X.shape[1]
    Z = np.dot(w.T, X) + b
    E = np.exp(-np.abs(Z))
    A = np.where(Z >= 0, 1.0, E) / (1.0 + E)
    J = -np.sum(Y * np.log(A) + (1.0 - Y) * np.log(1.0 - A)) / m
    dZ = A - Y
    dw = np.dot(X, dZ.T) / m
    db = np.sum(dZ) / m
    return J, dw[0, 0], dw[1, 0], db


def _compiled(func, options, tag):
    """``func`` compiled with ``options`` and cached; the name carries the
    kernels' source digest, as kernels.cpu names its own (sigmoid_scalar is
    inlined from there)."""
    d = numba.njit(**options)(cpu.rebind(func, suffix=f"__lesson{tag}_{cpu.SOURCE_DIGEST}"))
    cpu._prune_stale(d, cpu.SOURCE_DIGEST)  # other digests' entries go, as for the kernels
    return d


def _data(m, seed):
    """X (2, m) standard normal, Y (1, m) drawn from a logistic model, and the
    point w (2, 1), b where the gradient is taken."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((2, m))
    p = 1 / (1 + np.exp(-(1.5 * X[0] - 2.0 * X[1] + 0.5)))
    Y = (rng.random(m) < p).astype(np.float64).reshape(1, m)
    return X, Y, np.array([[0.5], [-0.5]]), 0.1


def run(backend=None, m=M, python_m=PYTHON_M, min_time=0.1, seed=0):
    """Time each variant's gradient on m examples (the interpreted loop on
    ``python_m``, scaled) and check each on the course's own test case.
    ``backend``: None only (the lesson races the formulations itself)."""
    if backend is not None:
        raise ValueError("the logistic-loop lesson races the loop and the vectorized formulas, interpreted "
                         "and compiled, itself; run it without --backend")
    python_m = min(python_m, m)
    X, Y, w, b = _data(m, seed)
    Xp, Yp = X[:, :python_m].copy(), Y[:, :python_m].copy()
    fns = {"loop, interpreted": logistic_loop,
           "loop, numba": _compiled(logistic_loop, SERIAL_OPTIONS, "numba"),
           "loop, parallel": _compiled(logistic_loop, PARALLEL_OPTIONS, "parallel"),
           "vectorized, NumPy": logistic_vectorized,
           "vectorized, numba": _compiled(logistic_vectorized, SERIAL_OPTIONS, "numba")}
    case = [np.array(COURSE_CASE[key], dtype=np.float64) for key in ("X", "Y", "w")]
    res = {}
    for name in VARIANTS:
        fn = fns[name]
        course_case = [float(v) for v in fn(*case, COURSE_CASE["b"])]  # compiles (or loads) first
        x, y = (Xp, Yp) if name == "loop, interpreted" else (X, Y)
        got = [float(v) for v in fn(x, y, w, b)]
        t = best_time(lambda: fn(x, y, w, b), min_time=min_time)
        mm = x.shape[1]
        res[name] = dict(m=mm, time=t, ns=t / mm * 1e9, time_m=t / mm * m, values=got, course_case=course_case,
                         error_ratio=_error_ratio(got, x, y, w, b))
    t_vec = res["vectorized, NumPy"]["time_m"]
    figures = dict(m=m, python_m=python_m, course_expected=dict(COURSE_EXPECTED), course_ratio=COURSE_RATIO,
                   measured_ratio=res["loop, interpreted"]["time_m"] / t_vec,
                   error_bound=(m + 16) * np.finfo(np.float64).eps, variants=list(VARIANTS))
    rows = []
    for name in VARIANTS:
        r = res[name]
        figures[f"time_m[{name}]"] = r["time_m"]
        figures[f"ns_per_example[{name}]"] = r["ns"]
        figures[f"x_vectorized[{name}]"] = r["time_m"] / t_vec
        figures[f"values[{name}]"] = dict(zip(("J", "dw1", "dw2", "db"), r["values"]))
        figures[f"course_case[{name}]"] = dict(zip(("J", "dw1", "dw2", "db"), r["course_case"]))
        figures[f"error_ratio[{name}]"] = r["error_ratio"]
        time_text = format_seconds(r["time_m"]) + (" (scaled)" if r["m"] != m else "")
        rows.append([name, f"{r['m']:,}", time_text, r["ns"], r["time_m"] / t_vec, r["error_ratio"],
                     f"{r['course_case'][1]:.8f}", f"{r['course_case'][3]:.12f}", f"{r['course_case'][0]:.15f}"])
    cpu_text = cpu_model()
    text = _sentences(res, figures, m, python_m)

    def draw(plt):
        return _draw(plt, res, m, cpu_text)

    return Lesson("logistic-loop", f"Logistic regression's gradient, m = {m:,} examples, n_x = 2, float64, "
                  f"on {cpu_text}",
                  ["variant", "examples timed", f"time for {m:,}", "ns / example", "x vectorized", "error",
                   "course case: dw1", "db", "cost"], rows, text, figures, draw)


def _error_ratio(got, X, Y, w, b):
    """max over (J, dw1, dw2, db) of |got - ref| / scale: ref by the
    vectorized formulas, scale the mean over the examples of |term| + 1 (term:
    the loss, x1 dz, x2 dz, dz; the + 1 covers a few ulp of error in a and
    log a, which are at most 1 in size). Two sums of m terms in any order
    differ by at most about m eps x the sum of |term|, so the ratio stays
    below (m + 16) eps (figures["error_bound"])."""
    ref = logistic_vectorized(X, Y, w, b)
    Z = (w.T @ X + b)[0]
    E = np.exp(-np.abs(Z))
    A = np.where(Z >= 0, 1.0, E) / (1.0 + E)
    y = Y[0]
    dz1 = np.abs(A - y) + 1
    loss = np.abs(y * np.log(A) + (1 - y) * np.log(1 - A)) + 1
    scale = (loss.mean(), (np.abs(X[0]) * dz1).mean(), (np.abs(X[1]) * dz1).mean(), dz1.mean())
    return max(abs(g - float(r)) / s for g, r, s in zip(got, ref, scale))


def _sentences(res, f, m, python_m):
    li, ln, lp, vn, vj = (res[v] for v in VARIANTS)
    ex = f["course_expected"]
    cc = ln["course_case"]
    parts = [
        f"The loop, interpreted, takes {li['ns']:.0f} ns an example ({format_seconds(li['time_m'])} for {m:,}); "
        f"the vectorized formulas in NumPy {format_seconds(vn['time_m'])}: {f['measured_ratio']:.0f}x, where the "
        f"lecture's dot-product demo found about {COURSE_RATIO}x.",
        f"Compiled by Numba the same loop takes {format_seconds(ln['time_m'])} "
        f"({ln['ns']:.1f} ns an example), {li['time_m'] / ln['time_m']:.0f}x the interpreted loop and "
        f"{vn['time_m'] / ln['time_m']:.1f}x faster than NumPy: one pass over X computes z, a, the cost and the "
        f"three sums while each example is in registers, where NumPy makes a pass and a temporary for every "
        f"operation (Z, |Z|, exp, A, two logs, dZ, ...). In parallel (J, dw1, dw2, db as prange reductions): "
        f"{format_seconds(lp['time_m'])}, {lp['time_m'] / ln['time_m']:.2f}x the serial loop's time. The vectorized formulas compiled by Numba: "
        f"{format_seconds(vj['time_m'])}, {vj['time_m'] / vn['time_m']:.2f}x NumPy's time: compiling "
        f"whole-array code keeps its passes and temporaries.",
        f"Every variant gives the course's own test case (w = [[1], [2]], b = 2, X = [[1, 2], [3, 4]], "
        f"Y = [[1, 0]]): dw = [{cc[1]:.8f}, {cc[2]:.8f}], db = {cc[3]:.12f}, cost = {cc[0]:.15f} on the "
        f"compiled loop; the assignment expects [{ex['dw1']}, {ex['dw2']}], {ex['db']}, {ex['J']}.",
        f"'error': the largest difference of J, dw1, dw2 or db from the vectorized formulas' (NumPy, on the same "
        f"examples) over the mean |term| + 1, at most {f['error_bound']:.1e} for two orders of summation.",
        f"The interpreted loop was timed on the first {python_m:,} examples and scaled to {m:,}; every other "
        f"variant ran on all {m:,}. Times are the fastest of repeated calls after a warm-up call.",
    ]
    return "\n".join(parts)


def _draw(plt, res, m, cpu_text):
    fig, ax = plt.subplots(figsize=(8, 3.4))
    y = np.arange(len(VARIANTS))[::-1]
    ns = [res[v]["ns"] for v in VARIANTS]
    ax.barh(y, ns, color=["tab:red", "tab:orange", "tab:purple", "tab:blue", "tab:cyan"], edgecolor="k",
            linewidth=0.5)
    for yi, v in zip(y, ns):
        ax.text(v * 1.08, yi, f"{v:,.0f} ns" if v >= 100 else f"{v:.3g} ns", va="center", fontsize=8)
    ax.set_yticks(y)
    ax.set_yticklabels([v if res[v]["m"] == m else f"{v} (on {res[v]['m']:,})" for v in VARIANTS], fontsize=9)
    ax.set_xscale("log")
    ax.set_xlim(min(ns) / 2, max(ns) * 6)
    ax.set_xlabel(f"ns per example (log scale); x {m:,} = one gradient evaluation")
    ax.set_title(f"Logistic regression's cost and gradient, n_x = 2, float64\n{cpu_text}", fontsize=9)
    return fig
