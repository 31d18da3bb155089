"""Calling a compiled kernel through its address: callers that do not compile it again.

When compiled code calls another ``@njit`` function, Numba links the
callee's LLVM IR into the caller's module, and optimizes and generates
machine code for all of it again: every training program (model.training,
model.team) compiled the big product kernels once more, LLVM inlining and
specializing them at each call site (README, "Compile only what the run
needs"). ``external(dispatcher)`` is a stand-in for the dispatcher in a
caller's globals that calls the kernel's own machine code instead: the
caller's module holds a call through a function pointer, not the kernel.

How the pointer is found, so that the caller stays cacheable: a call
reads the address from a slot in the caller's module (a global named after
the hash of its key, null when the module is loaded; the key is the
dispatcher's qualified name and the argument types, pickled, kept as a
constant string). The first call through a null slot asks ``_resolve`` (a C
callback registered with LLVM under a fixed symbol name, as Numba registers
its own helpers) for the kernel's address: it compiles or loads that
signature of the dispatcher the key names, once per process. No address is
ever written into compiled code, so a cached caller loaded in another
process (or a forked one) finds its kernels afresh, and a caller never runs
a stale kernel: the key names the kernel's source digest (kernels.cpu). A
worker thread of a parallel loop may be the first to ask: the callback
takes the GIL, which Numba's parallel regions release while their workers
run (tests/test_external.py runs one under a caller that holds it).

A kernel that returns nothing can be external ``lazy``: its callers are
typed without compiling it (its signature is none of the arguments' types),
so it is compiled (or loaded from the cache) at its first call, by the
resolver, and not at all in a process that never calls it: the products'
sparse tiles (kernels.loops.LAZY_TILES), which only a mini-batch behind a
relu reaches, cost the compile time of a run that never goes there
nothing.

The call is Numba's own calling convention (errors propagate as from any
callee); what is lost is LLVM inlining the kernel into the caller, which
matters only for tiny kernels: the matrix products and their tiles go
this way (kernels.cpu, model.program), the small loops stay linked.
"""

import ctypes
import hashlib
import pickle
import sys
import threading

from llvmlite import binding as llvm
from llvmlite import ir
from numba.core import cgutils, types
from numba.core.imputils import lower_builtin
from numba.core.typing.templates import AbstractTemplate
from numba.extending import typeof_impl

RESOLVER_SYMBOL = "jitloops_resolve_kernel"

# qualified name -> dispatcher, for every kernel a caller may name
_registry = {}
_lock = threading.Lock()


class External:
    """``dispatcher``, called from compiled code through its address;
    ``lazy``: compiled at its first call, not when a caller is (module
    docstring)."""

    def __init__(self, dispatcher, lazy=False):
        self.dispatcher = dispatcher
        self.lazy = bool(lazy)
        self.name = dispatcher.py_func.__qualname__
        _registry[self.name] = dispatcher
        self.template = type(f"External_{self.name}", (AbstractTemplate,),
                             {"key": self, "generic": _generic})
        self.type = types.Function(self.template)
        lower_builtin(self, types.VarArg(types.Any))(
            lambda context, builder, sig, args: _lower(self, context, builder, sig, args))

    def __call__(self, *args):  # from Python: the dispatcher itself
        return self.dispatcher(*args)

    def __repr__(self):
        return f"external({self.name})"


_externals = {}


def external(dispatcher, lazy=False):
    """A stand-in for ``dispatcher`` in a caller's globals (module docstring),
    one per dispatcher; ``lazy`` (a kernel that returns nothing) is compiled
    at its first call rather than with its callers."""
    with _lock:
        if dispatcher not in _externals:
            _externals[dispatcher] = External(dispatcher, lazy)
        assert _externals[dispatcher].lazy == bool(lazy), f"{dispatcher} is external both lazily and not"
        return _externals[dispatcher]


@typeof_impl.register(External)
def _typeof_external(val, c):
    return val.type


def _generic(self, args, kws):
    """The signature of the kernel's overload for ``args`` (compiled now if
    it is new), as a call of the dispatcher would type it."""
    if kws:
        return None
    dispatcher = self.key.dispatcher
    # an unsigned index (a prange's) goes as int64: one machine code for
    # the kernel's serial and parallel callers (Numba casts the argument)
    args = tuple(types.int64 if isinstance(a, types.Integer) and not a.signed else a for a in args)
    if self.key.lazy:  # it returns nothing: typed without compiling; its slot's first call compiles it
        return types.none(*(types.unliteral(a) for a in args))
    template, pysig, args, kws = dispatcher.get_call_template(args, kws)
    return template(self.context).apply(args, kws)


def _slot(kernel, context, builder, argtypes):
    """The address of ``kernel``'s overload for ``argtypes``, from its slot
    (filled by _resolve the first time). The slot's name is the key's hash,
    so the call sites of one module share it."""
    key = pickle.dumps((kernel.name, tuple(argtypes)), protocol=4)
    module = builder.module
    voidptr = ir.IntType(8).as_pointer()
    name = f"jitloops.slot.{hashlib.sha1(key).hexdigest()}"
    try:
        slot = module.get_global(name)
    except KeyError:
        slot = ir.GlobalVariable(module, voidptr, name)
        slot.linkage = "linkonce_odr"
        slot.initializer = ir.Constant(voidptr, None)
    resolver = cgutils.get_or_insert_function(module, ir.FunctionType(voidptr, [voidptr, ir.IntType(64)]),
                                              RESOLVER_SYMBOL)
    with builder.if_then(cgutils.is_null(builder, builder.load(slot)), likely=False):
        found = builder.call(resolver, [context.insert_const_bytes(module, key), ir.Constant(ir.IntType(64), len(key))])
        with builder.if_then(cgutils.is_null(builder, found), likely=False):
            context.call_conv.return_user_exc(builder, RuntimeError,
                                              (f"jitloops: kernel {kernel.name} could not be compiled or "
                                               f"loaded for these arguments (see the message above)",))
        builder.store(found, slot)
    return builder.load(slot)


def _lower(kernel, context, builder, sig, args):
    """A call of ``kernel`` through its slot (Numba's calling convention)."""
    fnty = context.call_conv.get_function_type(sig.return_type, sig.args)
    fn = builder.bitcast(_slot(kernel, context, builder, sig.args), fnty.as_pointer())
    status, res = context.call_conv.call_function(builder, fn, sig.return_type, sig.args, args)
    with cgutils.if_unlikely(builder, status.is_error):
        context.call_conv.return_status_propagate(builder, status)
    return res


def _resolve_address(key):
    """The address of the kernel's machine code for a pickled (name, argument types)."""
    name, argtypes = pickle.loads(key)
    dispatcher = _registry.get(name)
    if dispatcher is None:
        raise LookupError(f"no kernel {name!r} in this process (its module was not compiled)")
    dispatcher.compile(argtypes)  # under Numba's own compiler lock; loads it when cached
    cres = dispatcher.overloads[argtypes]
    address = cres.library.get_pointer_to_function(cres.fndesc.mangled_name)
    if not address:
        raise LookupError(f"kernel {name!r}{argtypes}: no machine code found for {cres.fndesc.mangled_name}")
    return address


@ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
def _resolve(key, size):
    try:
        return _resolve_address(ctypes.string_at(key, size))
    except BaseException as exc:  # noqa: BLE001 - a C callback must not raise; the caller raises
        print(f"jitloops: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None


llvm.add_symbol(RESOLVER_SYMBOL, ctypes.cast(_resolve, ctypes.c_void_p).value)
