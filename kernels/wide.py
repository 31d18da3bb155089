"""prefer_wide_vectors(): a call that asks LLVM for the CPU's widest vectors
in the compiled function that contains it.

Why: LLVM tunes recent Intel cores (Skylake-SP onwards) with "prefer-256-bit":
its loop vectorizer then uses 256-bit ymm registers even where AVX-512 offers
512-bit zmm ones, to avoid the clock penalty that wide vectors once cost. For
the register-blocked product kernels, whose working set sits in L1, zmm does
twice the work per instruction. Numba exposes no per-function switch, and
setting NUMBA_CPU_FEATURES would change every function in the process, so this
call puts LLVM's own per-function attribute "prefer-vector-width"="512" on the
function being compiled (LLVM's X86 back end honours it per function).

Where it pays (measured on the 2-core AVX-512 development machine, one
process timing both builds in turns): the MNIST-like training step on
"parallel" 6-16% faster than with LLVM's default 256 bits, float64 and
float32. The elementwise kernels showed no difference and keep LLVM's
default. On a CPU without AVX-512 the attribute changes nothing (256 bits is
the widest there).

Interpreted (the "python" backend) it does nothing.
"""

from numba.core import types
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
