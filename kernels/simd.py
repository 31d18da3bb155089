"""The SIMD lesson's material: loop variants to compile, and how to read their assembly.

``jitloops simd`` (``jitloops/simd.py``) compiles these variants, reads and
times them; the tests read generated code with the same tools:

- ``compile_variant(func, fastmath)``: ``func`` compiled serially by Numba,
  with the library's fastmath flags or none. The lesson compiles the dot
  product ``kernels.loops.dot`` this way, and the linear forward
  ``Z = W A_prev + b`` in two loop orders: ``forward_contiguous``
  (innermost loop over the examples j of a row: ``z[j] += w * a[j]``, unit
  stride, the order ``kernels.loops`` uses) and ``forward_strided``
  (innermost loop over the inputs p: ``acc += W[i, p] * A_prev[p, j]``,
  jumping m elements at a time).
- ``kernel_asm(dispatcher)``: the assembly of the compiled kernel itself
  (``dispatcher.inspect_asm(signature)`` without Numba's wrappers);
  ``count_instructions(asm)``: vector registers by width (xmm = 128 bits,
  ymm = 256, zmm = 512) and floating-point arithmetic instructions, packed
  (``vfmadd231pd``, ``vaddps``: one instruction, several lanes) or scalar
  (``vaddsd``: one lane); ``float64_instructions(asm)``: the lines that
  compute in float64 (a float32 loop must have none).

Each variant is its own function object compiled without Numba's on-disk cache,
so no variant can be served another's machine code (see ``kernels.cpu``).
"""

import re

from .options import ERROR_MODEL, FASTMATH

# --------------------------------------------------------------------------
# The loop variants (the dot is kernels.loops.dot itself)


def forward_contiguous(Z, A_prev, W, b):
    """Z = W A_prev + b, innermost loop over the examples j of one row: unit
    stride in Z and A_prev, no reduction in the inner loop (an "axpy"), so it
    vectorizes even without fastmath. Z (n, m) out; A_prev (k, m); W (n, k); b (n, 1)."""
    n, k = W.shape
    m = A_prev.shape[1]
    for i in range(n):
        z = Z[i]
        bi = b[i, 0]
        for j in range(m):
            z[j] = bi
        for p in range(k):
            wp = W[i, p]
            a = A_prev[p]
            for j in range(m):
                z[j] += wp * a[j]


def forward_strided(Z, A_prev, W, b):
    """Z = W A_prev + b, innermost loop over the inputs p: a reduction into one
    scalar reading A_prev[p, j] with a stride of m elements (one cache line per
    element). Same arguments as ``forward_contiguous``."""
    n, k = W.shape
    m = A_prev.shape[1]
    for i in range(n):
        for j in range(m):
            acc = b[i, 0]
            for p in range(k):
                acc += W[i, p] * A_prev[p, j]
            Z[i, j] = acc


def compile_variant(func, fastmath, suffix=""):
    """``func`` compiled serially by ``numba.njit``, with the library's fastmath
    flags or none, no on-disk cache."""
    import numba

    from .cpu import rebind
    tag = "__simd_fast" if fastmath else "__simd_plain"
    return numba.njit(cache=False, error_model=ERROR_MODEL,
                      fastmath=FASTMATH if fastmath else False)(rebind(func, suffix=tag + suffix))


# --------------------------------------------------------------------------
# Reading the assembly

_FUNC_RE = re.compile(r"^\s*\.type\s+([^,\s]+),@function", re.M)
_INSN_RE = re.compile(r"^\s+([a-z][a-z0-9]*)\s*(.*)$")
# Floating-point arithmetic: add/sub/mul/div/min/max/sqrt and the FMA family,
# packed (p) or scalar (s), double (d) or single (s), VEX/EVEX-encoded (v...).
_FP_ARITH_RE = re.compile(r"^v?(f?n?m?(?:add|sub|mul|div|min|max|sqrt)(?:\d{3})?|fn?m(?:add|sub)\d{3})(p|s)(d|s)$")
_REG_RE = re.compile(r"%(xmm|ymm|zmm)\d+")


def kernel_asm(dispatcher, signature=None):
    """The assembly of the compiled kernel itself, without Numba's CPython
    wrapper (``cpython.*``), its C wrapper (``cfunc.*``) and runtime helpers
    (``NRT_*``): their register moves are not the loop's arithmetic."""
    if signature is None:
        signature = dispatcher.signatures[0]
    asm = dispatcher.inspect_asm(signature)
    starts = [(m.start(), m.group(1)) for m in _FUNC_RE.finditer(asm)]
    parts = []
    for idx, (pos, name) in enumerate(starts):
        end = starts[idx + 1][0] if idx + 1 < len(starts) else len(asm)
        if name.startswith(("_ZN7cpython", "cfunc.", "NRT_")):
            continue
        parts.append(asm[pos:end])
    return "".join(parts) if parts else asm


_TO_OR_FROM_DOUBLE_RE = re.compile(r"^v?cvt\w*(2sd|2pd|sd2|pd2)\w*$")


def float64_instructions(asm):
    """The lines of x86 ``asm`` that compute in float64: double-precision
    arithmetic (add, sub, mul, div, min, max, sqrt, FMA; packed or scalar) and
    conversions to or from double. Moves, shuffles, permutes, broadcasts and
    bitwise ops on "pd" registers (vpermpd, vmovapd, vbroadcastsd, vandpd)
    are not computation and are not listed: LLVM uses them on any data."""
    found = []
    for line in asm.splitlines():
        m = _INSN_RE.match(line)
        if not m:
            continue
        op = m.group(1)
        fp = _FP_ARITH_RE.match(op)
        if (fp and fp.group(3) == "d") or _TO_OR_FROM_DOUBLE_RE.match(op):
            found.append(line.strip())
    return found


def count_instructions(asm):
    """Counts in ``asm`` (text): vector-register mentions by width, and the
    floating-point arithmetic instructions, packed vs scalar, FMA among them.

    Returns a dict: xmm, ymm, zmm (register mentions anywhere in the kernel),
    packed, scalar, fma, packed_fma (arithmetic instructions), widest (the
    widest register any packed arithmetic instruction uses: 'xmm', 'ymm',
    'zmm' or None), examples (a few of the packed arithmetic lines).
    """
    counts = {"xmm": 0, "ymm": 0, "zmm": 0, "packed": 0, "scalar": 0, "fma": 0,
              "packed_fma": 0, "widest": None, "examples": []}
    order = {None: 0, "xmm": 1, "ymm": 2, "zmm": 3}
    for line in asm.splitlines():
        m = _INSN_RE.match(line)
        if not m or line.lstrip().startswith("."):
            continue
        mnemonic, operands = m.groups()
        regs = _REG_RE.findall(operands)
        for r in regs:
            counts[r] += 1
        fp = _FP_ARITH_RE.match(mnemonic)
        if not fp:
            continue
        is_fma = "fmadd" in mnemonic or "fmsub" in mnemonic
        counts["fma"] += is_fma
        if fp.group(2) == "p":
            counts["packed"] += 1
            counts["packed_fma"] += is_fma
            width = max(regs, key=order.__getitem__) if regs else None
            if order[width] > order[counts["widest"]]:
                counts["widest"] = width
            if len(counts["examples"]) < 3 and (mnemonic + operands) not in counts["examples"]:
                counts["examples"].append(f"{mnemonic} {operands}".strip())
        else:
            counts["scalar"] += 1
    return counts
