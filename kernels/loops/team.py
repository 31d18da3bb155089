"""A team of threads working through phases of items, without barriers that
can hang: the synchronisation of the parallel backend's mini-batch epochs
(``model.team``).

Each phase of a team's work is a numbered run of items (at most the team's
number of parts). Every member runs the same sequence of phases; in each,
it *takes* items (a compare-and-swap on the item's slot) until none are
left, does each one it takes, counts it *finished* (an atomic add), then
waits until every item of the phase is finished before the next phase
reads what they wrote: spinning, then yielding its core at each look
(a teammate that a busy machine left without a core runs there; README,
"A team of threads for mini-batch steps").

A member tries its own item first (member j: item j mod the items, then
the ones after it), so while every member runs, item q is done by the same
member phase after phase and the rows it owns (its weights, their moments
and gradients, its activations) stay in that core's caches: an item taken
by the other core every other step would fetch them across the cores.
Any member takes any item left untaken, and a member waits only for items
another member has taken, so it is running them: a team whose members run
one after another (fewer threads than members, a busy machine) still
finishes, the first member doing every item and the later ones finding each
phase done. A barrier that counted members would hang there. Which member
does an item never changes what the item writes, so the results are the
same however many threads run.

``sync`` (SYNC_SIZE + items,) int64 holds the counters and the items'
slots; phases are numbered by their ``end`` (the running total of items),
which every member computes alike, and an item's slot holds the end of the
last phase it was taken in. An item may stop the team (``halt``): it
records why and at which phase; every member, after that phase, sees it
(``halted``) and leaves the loop, and a member running late sees only the
phase the stop belongs to.

The atomics are LLVM's (``atomicrmw``, ``cmpxchg``, ``load atomic``) through
Numba intrinsics: compiled code only.
"""

import os
import platform

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, register_jitable

from ..options import HELPER_OPTIONS

# sync's cells
MEMBERS = 0   # members started so far: each one's number
FINISHED = 1  # items finished so far
STOP = 2      # the end of the phase an item halted in; -1 while none did
WHY = 3       # the halting item's record: 4 cells from here (see halt)
SYNC_SIZE = 8  # then a slot per item: the end of the phase it was last taken in

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
_POSIX = os.name == "posix"
# A member that has waited this many spin_pause()s (tens of microseconds)
# yields its core at each further look (yield_core): a teammate that a busy
# machine left waiting for a core then runs there, rather than the waiter
# spinning out its time slice.
SPINS_BEFORE_YIELD = 2000


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


@intrinsic
def yield_core(typingctx):
    """Give this thread's core to another runnable thread, if any (POSIX
    ``sched_yield``: resolved by name when the code is loaded, so it caches);
    nothing elsewhere."""
    def codegen(context, builder, signature, args):
        if _POSIX:
            fnty = cgutils.ir.FunctionType(cgutils.ir.IntType(32), [])
            builder.call(cgutils.get_or_insert_function(builder.module, fnty, "sched_yield"), [])
        return context.get_dummy_value()
    return types.none(), codegen


@register_jitable(**HELPER_OPTIONS)
def join(sync):
    """A new member's number: 0, 1, ... in the order they start."""
    return atomic_add(sync, MEMBERS, 1)


@register_jitable(**HELPER_OPTIONS)
def take(sync, item, end):
    """Whether this member takes ``item`` (0, 1, ...) of the phase ending at
    ``end``: False if another member took it in this phase."""
    slot = SYNC_SIZE + item
    last = atomic_load(sync, slot)
    while last < end:
        seen = compare_and_swap(sync, slot, last, end)
        if seen == last:
            return True
        last = seen
    return False


@register_jitable(**HELPER_OPTIONS)
def item_to_try(me, j, items):
    """The j-th item member ``me`` tries in a phase of ``items`` items (j = 0,
    1, ..., items - 1): its own (me mod items) first, then the ones after it."""
    return (me + j) % items


@register_jitable(**HELPER_OPTIONS)
def finish(sync):
    """Count one taken item done (after everything it writes)."""
    atomic_add(sync, FINISHED, 1)


@register_jitable(**HELPER_OPTIONS)
def wait(sync, end):
    """Until every item up to the phase ending at ``end`` is finished:
    spinning, then yielding the core (SPINS_BEFORE_YIELD)."""
    spins = 0
    while atomic_load(sync, FINISHED) < end:
        if spins < SPINS_BEFORE_YIELD:
            spin_pause()
            spins += 1
        else:
            yield_core()


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
    sync[MEMBERS] = 0
    sync[FINISHED] = 0
    sync[STOP] = -1
    for i in range(SYNC_SIZE, sync.shape[0]):
        sync[i] = 0
