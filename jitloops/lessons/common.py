"""What every lesson shares: the Lesson it returns (a table, a few sentences,
the figures a test checks, a picture), the backend it runs on, and the
decision-boundary drawing of the course's notebooks. (matplotlib on demand:
``jitloops.plotting.pyplot``.)"""

import math
from dataclasses import dataclass, field

import numpy as np

import kernels

from ..plotting import picture_path, pyplot

# The fastest backend for the course's small networks: the serial compiled
# loops (threads cost more than they save below the parallel thresholds).
DEFAULT_BACKEND = "numba"


def backend_or_default(backend, allowed=None):
    """``backend`` checked against kernels.BACKENDS (and ``allowed``), or the default."""
    if backend is None:
        return DEFAULT_BACKEND
    if backend not in kernels.BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(kernels.BACKENDS)}")
    if allowed is not None and backend not in allowed:
        raise ValueError(f"this lesson runs on {', '.join(allowed)}, not {backend!r}")
    return backend


def _cell(value):
    if isinstance(value, float):
        if value != value:
            return "-"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.4g}"
    return str(value)


@dataclass
class Lesson:
    """What a lesson found on this machine.

    name, title: the lesson's; headers, rows: its table; text: the sentences
    that say what the table shows (figures formatted in when it ran);
    figures: name -> value, the numbers the tests compare with the course's;
    draw: draw(plt) -> figure for ``plot``, or None.
    """

    name: str
    title: str
    headers: list
    rows: list
    text: str
    figures: dict = field(default_factory=dict)
    draw: object = None

    def table(self):
        cells = [[_cell(v) for v in row] for row in self.rows]
        widths = [max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h))
                  for i, h in enumerate(self.headers)]
        line = lambda values: "  ".join(str(v).rjust(w) if i else str(v).ljust(w)  # noqa: E731
                                        for i, (v, w) in enumerate(zip(values, widths)))
        return "\n".join([line(self.headers), line("-" * w for w in widths)] + [line(r) for r in cells])

    def report(self):
        return f"{self.title}\n\n{self.table()}\n\n{self.text}"

    def plot(self, path):
        """Write the lesson's picture to ``path`` (a PNG where the name has no
        extension: "pic" writes "pic.png"); returns the file's name."""
        if self.draw is None:
            raise ValueError(f"lesson {self.name!r} has no picture")
        plt = pyplot()
        path = picture_path(path)  # the name savefig writes, where it adds a ".png"
        fig = self.draw(plt)
        fig.tight_layout()
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        return path

    def __str__(self):
        return self.report()

    def _repr_pretty_(self, printer, cycle):  # IPython shows the report
        printer.text(self.report())


def decision_boundary(ax, predict, X, Y, title, pad=1.0, steps=300):
    """The course's plot_decision_boundary: ``predict`` (2, k) -> (k,) labels
    filled over a grid around X (2, m), the examples on top coloured by Y (1, m)."""
    x0, x1 = X[0].min() - pad, X[0].max() + pad
    y0, y1 = X[1].min() - pad, X[1].max() + pad
    xx, yy = np.meshgrid(np.linspace(x0, x1, steps), np.linspace(y0, y1, steps))
    Z = np.asarray(predict(np.vstack([xx.ravel(), yy.ravel()]))).reshape(xx.shape)
    classes = max(int(np.max(Y)), int(np.max(Z))) + 1
    # one level per class and a fixed colour range: a class keeps its colour
    # even where the network predicts one class everywhere
    levels = np.arange(-0.5, max(classes, 2), 1.0)
    ax.contourf(xx, yy, Z, levels=levels, cmap="Spectral", vmin=0, vmax=max(classes - 1, 1), alpha=0.8)
    ax.scatter(X[0], X[1], c=np.ravel(Y), s=8, cmap="Spectral", vmin=0, vmax=max(classes - 1, 1),
               edgecolors="k", linewidths=0.3)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def grid(plt, n, width=3.2, height=2.8):
    """A figure with n axes in rows of at most 4; returns (fig, axes list)."""
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]
