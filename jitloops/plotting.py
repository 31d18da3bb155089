"""matplotlib on demand, for every ``--plot`` (the ``plot`` extra): one home
for importing it, its backend, and the error when it is missing."""

import os
import pathlib


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only), or a clear error."""
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise RuntimeError("--plot needs matplotlib, which is not installed: pip install 'jitloops[plot]' "
                           "(or pip install matplotlib)") from None
    if "MPLBACKEND" not in os.environ and not _in_notebook():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _in_notebook():
    try:
        from IPython import get_ipython
    except ModuleNotFoundError:
        return False
    shell = get_ipython()
    return shell is not None and "ZMQ" in type(shell).__name__


def picture_path(path):
    """The file matplotlib's savefig writes when given ``path``: ``path``
    itself where its extension names a format matplotlib writes, with
    savefig's default format added where it has none (savefig adds it: "pic"
    becomes "pic.png"), as a str or, given a pathlib path, as one; a
    ValueError for an extension it cannot write."""
    import matplotlib
    from matplotlib.backend_bases import FigureCanvasBase
    name = os.fspath(path)
    stem, ext = os.path.splitext(name)
    if ext in ("", "."):  # savefig's own rule: the default format, after the name's trailing dots
        name = f"{name.rstrip('.')}.{matplotlib.rcParams['savefig.format']}"
    else:
        formats = FigureCanvasBase.get_supported_filetypes()
        if ext[1:].lower() not in formats:
            raise ValueError(f"matplotlib cannot write a {ext!r} picture ({name!r}); name the file with one of "
                             f"{', '.join('.' + f for f in sorted(formats))}, e.g. {stem}.png")
    return type(path)(name) if isinstance(path, pathlib.PurePath) else name
