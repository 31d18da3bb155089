"""The ``jitloops`` command line.

Subcommands live in their own modules, each with ``add_arguments(parser)`` and
``run(args) -> int``; a module that is not there yet is simply not listed.
"""

import argparse
import importlib
import sys

# name -> (module, one-line help)
SUBCOMMANDS = {
    "compare": ("model.compare", "train the course's planar network on every backend and compare them (the main job)"),
    "train": ("model.train_cli", "train a network on a built-in dataset and report cost and accuracy"),
    "bench": ("model.bench", "benchmark ops and training steps across backends"),
    "simd": ("kernels.simd", "the SIMD lesson, read from this machine's compiled code"),
}


def _version():
    try:
        from importlib.metadata import version
        return version("jitloops")
    except Exception:  # running from a source tree that is not installed
        return "unknown"


def build_parser():
    parser = argparse.ArgumentParser(
        prog="jitloops",
        description="Neural-network math as explicit loops, vectorized NumPy, and the "
                    "same loops JIT-compiled by Numba: race the backends.",
    )
    parser.add_argument("--version", action="version", version=f"jitloops {_version()}")
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
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 0
    return args._run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
