"""``jitloops train``: train a network on a built-in dataset and report cost and accuracy."""

import sys
import time

import numpy as np

import kernels
from model import INITIALIZATIONS, DivergenceError, NeuralNetwork, datasets

from . import options
from .cli import say_first

DATASETS = {"planar": datasets.planar, "circles": datasets.circles, "moons": datasets.moons}


def _hidden(text):
    try:
        parts = text.split(",")
        if any(not s.strip() for s in parts):  # "4,,3", "4,": a size left out
            raise ValueError
        sizes = [int(s) for s in parts]
    except ValueError:
        raise ValueError(f"--hidden must be comma-separated ints, e.g. 4 or 20,7,5; got {text!r}") from None
    if any(n < 1 for n in sizes):
        raise ValueError(f"--hidden sizes must be positive, got {text!r}")
    return sizes


def add_arguments(parser):
    parser.add_argument("--dataset", choices=tuple(DATASETS), default="planar", help="(default planar)")
    parser.add_argument("--m", type=int, default=400, help="examples (default 400)")
    parser.add_argument("--hidden", default="4", help="hidden layer sizes, comma-separated (default 4)")
    parser.add_argument("--activation", choices=kernels.ACTIVATIONS, default="tanh",
                        help="hidden layers' activation (default tanh)")
    parser.add_argument("--init", choices=INITIALIZATIONS, default=None, help="default: chosen per activation")
    parser.add_argument("--backend", choices=kernels.BACKENDS, default="numba", help="(default numba)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="(default float64)")
    parser.add_argument("--iterations", "--epochs", dest="iterations", type=int, default=10_000,
                        help="epochs (iterations of full-batch gradient descent; default 10000)")
    parser.add_argument("--learning-rate", type=float, default=1.2, help="(default 1.2)")
    parser.add_argument("--cost-every", type=int, default=1000, help="print the cost every N epochs")
    parser.add_argument("--seed", type=int, default=2, help="seed of the initialization and the shuffling")
    parser.add_argument("--init-scale", type=float, default=None,
                        help="'random' init's standard deviation (default 0.01; the course's large random: 10); "
                             "'he' and 'xavier': a factor on theirs (default 1)")
    parser.add_argument("--batch-size", type=int, default=None, help="mini-batch size (default: all m)")
    parser.add_argument("--no-shuffle", action="store_true", help="mini-batches in the data's order")
    parser.add_argument("--optimizer", choices=("gd", "momentum", "rmsprop", "adam"), default="gd")
    parser.add_argument("--decay-rate", type=float, default=0.0,
                        help="learning_rate / (1 + decay_rate * floor(epoch / decay_every))")
    parser.add_argument("--decay-every", type=int, default=1)
    parser.add_argument("--l2", type=float, default=0.0, help="L2 regularization (the course's lambda)")
    parser.add_argument("--keep-prob", type=float, default=1.0,
                        help="dropout: keep each hidden unit with this probability (default 1: none)")
    parser.add_argument("--save", metavar="PATH", help="save the trained network to this .npz file")
    parser.add_argument("--no-progress", action="store_true")


def run(args):
    try:
        hidden = _hidden(args.hidden)
        if args.save is not None:  # before training, not after it
            options.output_path(args.save, "--save")
        if args.init == "zeros" and args.init_scale is not None:
            raise ValueError(f"--init-scale {args.init_scale:g} means nothing for --init zeros (every weight "
                             f"starts at 0); leave out one of them")
        X, Y = DATASETS[args.dataset](m=args.m)
        net = NeuralNetwork([X.shape[0], *hidden, 1], activations=args.activation, backend=args.backend,
                            init=args.init, seed=args.seed, dtype=args.dtype, init_scale=args.init_scale)
    except (ValueError, TypeError, kernels.BackendUnavailableError) as exc:
        print(f"jitloops train: {exc}", file=sys.stderr)
        return 2
    except MemoryError:
        return _too_big(args)
    say_first(f"{net} on {args.dataset} (m = {X.shape[1]})")
    t0 = time.perf_counter()
    try:
        net.fit(X, Y, args.iterations, args.learning_rate, cost_every=args.cost_every,
                progress=not args.no_progress, batch_size=args.batch_size, shuffle=not args.no_shuffle,
                seed=max(args.seed, 0), optimizer=args.optimizer, decay_rate=args.decay_rate,
                decay_every=args.decay_every, l2=args.l2, keep_prob=args.keep_prob)
        status = 0
    except KeyboardInterrupt:  # fit stopped between two epochs and recorded them: keep what was learned
        return _interrupted(net, args)
    except DivergenceError as exc:
        print(f"jitloops train: {exc}", file=sys.stderr)
        status = 1
    except (ValueError, TypeError) as exc:
        print(f"jitloops train: {exc}", file=sys.stderr)
        return 2
    except MemoryError as exc:  # the activations of all m examples at once, or the cost records
        return _too_big(args, exc)
    seconds = time.perf_counter() - t0
    # saved first: a Ctrl-C during the final cost, or a reader that stops early (`| head`), must not cost the file
    save_error = None
    if args.save is not None:
        try:
            net.save(args.save)
        except OSError as exc:  # the folder went away or filled up during training
            save_error = exc
    unit = "iteration" if args.batch_size is None else "epoch"
    lines = [f"cost after {unit} {i}: {c:.6f}" for i, c in zip(net.cost_iterations_, net.costs_)]
    done = f"{net.n_iter_} {unit}s in {seconds:.2f} s (compilation included)"
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # a diverged network's huge weights overflow
            cost, accuracy = net.cost(X, Y), net.accuracy(X, Y)
        lines.append(f"{done}; final cost {cost:.6f}, training accuracy {100 * accuracy:.2f}%")
    except ValueError as exc:  # the forward pass overflowed: no cost to report
        lines.append(f"{done}; no final cost: {exc}")
        status = status or 1
    if save_error is not None:
        print("\n".join(lines))
        print(f"jitloops train: could not save to {args.save!r}: {save_error}", file=sys.stderr)
        return 1
    if args.save is not None:
        lines.append(f"saved to {args.save}")
    print("\n".join(lines))
    return status


def _too_big(args, exc=None):
    if type(exc) is MemoryError and exc.args:  # fit's own (its cost records, not NumPy's arrays)
        print(f"jitloops train: --iterations {args.iterations} with --cost-every {args.cost_every} records "
              f"more costs than memory holds; use a larger --cost-every or fewer --iterations", file=sys.stderr)
        return 2
    print(f"jitloops train: not enough memory for {args.m:,} examples (--m) through hidden layers of "
          f"{args.hidden} units (--hidden) in {args.dtype}; use a smaller --m or --hidden", file=sys.stderr)
    return 2


def _interrupted(net, args):
    """A Ctrl-C during fit: how far it got and, with --save, the network as it stands. Exit 130."""
    unit = "iterations" if args.batch_size is None else "epochs"
    done = f"jitloops train: interrupted after {net.n_iter_} {unit}"
    if args.save is None:
        print(f"{done}; nothing saved (no --save)", file=sys.stderr)
        return 130
    try:
        net.save(args.save)
    except OSError as exc:
        print(f"{done}; could not save to {args.save!r}: {exc}", file=sys.stderr)
        return 130
    print(f"{done}; saved the network as it stands to {args.save}", file=sys.stderr)
    return 130
