"""kernels.external: a kernel called through its address from compiled code.

The caller's module must not hold the kernel's code (the point: it is not
compiled again), the call must give what a direct call gives, errors must
propagate, and the caller must stay cacheable: loaded from the cache in a
fresh process (and in a forked one) it finds the kernel afresh.
"""

import ast
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

from kernels import cpu, external
from kernels.external import External


def _kernel(out, x, scale):
    """out = scale x, raising on a negative scale (an error to propagate)."""
    if scale < 0.0:
        raise ValueError("negative scale")
    for i in range(x.shape[0]):
        out[i] = scale * x[i]
    return x.shape[0]


kernel = None  # what _caller calls: bound by cpu.rebind in _compiled


def _caller(out, x, scale, times):
    total = 0
    for _ in range(times):
        total += kernel(out, x, scale)
    return total


def _compiled(suffix, cache=False):
    kernel = numba.njit(cache=cache)(cpu.rebind(_kernel, suffix=suffix))
    ext = external.external(kernel)
    caller = numba.njit(cache=cache)(cpu.rebind(_caller, dict(_caller.__globals__, kernel=ext), suffix))
    return kernel, ext, caller


def test_a_call_through_the_address_gives_the_direct_calls_result():
    kernel, ext, caller = _compiled("__ext_direct")
    x = np.arange(5.0)
    out = np.zeros(5)
    assert caller(out, x, 2.0, 3) == 15
    np.testing.assert_array_equal(out, 2.0 * x)
    # the float32 signature is a kernel overload of its own, found by its own slot
    out32 = np.zeros(5, np.float32)
    assert caller(out32, x.astype(np.float32), np.float32(3.0), 1) == 5
    np.testing.assert_array_equal(out32, 3.0 * x.astype(np.float32))
    assert len(kernel.signatures) == 2
    assert external.external(kernel) is ext  # one stand-in per dispatcher
    np.testing.assert_array_equal(ext(out, x, 4.0), 5)  # from Python: the dispatcher


def test_the_callers_module_holds_a_call_not_the_kernel():
    kernel, _, caller = _compiled("__ext_module")
    caller(np.zeros(3), np.ones(3), 1.0, 1)
    ir = next(iter(caller.inspect_llvm().values()))
    own = next(iter(kernel.overloads.values())).fndesc.mangled_name
    assert external.RESOLVER_SYMBOL in ir
    assert f"define linkonce_odr i32 @\"{own}\"" not in ir and f"define i32 @\"{own}\"" not in ir
    assert own not in ir  # not even declared: reached through the slot's pointer only


def test_an_error_in_the_kernel_propagates_to_the_callers_caller():
    _, _, caller = _compiled("__ext_error")
    with pytest.raises(ValueError, match="negative scale"):
        caller(np.zeros(3), np.ones(3), -1.0, 2)
    assert caller(np.zeros(3), np.ones(3), 1.0, 2) == 6  # and the caller still works


def test_a_kernel_that_cannot_be_found_is_an_error_not_a_crash(monkeypatch, capfd):
    _, ext, caller = _compiled("__ext_missing")
    monkeypatch.delitem(external._registry, ext.name)
    with pytest.raises(RuntimeError, match="could not be compiled or loaded"):
        caller(np.zeros(3), np.ones(3), 1.0, 1)
    assert "LookupError" in capfd.readouterr().err


PROBE = textwrap.dedent("""
    import multiprocessing, sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    import test_external as t
    _, _, caller = t._compiled("__ext_cached", cache=True)
    x = np.arange(4.0)
    out = np.zeros(4)
    n = caller(out, x, 3.0, 2)
    assert n == 8 and np.array_equal(out, 3.0 * x), (n, out)
    hits = sum(caller.stats.cache_hits.values())

    def child(_):
        out = np.zeros(4)
        return caller(out, x, 5.0, 1), out.tolist()

    with multiprocessing.get_context("fork").Pool(2) as pool:
        got = pool.map(child, range(2))
    assert got == [(4, (5.0 * x).tolist())] * 2, got
    print(hits)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX's")
def test_a_cached_caller_finds_its_kernel_in_a_fresh_and_in_a_forked_process(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    here = os.path.dirname(__file__)
    runs = [subprocess.run([sys.executable, "-c", PROBE, here], env=env, capture_output=True, text=True,
                           timeout=300) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
    assert [int(r.stdout.split()[-1]) for r in runs] == [0, 1]  # compiled, then loaded from the cache


def test_externals_are_only_the_products_the_fused_first_layer_and_the_optimizers():
    """What the compiled training programs and composites reach through
    addresses: the three products, first_layer_step and optimizer_step (too
    big for LLVM to inline: a linked copy would run as another compilation
    in a fresh process than in a cached one, README "Fresh and cached code
    alike"); small kernels stay linked, so LLVM can inline them into the
    training loop."""
    from model import program
    called = program._kernels_called("numba", cpu.ALL_PLANS)
    externals = {name for name, k in called.items() if isinstance(k, External)}
    assert externals == {"linear_activation_forward", "weight_gradients", "input_gradient", "first_layer_step",
                         "optimizer_step"}


NO_GIL_PROBE = textwrap.dedent("""
    import numba
    import numpy as np
    from kernels import cpu

    K = cpu.parallel_kernels
    f, g, h = K.linear_activation_forward, K.weight_gradients, K.input_gradient

    @numba.njit  # not nogil: this thread holds the GIL until the kernels' workers start
    def layer(Z, A_prev, W, b, dW, db, dA_prev):
        f(Z, Z, A_prev, W, b, -1)
        g(dW, db, Z, A_prev)
        h(dA_prev, Z, W)

    for n, k, m in SHAPES:
        rng = np.random.default_rng(0)
        W, A_prev, b = rng.random((n, k)), rng.random((k, m)), rng.random((n, 1))
        Z, dW, db, dA_prev = np.empty((n, m)), np.empty((n, k)), np.empty((n, 1)), np.empty((k, m))
        layer(Z, A_prev, W, b, dW, db, dA_prev)
        assert np.allclose(Z, W @ A_prev + b) and np.allclose(dA_prev, W.T @ Z)
        assert np.allclose(dW, Z @ A_prev.T / m)
    print(sorted(str(sig) for d in vars(cpu.tile_kernels).values() for sig in d.signatures))
""")


def test_parallel_kernels_find_their_tiles_on_worker_threads(tmp_path):
    """A parallel product's prange body calls its tile through a slot that
    a worker thread may be the first to fill: the resolver then needs the
    GIL, which Numba's parallel region releases even when the caller was
    not compiled nogil (no hang: this test would time out). And the
    prange's unsigned index goes as int64: each tile is compiled once for
    its serial and parallel callers. Every plan's parallel branch, in a
    fresh process with an empty cache (every slot starts empty)."""
    from kernels.loops.plans import (BLOCKED_DOT, BLOCKED_ROWS, PACKED, forward_plan, input_gradient_plan,
                                     weight_gradients_plan)
    from kernels.options import MICRO_BYTES, PARALLEL_WORK
    shapes = [(64, 64, 4096), (8, 8, 65536), (3, 2000, 512)]
    reached = set()
    for n, k, m in shapes:
        assert n * k * m >= PARALLEL_WORK
        reached |= {("forward", forward_plan(n, k, m, MICRO_BYTES // 8)[0]),
                    ("dW", weight_gradients_plan(n, k, m)), ("dA", input_gradient_plan(n, k, m))}
    assert reached == {("forward", PACKED), ("forward", BLOCKED_ROWS), ("forward", BLOCKED_DOT), ("dW", PACKED),
                       ("dW", BLOCKED_DOT), ("dA", PACKED), ("dA", BLOCKED_ROWS)}
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), NUMBA_NUM_THREADS="2")
    run = subprocess.run([sys.executable, "-c", f"SHAPES = {shapes!r}\n" + NO_GIL_PROBE], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    signatures = ast.literal_eval(run.stdout.strip().splitlines()[-1])
    assert len(signatures) == 7 and not any("uint" in s for s in signatures), signatures
