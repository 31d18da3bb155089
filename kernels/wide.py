"""How the compiled loops steer LLVM's vectorizers, one function at a time.

- ``prefer_wide_vectors()``: a call that asks LLVM for the CPU's widest
  vectors in the compiled function that contains it.
- ``keep_out_of_line()``: a call that keeps LLVM from inlining the compiled
  function that contains it into its callers (the micro-kernels: their
  machine code stays a function of its own, which the tests and the loop
  ladder read, and a call costs nothing beside their thousand cycles).
- ``SLPCompiler``: a compile pipeline with LLVM's SLP vectorizer on (and its
  loop vectorizer off), for the packed products' micro-kernels.

prefer_wide_vectors
-------------------
Why: LLVM tunes recent Intel cores (Skylake-SP onwards) with "prefer-256-bit":
its loop vectorizer then uses 256-bit ymm registers even where AVX-512 offers
512-bit zmm ones, to avoid the clock penalty that wide vectors once cost. For
the register-blocked product kernels, whose working set sits in L1, zmm does
twice the work per instruction. Numba exposes no per-function switch, and
setting NUMBA_CPU_FEATURES would change every function in the process, so this
call puts LLVM's own per-function attribute "prefer-vector-width"="512" on the
function being compiled (LLVM's X86 back end honours it per function).

Where it pays: the products' inner loops, whose working set sits in L1 (the
MNIST-like training step: the README's results). The elementwise kernels
gained nothing and keep LLVM's default. On a CPU without AVX-512 the
attribute changes nothing (256 bits is the widest there).

Interpreted (the "python" backend) it does nothing.
"""

from numba.core import config, types
from numba.core.compiler import Compiler
from numba.extending import lower_builtin, type_callable

ATTRIBUTE = '"prefer-vector-width"="512"'


def prefer_wide_vectors():
    """No-op in Python; compiled, marks the enclosing function for 512-bit vectors."""


@type_callable(prefer_wide_vectors)
def _type_prefer_wide_vectors(context):
    def typer():
        return types.none
    return typer


@lower_builtin(prefer_wide_vectors)
def _lower_prefer_wide_vectors(context, builder, sig, args):
    # llvmlite's FunctionAttributes (a set) accepts only a fixed list of
    # names, and writes its items into the IR as given: a string attribute
    # goes in past that check. Should a later llvmlite store attributes some
    # other way, the hint is left out (the code is as fast as without it);
    # tests/test_wide_vectors.py reads the IR and would say so.
    attributes = builder.function.attributes
    if isinstance(attributes, set):
        set.add(attributes, ATTRIBUTE)
    return context.get_dummy_value()


def keep_out_of_line():
    """No-op in Python; compiled, marks the enclosing function noinline."""


@type_callable(keep_out_of_line)
def _type_keep_out_of_line(context):
    def typer():
        return types.none
    return typer


@lower_builtin(keep_out_of_line)
def _lower_keep_out_of_line(context, builder, sig, args):
    builder.function.attributes.add("noinline")
    return context.get_dummy_value()


class SLPCompiler(Compiler):
    """Numba's compiler, with LLVM's SLP vectorizer on and its loop vectorizer
    off for the function it compiles (``pipeline_class=SLPCompiler``).

    Why: the packed products' micro-kernels (``kernels.loops``) hold a block
    of output cells in named scalars across the reduction loop. Only the SLP
    (straight-line) vectorizer turns those into vector registers, one FMA per
    pair of registers, and Numba runs it only when NUMBA_SLP_VECTORIZE is set
    for the whole process (it is off by default since Numba 0.57, after
    miscompilations in other code: numba#8852). The loop vectorizer, left
    on, vectorizes the float32 kernels' reduction loop instead (over the
    reduction, with ordered sums and shuffles), many times slower.

    Numba reads both switches when it optimizes a function, which happens in
    the compile pipeline (``_compile_core``); the setting is scoped to that
    and restored after, so other functions, callers included, keep Numba's
    defaults. Every function compiled so is tested against NumPy in both
    dtypes (tests/test_blocked_products.py), and its vector FMAs are checked
    in the assembly (tests/test_wide_vectors.py).
    """

    def _compile_core(self):
        saved = config.LOOP_VECTORIZE, config.SLP_VECTORIZE
        config.LOOP_VECTORIZE, config.SLP_VECTORIZE = 0, 1
        try:
            return super()._compile_core()
        finally:
            config.LOOP_VECTORIZE, config.SLP_VECTORIZE = saved
