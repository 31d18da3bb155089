"""Checks of the subcommands' options, shared so that every one answers alike.

Each raises a ValueError whose one-line message names the option, what it
needs and what arrived; the subcommand prints it after "jitloops NAME: " and
exits 2, as argparse does for its own errors, before anything runs.
"""

import math
import os


def at_least(value, option, minimum=1):
    """``value`` (an int option) unless it is below ``minimum``."""
    if value < minimum:
        raise ValueError(f"{option} must be >= {minimum}, got {value}")
    return value


def finite(value, option, positive=False):
    """``value`` (a float option) where it is a finite number >= 0 (> 0 with ``positive``)."""
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{option} must be a finite number {'>' if positive else '>='} 0, got {value!r}")
    return value


def names(text, option, valid, what):
    """The comma-separated names in ``text``, each one of ``valid``, in order, once each
    (``what``: "backend", "theme", ... for the message)."""
    items = [t.strip() for t in text.split(",")]
    if not any(items):
        raise ValueError(f"{option} names no {what}; give one or more of {', '.join(valid)}, comma-separated")
    if not all(items):  # "numba,", "a,,b": a name left out
        raise ValueError(f"{option} has an empty name in {text!r}; separate names by single commas, "
                         f"e.g. {','.join(valid[:2])}")
    unknown = [t for t in items if t not in valid]
    if unknown:
        raise ValueError(f"unknown {what}(s) {', '.join(unknown)} in {option}; valid: {', '.join(valid)}")
    return list(dict.fromkeys(items))


def output_path(path, option, picture=False):
    """The file ``option`` (--save, --json, --plot) will write for ``path``,
    checked before the run rather than after it: not empty, not a folder, in
    a folder that exists and is writable (model.persistence.check_save_path,
    the rule of NeuralNetwork.save) and, for a ``picture``, in a format
    matplotlib writes (with savefig's ".png" added to a name without one)."""
    from model.persistence import check_save_path

    if not path:
        raise ValueError(f"{option} needs a file name, got an empty one")
    if path.endswith(tuple(filter(None, (os.sep, os.altsep)))):
        raise ValueError(f"{option} {path!r} names a folder; give a file name, e.g. {os.path.join(path, 'out')}")
    if picture:
        from .plotting import picture_path
        try:
            path = picture_path(path)
        except ValueError as exc:
            raise ValueError(f"{option}: {exc}") from None
    try:
        check_save_path(path, replaced=option == "--save")  # save renames a file over it; the others open() it
    except OSError as exc:
        # its message names save(); here the option is the news
        raise ValueError(f"{option}: {str(exc).removeprefix(f'save({path!r}): ')}") from None
    return path


def same_file(a, b):
    """Whether paths ``a`` and ``b`` name one file (so the second write would clobber the first)."""
    return os.path.realpath(a) == os.path.realpath(b)
