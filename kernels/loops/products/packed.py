"""Packed products (plan PACKED): the BLAS way, as explicit loops.

C[i, j] += sum_q A[i, q] B[q, j] is cut into blocks of MICRO_KC along the
reduction and panels of NR = MICRO_BYTES / itemsize columns (16 float64,
32 float32: two vectors on AVX-512, four on AVX2). Each block of B is
first copied ("packed") into contiguous panels P[panel, q, c], so the
micro-kernel reads one panel
row after another and the whole panel (MICRO_KC x 128 bytes = 32 KiB) stays
in L1 while every MR = MICRO_ROWS rows of A pass over it (NR and MR are the
target's: micro.py). The micro-kernel keeps its MR x NR block of C in
vector registers across the whole reduction: per q it loads one panel row,
broadcasts MR values of A and does MR x NR multiply-adds as vector FMAs; C
is loaded and stored once per block, not once per q as in rows_update.
While it works on one block, the next block's lines of B are fetched
(kernels.loops.memory): a few hints before each micro-kernel call.
"""

import numpy as np
from numba.extending import register_jitable
from numpy import uint64

from ...options import HELPER_OPTIONS, MICRO_BYTES, MICRO_KC, MICRO_ROWS, POOL_THREADS
from ..memory import prefetch_rows
from ..views import borrowed
from .micro import micro_block
from .transpose import in_registers, transpose8


@register_jitable(**HELPER_OPTIONS)
def panel_rows(C, A, q0, P, kc, c0, accumulate, R, S, B, ahead, ahead_end, per_call, b0, b1, alpha):
    """C[:, c0:c0+NR] (+)= alpha A[:, q0:q0+kc] P[0:kc] for one packed panel P
    (kc, NR), MR = MICRO_ROWS rows of C at a time. The last n mod MR rows:
    from R, their rows of A already copied there (zero-padded to MR rows),
    into the scratch block S (MR, NR), then into C. Before each full
    block's call, prefetch hints for ``per_call`` more rows of
    B[ahead:ahead_end, b0:b1] (next_block); returns the first row not
    hinted yet."""
    n = C.shape[0]
    i = 0
    while i + MICRO_ROWS <= n:
        if ahead < ahead_end:
            last = min(ahead + per_call, ahead_end)
            prefetch_rows(B, ahead, last, b0, b1)
            ahead = last
        micro_block(C, i, c0, A, q0, P, kc, accumulate, alpha)
        i += MICRO_ROWS
    if i < n:
        micro_block(S, 0, 0, R, 0, P, kc, False, alpha)
        for r in range(n - i):
            put_row(C[i + r, c0:c0 + S.shape[1]], S[r], accumulate)
    return ahead


@register_jitable(**HELPER_OPTIONS)
def next_block(transposed, q1, k, j0, j1):
    """The cells of B that packed_tile packs after the block ending at
    reduction index q1, as (rows r0:r1, columns c0:c1) of B: its next
    MICRO_KC rows of columns j0:j1, or, transposed, rows j0:j1's next
    MICRO_KC columns; no rows after the last block."""
    q2 = min(q1 + MICRO_KC, k)
    if q2 <= q1:
        return 0, 0, 0, 0
    if transposed:
        return j0, j1, q1, q2
    return q1, q2, j0, j1


@register_jitable(**HELPER_OPTIONS)
def put_row(c, s, add):
    """c (+)= s[:len(c)]: a row of a scratch block into C, added or stored."""
    if add:
        for j in range(c.shape[0]):
            c[j] += s[j]
    else:
        for j in range(c.shape[0]):
            c[j] = s[j]


@register_jitable(**HELPER_OPTIONS)
def pack_panels(P, B, q0, kc, j0, j1, transposed):
    """P[jr, q, c] = op(B)[q0 + q, j0 + jr NR + c], zero past column j1, where
    op(B) is B (its rows are read along c) or, transposed, B^T (its rows are
    read along q, 8 rows at a time: 8 x 8 blocks transposed in vector
    registers where the target has them, transpose.py; else, and for the
    last kc mod 8 columns, cell by cell). P (panels, kc, NR), NR =
    MICRO_BYTES / itemsize (a constant of the compiled code: LLVM unrolls
    and vectorizes the panel's row).

    Indices are unsigned and no views are made (see micro.py); a panel is
    written whole before the next (panel after panel, not row after row of
    B: the panels' rows lie a multiple of 4 KiB apart, and stores to them
    interleaved with loads from B's rows made the CPU take loads for
    dependent on stores they were not: 4K aliasing)."""
    zero = P.dtype.type(0.0)
    one = uint64(1)
    nr = uint64(MICRO_BYTES // P.itemsize)
    q0, kc, j0, j1 = uint64(q0), uint64(kc), uint64(j0), uint64(j1)
    width = j1 - j0
    if not transposed:
        full = width // nr  # whole panels
        for jr in range(full):
            base = j0 + jr * nr
            for q in range(kc):
                bq = q0 + q
                for c in range(nr):
                    P[jr, q, c] = B[bq, base + c]
        if full * nr < width:  # the last, partial panel
            base = j0 + full * nr
            for q in range(kc):
                bq = q0 + q
                for c in range(nr):
                    P[full, q, c] = B[bq, base + c] if base + c < j1 else zero
        return
    j = uint64(0)
    eight = uint64(8)
    k8 = kc // eight * eight
    # 8 rows of B fill 8 cells of a panel's rows where NR is a multiple of 8
    # (128-bit SIMD's float64 panels, 4 cells wide, take the cell-by-cell loop)
    while nr % eight == uint64(0) and j + eight <= width:  # rows j0 + j .. + 7: cells c .. c + 7
        jr = j // nr
        c = j - jr * nr
        b0 = j0 + j
        q = uint64(0)
        if in_registers(P):
            while q < k8:  # 8 x 8 blocks, transposed in registers
                transpose8(P, jr, q, c, B, b0, q0 + q)
                q += eight
        for q in range(q, kc):  # the rest (the last kc mod 8 columns), cell by cell
            qq = q0 + q
            P[jr, q, c] = B[b0, qq]
            P[jr, q, c + one] = B[b0 + one, qq]
            P[jr, q, c + uint64(2)] = B[b0 + uint64(2), qq]
            P[jr, q, c + uint64(3)] = B[b0 + uint64(3), qq]
            P[jr, q, c + uint64(4)] = B[b0 + uint64(4), qq]
            P[jr, q, c + uint64(5)] = B[b0 + uint64(5), qq]
            P[jr, q, c + uint64(6)] = B[b0 + uint64(6), qq]
            P[jr, q, c + uint64(7)] = B[b0 + uint64(7), qq]
        j += eight
    while j < width:  # the last width mod 8 rows
        jr = j // nr
        c = j - jr * nr
        for q in range(kc):
            P[jr, q, c] = B[j0 + j, q0 + q]
        j += one
    for j in range(width, (width + nr - one) // nr * nr):  # the last panel's columns past j1
        jr = j // nr
        c = j - jr * nr
        for q in range(kc):
            P[jr, q, c] = zero


@register_jitable(**HELPER_OPTIONS)
def packed_tile(C, A, B, transposed, j0, j1, zero_first, alpha):
    """C[:, j0:j1] += alpha A op(B)[:, j0:j1] (C[:, j0:j1] zeroed first when
    ``zero_first``): op(B) = B (k, m), or B^T for B (m, k) when
    ``transposed``; A (n, k); alpha a scalar of C's dtype (each block of the
    reduction scaled in the micro-kernel's registers: for a reduction of
    one block, bit for bit alpha times the product). C, A and B
    C-contiguous. The tile's packed panels and scratch blocks are its own
    (no races under prange)."""
    n, k = A.shape
    nr = MICRO_BYTES // C.itemsize
    npan = (j1 - j0 + nr - 1) // nr
    kb = min(MICRO_KC, k)
    # Scratch, used through borrowed views (kernels.loops.views): a view of
    # P per micro-kernel call and of its rows per q would count references.
    P = np.empty((npan, kb, nr), dtype=C.dtype)
    S = np.empty((n, nr), dtype=C.dtype)  # the last, partial panel's columns
    R = np.zeros((MICRO_ROWS, kb), dtype=C.dtype)  # the last n mod MR rows of A
    S8 = np.empty((MICRO_ROWS, nr), dtype=C.dtype)
    i_left = n - n % MICRO_ROWS
    calls = max(npan * (n // MICRO_ROWS), 1)  # micro-kernel calls a block, full row blocks
    if zero_first and k == 0:  # no reduction: C[:, j0:j1] is zero
        for i in range(n):
            c = C[i, j0:j1]
            for j in range(c.shape[0]):
                c[j] = C.dtype.type(0.0)
    for q0 in range(0, k, MICRO_KC):
        kc = min(MICRO_KC, k - q0)
        # the first block of the reduction stores where C starts at zero
        # (no pass zeroing C, no loads of it in the micro-kernel), later ones add
        add = q0 > 0 or not zero_first
        pack_panels(borrowed(P), B, q0, kc, j0, j1, transposed)
        for r in range(n - i_left):
            src = A[i_left + r, q0:q0 + kc]
            dst = borrowed(R)[r]
            for q in range(kc):
                dst[q] = src[q]
        ahead, ahead_end, b0, b1 = next_block(transposed, q0 + kc, k, j0, j1)
        per_call = (ahead_end - ahead + calls - 1) // calls
        for jr in range(npan):
            c0 = j0 + jr * nr
            if c0 + nr <= j1:
                ahead = panel_rows(C, A, q0, borrowed(P)[jr], kc, c0, add, borrowed(R), borrowed(S8), B, ahead,
                                   ahead_end, per_call, b0, b1, alpha)
            else:  # partial panel: into S, then its valid columns into C
                ahead = panel_rows(borrowed(S), A, q0, borrowed(P)[jr], kc, 0, False, borrowed(R), borrowed(S8), B,
                                   ahead, ahead_end, per_call, b0, b1, alpha)
                for i in range(n):
                    put_row(C[i, c0:j1], borrowed(S)[i], add)


@register_jitable(**HELPER_OPTIONS)
def packed_width(m, nr, serial=False):
    """Columns per tile of a packed product with m output columns: a multiple
    of nr, at most 256, and (unless ``serial``: one thread runs every tile)
    narrower where that leaves fewer tiles than the pool has threads
    (POOL_THREADS), so they share the work. No narrower: every tile packs
    its own panels and walks all rows of the right-hand factor, and a few
    wide tiles do that faster than many narrow ones. A serial product takes
    the widest tiles."""
    nt = (m + 255) // 256 if serial else max((m + 255) // 256, min(POOL_THREADS, (m + nr - 1) // nr))
    return ((m + nt - 1) // nt + nr - 1) // nr * nr
