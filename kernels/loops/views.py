"""Views the loops walk: ``flat``, the 1-D view of a C-contiguous array that
the elementwise loops walk; ``borrowed`` views and lists of them, which
count no references (see borrowed)."""

from numba import types
from numba.core.errors import TypingError
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, overload
from numba.np.arrayobj import make_array, populate_array
from numba.typed import List

from ..options import HELPER_OPTIONS


def flat(x):
    """``x`` (C-contiguous, any shape) as a 1-D view of its ``x.size`` cells,
    for the elementwise loops. Interpreted: ``x.reshape(x.size)``."""
    return x.reshape(x.size)


@intrinsic
def _flat_view(typingctx, x):
    """The 1-D view of a C-contiguous array, built directly: same data,
    meminfo and parent, shape (size,), stride itemsize. Numba's own reshape
    calls a C helper to work out strides for any layout, a cost the small
    networks' elementwise loops would pay many times an iteration."""
    if not (isinstance(x, types.Array) and x.layout == "C"):
        return None
    retty = x.copy(ndim=1, layout="C")

    def codegen(context, builder, signature, args):
        ary = make_array(signature.args[0])(context, builder, args[0])
        out = make_array(retty)(context, builder)
        populate_array(out, data=ary.data, shape=[ary.nitems], strides=[ary.itemsize],
                       itemsize=ary.itemsize, meminfo=ary.meminfo, parent=ary.parent)
        return impl_ret_borrowed(context, builder, retty, out._getvalue())

    return retty(x), codegen


@overload(flat, jit_options=HELPER_OPTIONS)
def _flat_compiled(x):
    if isinstance(x, types.Array) and x.layout == "C":
        return lambda x: _flat_view(x)
    raise TypingError(f"flat() takes a C-contiguous array, got {x}: pass the kernels "
                      f"np.ascontiguousarray(...) (kernels.backend's ops do)")



def borrowed(x):
    """``x`` itself, as a view that owns no reference (compiled: no meminfo).
    Interpreted: ``x``.

    Why: every view Numba makes of an array (a row, a slice, ``flat``)
    counts a reference on the array's meminfo with an atomic add, and drops
    it again; the products make such views in their inner loops (a row of
    A per micro-kernel call, a panel per pack). Two threads working on the
    same arrays (model.team's members) then take turns at one cache line,
    an atomic each, for every view. Views of a borrowed array own nothing
    (Numba's NRT_incref skips a null meminfo), so the caller must keep ``x``
    alive while they are used: true within a kernel's call, whose argument
    it is."""
    return x


@intrinsic
def _borrowed_view(typingctx, x):
    if not isinstance(x, types.Array):
        return None

    def codegen(context, builder, signature, args):
        ary = make_array(x)(context, builder, args[0])
        out = make_array(x)(context, builder)
        populate_array(out, data=ary.data, shape=ary.shape, strides=ary.strides, itemsize=ary.itemsize,
                       meminfo=None, parent=ary.parent)
        return out._getvalue()

    return x(x), codegen


@overload(borrowed, jit_options=HELPER_OPTIONS)
def _borrowed_compiled(x):
    if isinstance(x, types.Array):
        return lambda x: _borrowed_view(x)
    raise TypingError(f"borrowed() takes an array, got {x}")


def borrowed_list(items):
    """A list of borrowed views of the arrays in ``items`` (a typed list),
    the caller's own: what the training loops work from. Taking an item of
    a typed list counts a reference on its array (an atomic add, and one
    to drop it), a cost of every item a step takes and, where two threads
    take the same arrays (model.team), a cache line they wait on each other
    for; items of this list count nothing. The arrays must outlive it: they
    are the caller's arguments. Interpreted: ``items``."""
    return items


def borrowed_lists(lists):
    """borrowed_list of each list in ``lists``. Interpreted: ``lists``."""
    return lists


@overload(borrowed_list, jit_options=HELPER_OPTIONS)
def _borrowed_list_compiled(items):
    def impl(items):
        out = List()
        for i in range(len(items)):
            out.append(borrowed(items[i]))
        return out
    return impl


@overload(borrowed_lists, jit_options=HELPER_OPTIONS)
def _borrowed_lists_compiled(lists):
    def impl(lists):
        out = List()
        for i in range(len(lists)):
            out.append(borrowed_list(lists[i]))
        return out
    return impl
