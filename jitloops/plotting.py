"""matplotlib on demand, for every ``--plot`` (the ``plot`` extra): one home
for importing it, its backend, and the error when it is missing."""

import os


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
