"""The ``jitloops`` command line.

Subcommands live in their own modules, each with ``add_arguments(parser)`` and
``run(args) -> int``; a module that is not there yet is simply not listed.
"""

import argparse
import importlib
import os
import sys

# name -> (module, one-line help)
SUBCOMMANDS = {
    "compare": ("jitloops.compare",
                "train the course's planar network on every backend and compare them (the main job)"),
    "train": ("jitloops.train", "train a network on a built-in dataset and report cost and accuracy"),
    "bench": ("jitloops.bench", "benchmark ops and training steps across backends"),
    "simd": ("jitloops.simd", "the SIMD lesson, read from this machine's compiled code"),
    "lesson": ("jitloops.lesson", "the course's lessons, each measured live on this machine (no name: the list)"),
}


def _version():
    try:
        from importlib.metadata import version
        return version("jitloops")
    except Exception:  # running from a source tree that is not installed
        return "unknown"


class _VersionAction(argparse.Action):
    """--version: the package's version, Numba's, the CPU Numba compiles for
    and its threading layer (worked out only when asked: it starts Numba's pool)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0,
                         help=help or "show the version, the compile target and the threading layer, then exit")

    def __call__(self, parser, namespace, values, option_string=None):
        import numba

        from kernels import target, threads
        print(f"jitloops {_version()}\nnumba {numba.__version__}: compiles for {target.describe()}\n"
              f"threading layer: {threads.describe()}")
        parser.exit()


def build_parser():
    parser = argparse.ArgumentParser(
        prog="jitloops",
        description="Neural-network math as explicit loops, vectorized NumPy, and the "
                    "same loops JIT-compiled by Numba: race the backends.",
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # not written yet
                continue
            raise
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv=None):
    command = "jitloops"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if getattr(args, "_run", None) is None:
            parser.print_help()
            return 0
        command = f"jitloops {args.command}"
        status = args._run(args) or 0
        sys.stdout.flush()  # here, where a closed pipe is caught, not at exit
        return status
    except KeyboardInterrupt:  # Ctrl-C: a user's choice, not a crash (130 = 128 + SIGINT, the shells' code)
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`jitloops compare | head -1`): stop quietly
        _stdout_to_devnull()
        return 141  # 128 + SIGPIPE: what a shell reports for a writer its pipe stopped


def say_first(text):
    """Print ``text`` (the lines before a long run) in one write: a reader
    that takes a line and goes (`| head -1`) then has it all before it goes,
    and the run's files get written before the next print meets the closed
    pipe (print's text and newline are two writes where stdout is unbuffered)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _stdout_to_devnull():
    """The Python docs' "Note on SIGPIPE": point stdout at devnull, so that
    the interpreter's last flush of what is still buffered fails no more."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (captured, replaced): nothing to flush
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
