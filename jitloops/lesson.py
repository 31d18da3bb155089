"""``jitloops lesson [NAME] [--backend B] [--plot FILE]``: the course's lessons.

Without a name, the list with a line each; with one, the lesson runs, prints
its table and what it shows, and with --plot writes its picture (a PNG).
"""

import sys

import kernels

from . import lessons, options
from .lessons import common
from .plotting import pyplot


def add_arguments(parser):
    parser.add_argument("name", nargs="?", metavar="NAME", help=f"one of: {', '.join(lessons.LESSONS)}")
    parser.add_argument("--backend", choices=kernels.BACKENDS, default=None,
                        help=f"where the lesson trains (default: the lesson's, usually "
                             f"{common.DEFAULT_BACKEND!r})")
    parser.add_argument("--plot", metavar="FILE", help="write the lesson's picture to FILE (PNG; needs matplotlib)")


def run(args):
    if args.name is None:
        names = lessons.available()
        width = max(len(n) for n, _ in names)
        print("The course's lessons (jitloops lesson NAME [--backend B] [--plot FILE]):\n")
        for name, summary in names:
            print(f"  {name.ljust(width)}  {summary}")
        return 0
    try:
        module = lessons.module(args.name)
        picture = None
        if args.plot is not None:  # before the lesson runs: a missing matplotlib or a bad path says so at once
            pyplot()
            picture = options.output_path(args.plot, "--plot", picture=True)
        result = module.run(backend=args.backend)
    except (ValueError, RuntimeError, kernels.BackendUnavailableError) as exc:
        print(f"jitloops lesson: {exc}", file=sys.stderr)
        return 2
    if picture is not None:  # drawn before the printing: a reader that stops early must not cost it
        result.plot(picture)
    print(result.report())
    if picture is not None:
        print(f"\npicture: {picture}")
    return 0
