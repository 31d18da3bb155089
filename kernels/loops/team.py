"""A team of threads working through phases of items, without barriers that
can hang: the synchronisation of the parallel backend's mini-batch epochs
(``model.team``).

Each phase of a team's work is a numbered run of items. Every member runs
the same sequence of phases; in each, it *claims* items (a compare-and-swap
on a shared counter) until none are left, does each one it claims, counts it
*finished* (an atomic add), then waits until every item of the phase is
finished before the next phase reads what they wrote.

A member waits only for items another member has claimed, so it is running
them: a team whose members run one after another (a threading layer that
gives the parallel loop fewer threads than members, a busy machine) still
finishes, the first member doing every item and the later ones finding each
phase done. A barrier that counted members would hang there. Which member does
an item never changes what the item writes, so the results are the same
however many threads run.

``sync`` (SYNC_SIZE,) int64 holds the counters; phases are numbered by their
``end`` (the running total of items), which every member computes alike.
An item may stop the team (``halt``): it records why and at which phase;
every member, after that phase, sees it (``halted``) and leaves the loop, and
a member running late sees only the phase the stop belongs to.

The atomics are LLVM's (``atomicrmw``, ``cmpxchg``, ``load atomic``) through
Numba intrinsics: compiled code only.
"""

import platform

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, register_jitable

from ..options import HELPER_OPTIONS

# sync's cells
CLAIMED = 0   # items claimed so far (all phases)
FINISHED = 1  # items finished so far
STOP = 2      # the end of the phase an item halted in; -1 while none did
WHY = 3       # the halting item's record: 4 cells from here (see halt)
SYNC_SIZE = 8

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


def _cell(context, builder, signature, args):
    """A pointer to args[0][args[1]] (a 1-D int64 array and an index)."""
    aryty = signature.args[0]
    ary = context.make_array(aryty)(context, builder, args[0])
    index = context.cast(builder, args[1], signature.args[1], types.intp)
    return cgutils.get_item_pointer(context, builder, aryty, ary, [index], wraparound=False)


def _int64_cells(ary):
    return isinstance(ary, types.Array) and ary.ndim == 1 and ary.dtype == types.int64


@intrinsic
def atomic_add(typingctx, ary, i, value):
    """ary[i] += value atomically (sequentially consistent); returns the old value."""
    if not _int64_cells(ary):
        return None

    def codegen(context, builder, signature, args):
        value = context.cast(builder, args[2], signature.args[2], types.int64)
        return builder.atomic_rmw("add", _cell(context, builder, signature, args), value, "seq_cst")
    return types.int64(ary, i, value), codegen


@intrinsic
def atomic_load(typingctx, ary, i):
    """ary[i], read atomically with acquire order: what was written before
    the write it reads is visible after it."""
    if not _int64_cells(ary):
        return None

    def codegen(context, builder, signature, args):
        return builder.load_atomic(_cell(context, builder, signature, args), "acquire", 8)
    return types.int64(ary, i), codegen


@intrinsic
def compare_and_swap(typingctx, ary, i, expected, new):
    """If ary[i] == expected, ary[i] = new, atomically; returns the old ary[i]."""
    if not _int64_cells(ary):
        return None

    def codegen(context, builder, signature, args):
        old = context.cast(builder, args[2], signature.args[2], types.int64)
        new = context.cast(builder, args[3], signature.args[3], types.int64)
        pair = builder.cmpxchg(_cell(context, builder, signature, args), old, new, "seq_cst", "seq_cst")
        return builder.extract_value(pair, 0)
    return types.int64(ary, i, expected, new), codegen


@intrinsic
def spin_pause(typingctx):
    """The CPU's spin-wait hint (x86 ``pause``: a waiting core yields its
    pipeline to its sibling thread); nothing elsewhere."""
    def codegen(context, builder, signature, args):
        if _X86:
            fnty = cgutils.ir.FunctionType(cgutils.ir.VoidType(), [])
            builder.call(cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse2.pause"), [])
        return context.get_dummy_value()
    return types.none(), codegen


@register_jitable(**HELPER_OPTIONS)
def claim(sync, base, end):
    """The next unclaimed item of the phase whose items are numbered
    base, ..., end - 1, counted from 0; -1 once all are claimed."""
    while True:
        c = atomic_load(sync, CLAIMED)
        if c >= end:
            return -1
        if compare_and_swap(sync, CLAIMED, c, c + 1) == c:
            return c - base


@register_jitable(**HELPER_OPTIONS)
def finish(sync):
    """Count one claimed item done (after everything it writes)."""
    atomic_add(sync, FINISHED, 1)


@register_jitable(**HELPER_OPTIONS)
def wait(sync, end):
    """Until every item up to the phase ending at ``end`` is finished."""
    while atomic_load(sync, FINISHED) < end:
        spin_pause()


@register_jitable(**HELPER_OPTIONS)
def halt(sync, end, status, done, steps, traded):
    """An item of the phase ending at ``end`` stops the team: status, epochs
    done, optimizer steps and whether the parameter lists are traded, for
    the caller (see halted). Call before finish(sync)."""
    sync[WHY] = status
    sync[WHY + 1] = done
    sync[WHY + 2] = steps
    sync[WHY + 3] = traded
    sync[STOP] = end


@register_jitable(**HELPER_OPTIONS)
def halted(sync, end):
    """Whether an item of the phase ending at ``end`` halted the team (call after wait)."""
    return atomic_load(sync, STOP) == end


@register_jitable(**HELPER_OPTIONS)
def meet(sync, end):
    """The end of a member's phase: wait for its items, then whether one halted the team."""
    wait(sync, end)
    return halted(sync, end)


@register_jitable(**HELPER_OPTIONS)
def reset(sync):
    """Ready for a new run of phases."""
    sync[CLAIMED] = 0
    sync[FINISHED] = 0
    sync[STOP] = -1
