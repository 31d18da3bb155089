"""One source, three speeds: "python", "numba" and "parallel" run the very same
code objects, and "parallel" really is parallel, also when it comes out of
Numba's on-disk cache (where a shared cache entry would silently serve the
serial compilation to both)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numba
import numpy as np
import pytest

import kernels
from kernels import cpu, loops
from kernels.external import External
from kernels.loops.plans import PRODUCT_KERNELS

ROOT = Path(__file__).resolve().parents[1]

# Kernels with a prange of their own (kernels.cpu compiles the others serially).
PARALLEL_LEAVES = [n for n in cpu.KERNEL_NAMES if n not in cpu.SERIAL_KERNELS]


def test_python_backend_is_the_loop_module():
    assert kernels.get_backend("python").kernels is loops


@pytest.mark.parametrize("variant", ["numba", "parallel"])
@pytest.mark.parametrize("name", cpu.KERNEL_NAMES)
def test_compiled_kernels_run_the_same_code_objects(variant, name):
    dispatcher = getattr(kernels.get_backend(variant).kernels, name)
    # A fresh function object (own name, own cache entry) over the very same code.
    assert dispatcher.py_func.__code__ is getattr(loops, name).__code__
    suffix = cpu.VARIANTS[variant][0]  # "__numba", "__parallel<the pool's threads>"
    assert suffix == ("__numba" if variant == "numba" else f"__parallel{numba.config.NUMBA_NUM_THREADS}")
    assert dispatcher.py_func.__qualname__ == f"{name}{suffix}_{cpu.SOURCE_DIGEST}"
    assert dispatcher.targetoptions.get("parallel", False) == (variant == "parallel" and name in PARALLEL_LEAVES)


@pytest.mark.parametrize("variant", ["numba", "parallel"])
def test_each_variant_calls_its_own_variants_callees(variant):
    """A compiled kernel that calls another kernel (linear_backward calls
    weight_gradients) resolves it to the dispatcher of its own variant, never
    to the other variant's or to the interpreted function."""
    own = kernels.get_backend(variant).kernels
    other = kernels.get_backend("parallel" if variant == "numba" else "numba").kernels
    checked = 0
    for name in cpu.KERNEL_NAMES:
        namespace = getattr(own, name).py_func.__globals__
        for callee in cpu.KERNEL_NAMES:
            if callee in getattr(loops, name).__code__.co_names:
                # a product is called through its address (kernels.external)
                called = namespace[callee]
                assert isinstance(called, External) == (callee in PRODUCT_KERNELS)
                called = getattr(called, "dispatcher", called)
                assert called is getattr(own, callee), f"{variant} {name} -> {callee}"
                assert called is not getattr(other, callee)
                checked += 1
    assert checked >= 4  # the composites call at least four kernels between them


@pytest.mark.parametrize("variant", ["numba", "parallel"])
def test_the_products_tiles_are_compiled_once_for_every_variant(variant):
    """The blocked and packed tiles (and the fused first layer's, and the
    optimizers' block) are the serial tile kernels of kernels.cpu.tile_kernels,
    called through their addresses by both variants' products,
    first_layer_step and optimizer_step (so neither compiles them again, and
    fresh and cached callers run the same code)."""
    own = kernels.get_backend(variant).kernels
    for module, names in loops.TILE_KERNELS.items():
        for name in names:
            callers = [k for k in tuple(PRODUCT_KERNELS) + ("first_layer_step", "optimizer_step")
                       if k in vars(module) and name in vars(module)[k].__code__.co_names]
            assert callers, name
            for kernel in callers:
                called = getattr(own, kernel).py_func.__globals__[name]
                assert isinstance(called, External) and called.dispatcher is getattr(cpu.tile_kernels, name)
                assert not called.dispatcher.targetoptions.get("parallel", False)


PROBE = textwrap.dedent("""
    import json, sys
    import numpy as np
    from kernels import cpu
    rng = np.random.default_rng(0)
    f = np.float64
    A_prev, W, b = rng.random((3, 40)), rng.random((4, 3)), rng.random((4, 1))
    Z, A, dZ = np.empty((4, 40)), np.empty((4, 40)), np.empty((4, 40))
    dA_prev, dW, db = np.empty((3, 40)), np.empty((4, 3)), np.empty((4, 1))
    AL, Y, dAL = np.full((1, 40), 0.5), np.ones((1, 40)), np.empty((1, 40))
    calls = {
        "linear_forward": (Z, A_prev, W, b),
        "linear_activation_forward": (Z, A, A_prev, W, b, 1),
        "activation_forward": (A, Z, 1),
        "activation_backward": (dZ, A, Z, 1),
        "weight_gradients": (dW, db, dZ, A_prev),
        "input_gradient": (dA_prev, dZ, W),
        "cross_entropy": (AL, Y, 1e-16),
        "cross_entropy_backward": (dAL, AL, Y, 1e-16),
        "gradient_step": (W, W, dW, 0.1),
        "dot": (A_prev[0], A_prev[1]),
    }
    report = {}
    # Serial first: with a shared cache entry it would then serve "parallel" too.
    for variant in ("numba_kernels", "parallel_kernels"):
        ns = getattr(cpu, variant)
        for name, args in calls.items():
            d = getattr(ns, name)
            d(*args)
            (sig, cres), = d.overloads.items()
            report[variant + "." + name] = {
                "cache_hits": sum(d.stats.cache_hits.values()),
                "parfors": bool((cres.metadata or {}).get("parfors")),
                "index": str(d._cache._cache_file._index_path),
            }
    print(json.dumps(report))
""")


def _probe(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir), PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_parallel_variant_is_parallel_fresh_and_from_cache(tmp_path):
    # the public ops' kernels: a cold compile of each in a fresh process (the
    # training loop's own kernels share the mechanism; their options are
    # checked in-process above)
    leaves = [n for n in PARALLEL_LEAVES if n in loops.PUBLIC_KERNELS]
    # 1. A cold cache: compiled now, serial before parallel.
    cold = _probe(tmp_path)
    for name in leaves:
        ser, par = cold[f"numba_kernels.{name}"], cold[f"parallel_kernels.{name}"]
        assert par["cache_hits"] == 0
        assert par["parfors"], f"parallel {name}: Numba found no parallel loop"
        assert not ser["parfors"], f"serial {name} has parfors"
        assert ser["index"] != par["index"], f"{name}: both variants share one cache entry"
    # 2. A warm cache: both load from disk; the parallel entry must hold the
    # parallel code (its object code calls the parfor gufuncs; serial does not).
    warm = _probe(tmp_path)
    for name in leaves:
        ser, par = warm[f"numba_kernels.{name}"], warm[f"parallel_kernels.{name}"]
        assert ser["cache_hits"] == 1 and par["cache_hits"] == 1
        par_code = b"".join(p.read_bytes() for p in Path(par["index"]).parent.glob(Path(par["index"]).stem + ".*.nbc"))
        ser_code = b"".join(p.read_bytes() for p in Path(ser["index"]).parent.glob(Path(ser["index"]).stem + ".*.nbc"))
        assert b"parfor" in par_code, f"cached parallel {name} holds serial code"
        assert b"parfor" not in ser_code


def test_exact_math_defaults():
    """Interpreted, the vectorizable approximations only cost time (their
    polynomial runs slower in the interpreter than the C library's call), so
    "python" defaults to exact math and the compiled backends to the
    approximations; both are selectable. The model carries the choice (the
    backend's act_bits) into its raw kernel calls, compiled or not."""
    from model import NeuralNetwork
    assert kernels.get_backend("python").exact_math
    assert not kernels.get_backend("numba").exact_math
    assert not kernels.get_backend("parallel").exact_math
    assert not kernels.get_backend("python", exact_math=False).exact_math
    assert kernels.get_backend("numba", exact_math=True).exact_math
    assert kernels.get_backend("numpy").act_bits == 0 and kernels.get_backend("numba").act_bits == 0
    assert kernels.get_backend("python").act_bits == loops.EXACT
    assert NeuralNetwork([2, 3, 1], activations="tanh", backend="python")._codes() == [
        loops.TANH | loops.EXACT, loops.SIGMOID | loops.EXACT]
    assert NeuralNetwork([2, 3, 1], activations="tanh", backend="numpy")._codes() == [loops.TANH, loops.SIGMOID]


def test_flat_is_a_view_of_every_cell():
    """loops.flat, compiled: a C-contiguous array's 1-D view built without
    Numba's reshape (same memory, writes land in the original, the array
    kept alive by the view alone); any other layout is refused at compile
    time with a message."""
    import numba

    @numba.njit
    def fill_flat(x):
        v = loops.flat(x)
        for j in range(v.shape[0]):
            v[j] = j
        return v.shape[0], v.strides[0]

    for dtype in (np.float32, np.float64):
        x = np.zeros((3, 5), dtype)
        assert fill_flat(x) == (15, x.itemsize)
        np.testing.assert_array_equal(x, np.arange(15, dtype=dtype).reshape(3, 5))
    x = np.zeros((4, 1, 2))
    fill_flat(x)
    np.testing.assert_array_equal(x.ravel(), np.arange(8))

    @numba.njit
    def flat_of_new():
        v = loops.flat(np.ones((2, 3)))  # the only reference left is the view's
        return v.sum(), v.shape[0]

    assert flat_of_new() == (6.0, 6)

    @numba.njit
    def flat_of_slice(x):
        return loops.flat(x[:, ::2]).shape[0]

    with pytest.raises(numba.core.errors.TypingError, match="takes a C-contiguous array"):
        flat_of_slice(np.zeros((3, 4)))
