"""Views the loops walk: ``flat``, the 1-D view of a C-contiguous array that
the elementwise loops walk; ``borrowed`` views and lists of them, which
count no references (see borrowed)."""

import operator

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, models, overload, register_model
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
    """A list of borrowed views of the arrays in ``items`` (a typed list of
    C-contiguous arrays), the caller's own: what the training loops work
    from. Interpreted: ``items``.

    Why: taking an item of a ``numba.typed.List`` is a call into Numba's
    list code (not inlined) that counts a reference on the item's array (an
    atomic add, and one to drop it): a cost of every item a step takes (a
    planar iteration takes about forty) and, where two threads take the same
    arrays (model.team), a cache line they wait on each other for. This
    list is a table of the arrays' addresses and shapes: an item taken is a
    few loads, inlined, and a view with no meminfo (see ``borrowed``). It
    supports ``len``, ``lst[i]`` and ``lst[i] = x`` (negative i counts from
    the end; out of range raises IndexError; x a C-contiguous array of the
    items' type, whose address and shape the table then holds), nothing
    else. The arrays must outlive it: they are the caller's arguments (or
    views of them). It is the caller's own: setting an item changes neither
    ``items`` nor another borrowed list of them. A list of arrays that are
    not C-contiguous gets a typed list of borrowed views instead.
    Interpreted: a list of ``items``' arrays (a copy, so setting an item
    leaves ``items`` as it was)."""
    return list(items)


def borrowed_lists(lists):
    """A typed list of lists of borrowed views, one for each list in
    ``lists`` (a typed list of typed lists of arrays). Interpreted: ``lists``."""
    return lists


class BorrowedListType(types.Type):
    """Numba's type of borrowed_list's result: read-only, items of ``array_type``."""

    def __init__(self, array_type):
        self.array_type = array_type
        super().__init__(name=f"BorrowedList({array_type})")


@register_model(BorrowedListType)
class _BorrowedListModel(models.StructModel):
    # table: per item its data pointer, its parent object and its shape
    # (intp each; 2 + ndim a row), in memory the meminfo owns (an array's).
    def __init__(self, dmm, fe_type):
        members = [("meminfo", types.MemInfoPointer(types.voidptr)), ("table", types.CPointer(types.intp)),
                   ("size", types.intp)]
        super().__init__(dmm, fe_type, members)


def _row(builder, table, i, ndim):
    """Pointer to the table's row i (2 + ndim intp)."""
    return builder.gep(table, [builder.mul(i, ir.Constant(i.type, 2 + ndim))])


def _store_row(context, builder, row, ary, ndim):
    """A table row = (ary's data address, its parent, its shape)."""
    intp = context.get_value_type(types.intp)
    builder.store(builder.ptrtoint(ary.data, intp), row)
    builder.store(builder.ptrtoint(ary.parent, intp), builder.gep(row, [context.get_constant(types.intp, 1)]))
    shape = cgutils.unpack_tuple(builder, ary.shape, ndim)
    for d in range(ndim):
        builder.store(shape[d], builder.gep(row, [context.get_constant(types.intp, 2 + d)]))


@intrinsic
def _put_item(typingctx, table, i, x):
    """table[i] = (x's data address, its parent, its shape)."""
    def codegen(context, builder, signature, args):
        tbl = make_array(signature.args[0])(context, builder, args[0])
        _store_row(context, builder, _row(builder, tbl.data, args[1], x.ndim),
                   make_array(x)(context, builder, args[2]), x.ndim)
        return context.get_dummy_value()

    return types.none(table, i, x), codegen


@intrinsic
def _set_borrowed_item(typingctx, lst, i, x):
    """Item i (0 <= i < len, unchecked) of the list becomes a view of x."""
    def codegen(context, builder, signature, args):
        st = cgutils.create_struct_proxy(lst)(context, builder, value=args[0])
        _store_row(context, builder, _row(builder, st.table, args[1], x.ndim),
                   make_array(x)(context, builder, args[2]), x.ndim)
        return context.get_dummy_value()

    return types.none(lst, i, x), codegen


@intrinsic
def _new_borrowed_list(typingctx, table, items):
    """The BorrowedListType over ``table`` (filled by _put_item), holding a reference to it."""
    retty = BorrowedListType(items.item_type)

    def codegen(context, builder, signature, args):
        tbl = make_array(signature.args[0])(context, builder, args[0])
        out = cgutils.create_struct_proxy(retty)(context, builder)
        out.meminfo = tbl.meminfo
        out.table = tbl.data
        out.size = cgutils.unpack_tuple(builder, tbl.shape, 2)[0]
        context.nrt.incref(builder, signature.args[0], args[0])  # the list owns the table too
        return out._getvalue()

    return retty(table, items), codegen


@intrinsic
def _borrowed_size(typingctx, lst):
    def codegen(context, builder, signature, args):
        return cgutils.create_struct_proxy(lst)(context, builder, value=args[0]).size

    return types.intp(lst), codegen


@intrinsic
def _borrowed_item(typingctx, lst, i):
    """Item i (0 <= i < len, unchecked) as a view with no meminfo."""
    aty = lst.array_type

    def codegen(context, builder, signature, args):
        st = cgutils.create_struct_proxy(lst)(context, builder, value=args[0])
        row = _row(builder, st.table, args[1], aty.ndim)
        load = lambda k: builder.load(builder.gep(row, [context.get_constant(types.intp, k)]))  # noqa: E731
        out = make_array(aty)(context, builder)
        shape = [load(2 + d) for d in range(aty.ndim)]
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(context.get_data_type(aty.dtype)))
        strides = [itemsize]
        for d in range(aty.ndim - 1, 0, -1):  # C order
            strides.insert(0, builder.mul(strides[0], shape[d]))
        populate_array(out, data=builder.inttoptr(load(0), out.data.type), shape=shape, strides=strides,
                       itemsize=itemsize, meminfo=None, parent=builder.inttoptr(load(1), out.parent.type))
        return out._getvalue()

    return aty(lst, i), codegen


@overload(borrowed_list, jit_options=HELPER_OPTIONS)
def _borrowed_list_compiled(items):
    if not (isinstance(items, types.ListType) and isinstance(items.item_type, types.Array)):
        raise TypingError(f"borrowed_list() takes a typed list of arrays, got {items}")
    if items.item_type.layout != "C":
        return lambda items: _borrowed_typed_list(items)
    ndim = items.item_type.ndim

    def impl(items):
        table = np.empty((len(items), 2 + ndim), dtype=np.intp)
        for i in range(len(items)):
            _put_item(table, i, items[i])
        return _new_borrowed_list(table, items)
    return impl


@overload(len)
def _borrowed_len(lst):
    if isinstance(lst, BorrowedListType):
        return lambda lst: _borrowed_size(lst)


@overload(operator.getitem, jit_options=HELPER_OPTIONS)
def _borrowed_getitem(lst, i):
    if isinstance(lst, BorrowedListType) and isinstance(i, types.Integer):
        def impl(lst, i):
            n = _borrowed_size(lst)
            j = np.intp(i)
            j = j + n if j < 0 else j
            if j < 0 or j >= n:
                raise IndexError("borrowed list index out of range")
            return _borrowed_item(lst, j)
        return impl


@overload(operator.setitem, jit_options=HELPER_OPTIONS)
def _borrowed_setitem(lst, i, x):
    if isinstance(lst, BorrowedListType) and isinstance(i, types.Integer):
        aty = lst.array_type
        if not (isinstance(x, types.Array) and x.layout == "C" and x.ndim == aty.ndim and x.dtype == aty.dtype):
            raise TypingError(f"a borrowed list of {aty} takes C-contiguous arrays of {aty.ndim} dimensions "
                              f"of {aty.dtype}, got {x}")

        def impl(lst, i, x):
            n = _borrowed_size(lst)
            j = np.intp(i)
            j = j + n if j < 0 else j
            if j < 0 or j >= n:
                raise IndexError("borrowed list assignment index out of range")
            _set_borrowed_item(lst, j, x)
        return impl


def _borrowed_typed_list(items):
    """A typed list of borrowed views of ``items``' arrays (any layout)."""
    return items


@overload(_borrowed_typed_list, jit_options=HELPER_OPTIONS)
def _borrowed_typed_list_compiled(items):
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
            out.append(_borrowed_typed_list(lists[i]))
        return out
    return impl
