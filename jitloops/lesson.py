"""``jitloops lesson [NAME] [--backend B] [--plot FILE]``: the course's lessons.

Without a name, the list with a line each; with one, the lesson runs, prints
its table and what it shows, and with --plot writes its picture (a PNG).
"""

import sys

import kernels

from . import lessons
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
        if args.plot:
            pyplot()  # before the lesson runs: a missing matplotlib says so at once
        result = module.run(backend=args.backend)
    except (ValueError, RuntimeError, kernels.BackendUnavailableError) as exc:
        print(f"jitloops lesson: {exc}", file=sys.stderr)
        return 2
    print(result.report())
    if args.plot:
        print(f"\npicture: {result.plot(args.plot)}")
    return 0
