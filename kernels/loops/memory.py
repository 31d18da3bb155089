"""Hints to the memory system: prefetches and streaming stores.

Two places where a mini-batch epoch waits on memory, not on arithmetic
(docs/performance-log.md, "Waiting on memory"):

- **Prefetching the next block.** ``packed_tile`` packs each block of
  the reduction (MICRO_KC rows of B) only when the last one is done; where
  B is a batch of a large X it comes from memory (the epoch's batches are
  gathered long before a step reaches them), and the core waits for its
  lines with nothing to do. A hint per cache line of the next block, a few
  before each micro-kernel call, lets the memory system fetch it during
  that work instead. ``prefetch_rows(B, r0, r1, c0, c1)``: hints for
  B[r0:r1, c0:c1], one for each cache line a row's cells lie in
  (``llvm.prefetch``, a read into the second-level cache: ``prefetcht1``
  on x86, ``prfm pldl2keep`` on AArch64). A hint changes no value.
- **Streaming the epoch's gather.** The epoch's batches (as large as X;
  of STREAM_GATHER_BYTES or more, past the caches: gather_batches writes
  smaller ones with ordinary stores, which leave them in the caches for
  the steps) are written once and read a step at a time long after: an ordinary
  store first reads each line it writes into the caches (a write
  allocates), a third of the gather's traffic, and evicts what the steps
  keep there. ``stream_cells(dst, d, src, count)``: dst[d:d + count] =
  src[:count], with x86's non-temporal stores (whole lines, written to
  memory without being read) where the destination starts a line and
  count cells fill whole lines; ordinary stores elsewhere. Such stores
  are not ordered with later ones: ``store_fence()`` (x86 ``sfence``)
  after them, before another thread may read what they wrote.

Arrays C-contiguous; indices in range (the caller's promise: no bounds
test). Interpreted (the "python" backend): no hints, ordinary copies.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload, register_jitable

from .. import target
from ..options import HELPER_OPTIONS

LINE_BYTES = 64  # a cache line on x86 and on the common ARM cores
# llvm.prefetch's arguments: a read (0), locality 2 (the second-level
# cache; 3 would take L1 lines from the panel the micro-kernel is reading),
# a data (1, not an instruction) prefetch.
READ, LOCALITY, DATA = 0, 2, 1
# Non-temporal stores where the target has them as whole vector lines
# (x86's movnt*; AArch64's stnp pairs are left alone).
STREAMS = target.is_x86()


def prefetch_rows(B, r0, r1, c0, c1):
    """Hints for B[r0:r1, c0:c1] (the module docstring); interpreted, nothing."""


def stream_cells(dst, d, src, count):
    """dst[d:d + count] = src[:count], dst and src 1-D (the module docstring)."""
    dst[d:d + count] = src[:count]


def store_fence():
    """Order the streaming stores before this with later stores (the module docstring)."""


def _is_array(ary, ndim):
    return isinstance(ary, types.Array) and ary.ndim == ndim


@intrinsic
def _address(typingctx, ary, index):
    """The address of ary[index] (index a tuple of ary.ndim integers), as an integer."""
    if not (isinstance(ary, types.Array) and isinstance(index, types.BaseTuple) and len(index) == ary.ndim):
        return None

    def codegen(context, builder, signature, args):
        aryty, indexty = signature.args
        a = context.make_array(aryty)(context, builder, args[0])
        cells = cgutils.unpack_tuple(builder, args[1], len(indexty))
        cells = [context.cast(builder, v, t, types.intp) for v, t in zip(cells, indexty)]
        ptr = cgutils.get_item_pointer(context, builder, aryty, a, cells, wraparound=False)
        return builder.ptrtoint(ptr, context.get_value_type(types.intp))
    return types.intp(ary, index), codegen


@intrinsic
def _prefetch_at(typingctx, address):
    """llvm.prefetch of the line at ``address`` (an integer)."""
    if not isinstance(address, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        ptr = builder.inttoptr(args[0], i8p)
        builder.call(fn, [ptr] + [ir.Constant(i32, v) for v in (READ, LOCALITY, DATA)])
        return context.get_dummy_value()
    return types.none(address), codegen


@intrinsic
def _stream_line(typingctx, dst, d, src, s):
    """dst[d:d + L] = src[s:s + L], L cells a line: one vector load, one
    non-temporal vector store (dst + d starts a line: the caller's test)."""
    if not (_is_array(dst, 1) and _is_array(src, 1) and dst.dtype == src.dtype):
        return None
    lanes = LINE_BYTES * 8 // dst.dtype.bitwidth

    def codegen(context, builder, signature, args):
        dty, _, sty, _ = signature.args
        vec = ir.VectorType(context.get_value_type(dty.dtype), lanes).as_pointer()

        def pointer(ty, ary, i, i_ty):
            a = context.make_array(ty)(context, builder, ary)
            index = context.cast(builder, i, i_ty, types.intp)
            return builder.bitcast(cgutils.get_item_pointer(context, builder, ty, a, [index], wraparound=False), vec)
        line = builder.load(pointer(sty, args[2], args[3], signature.args[3]), align=dty.dtype.bitwidth // 8)
        store = builder.store(line, pointer(dty, args[0], args[1], signature.args[1]), align=LINE_BYTES)
        store.set_metadata("nontemporal", builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)]))
        return context.get_dummy_value()
    return types.none(dst, d, src, s), codegen


@intrinsic
def _sfence(typingctx):
    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.VoidType(), [])
        builder.call(cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.sfence"), [])
        return context.get_dummy_value()
    return types.none(), codegen


@register_jitable(**HELPER_OPTIONS)
def _prefetch_rows(B, r0, r1, c0, c1):
    if c1 <= c0:
        return
    for r in range(r0, r1):  # one hint a line the row's cells touch
        first = _address(B, (r, c0)) // LINE_BYTES * LINE_BYTES
        for a in range(first, _address(B, (r, c1 - 1)) + 1, LINE_BYTES):
            _prefetch_at(a)


@register_jitable(**HELPER_OPTIONS)
def _stream_cells(dst, d, src, n):
    lanes = LINE_BYTES // dst.itemsize
    if STREAMS and n % lanes == 0 and _address(dst, (d,)) % LINE_BYTES == 0:
        for c in range(0, n, lanes):
            _stream_line(dst, d + c, src, c)
    else:
        for c in range(n):
            dst[d + c] = src[c]


@overload(prefetch_rows, jit_options=HELPER_OPTIONS)
def _prefetch_rows_compiled(B, r0, r1, c0, c1):
    return lambda B, r0, r1, c0, c1: _prefetch_rows(B, r0, r1, c0, c1)


@overload(stream_cells, jit_options=HELPER_OPTIONS)
def _stream_cells_compiled(dst, d, src, count):
    return lambda dst, d, src, count: _stream_cells(dst, d, src, count)


@overload(store_fence, jit_options=HELPER_OPTIONS)
def _store_fence_compiled():
    if STREAMS:
        return lambda: _sfence()
    return lambda: None
