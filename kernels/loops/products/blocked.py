"""Register-blocked products (plans BLOCKED_ROWS and BLOCKED_DOT): plain
loops that keep a 4 x 4 block of multipliers or sums in registers.

rows_update   C[r, j] += sum_q X[r, q] B[q, j] for 4 rows r of C and 4 q at
              a time: the 16 X values sit in registers while the inner loop
              walks j (contiguous in C and B): 16 multiply-adds per 4 loads
              of B and 4 loads + 4 stores of C (the SIMPLE plan: 1 multiply-add
              per 2 loads + 1 store). linear_forward is C = Z, X = W,
              B = A_prev; input_gradient is C = dA_prev, X = W^T, B = dZ.
dot4x4        the 16 dot products of 4 rows of P with 4 rows of Q along their
              contiguous length, 16 accumulators in registers (SIMD lanes
              over j; fastmath lets LLVM reassociate the sums): weight_gradients
              (dW = dZ A_prev^T) and linear_forward's dot-product form.
dots_tile     a tile of such dot products, 4 x 4 at a time, leftovers 1 x 4 and 1 x 1.
pack_transposed   a block of A_prev transposed into a scratch panel, so both
              factors of linear_forward's dot products are contiguous.
"""

import numpy as np
from numba.extending import register_jitable

from ...options import HELPER_OPTIONS, JB, QB
from ...wide import prefer_wide_vectors
from .transpose import in_registers, transpose8_rows


@register_jitable(**HELPER_OPTIONS)
def rows_update(C, X, B, r0, r1, q0, q1, j0, j1):
    """C[r0:r1, j0:j1] += X[r0:r1, q0:q1] B[q0:q1, j0:j1].

    C (R, M), X (R, Q) (may be a transposed view), B (Q, M).
    """
    prefer_wide_vectors()  # zmm on AVX-512 (kernels.wide)
    r = r0
    while r + 4 <= r1:
        c0 = C[r, j0:j1]
        c1 = C[r + 1, j0:j1]
        c2 = C[r + 2, j0:j1]
        c3 = C[r + 3, j0:j1]
        q = q0
        while q + 4 <= q1:
            b0 = B[q, j0:j1]
            b1 = B[q + 1, j0:j1]
            b2 = B[q + 2, j0:j1]
            b3 = B[q + 3, j0:j1]
            x00 = X[r, q]; x01 = X[r, q + 1]; x02 = X[r, q + 2]; x03 = X[r, q + 3]
            x10 = X[r + 1, q]; x11 = X[r + 1, q + 1]; x12 = X[r + 1, q + 2]; x13 = X[r + 1, q + 3]
            x20 = X[r + 2, q]; x21 = X[r + 2, q + 1]; x22 = X[r + 2, q + 2]; x23 = X[r + 2, q + 3]
            x30 = X[r + 3, q]; x31 = X[r + 3, q + 1]; x32 = X[r + 3, q + 2]; x33 = X[r + 3, q + 3]
            for j in range(c0.shape[0]):  # contiguous: SIMD
                v0 = b0[j]
                v1 = b1[j]
                v2 = b2[j]
                v3 = b3[j]
                c0[j] += x00 * v0 + x01 * v1 + x02 * v2 + x03 * v3
                c1[j] += x10 * v0 + x11 * v1 + x12 * v2 + x13 * v3
                c2[j] += x20 * v0 + x21 * v1 + x22 * v2 + x23 * v3
                c3[j] += x30 * v0 + x31 * v1 + x32 * v2 + x33 * v3
            q += 4
        while q < q1:  # the last q1 - q0 mod 4 rows of B
            b0 = B[q, j0:j1]
            x00 = X[r, q]; x10 = X[r + 1, q]; x20 = X[r + 2, q]; x30 = X[r + 3, q]
            for j in range(c0.shape[0]):
                v0 = b0[j]
                c0[j] += x00 * v0
                c1[j] += x10 * v0
                c2[j] += x20 * v0
                c3[j] += x30 * v0
            q += 1
        r += 4
    while r < r1:  # the last r1 - r0 mod 4 rows of C, one at a time
        c0 = C[r, j0:j1]
        q = q0
        while q + 4 <= q1:
            b0 = B[q, j0:j1]
            b1 = B[q + 1, j0:j1]
            b2 = B[q + 2, j0:j1]
            b3 = B[q + 3, j0:j1]
            x00 = X[r, q]; x01 = X[r, q + 1]; x02 = X[r, q + 2]; x03 = X[r, q + 3]
            for j in range(c0.shape[0]):
                c0[j] += x00 * b0[j] + x01 * b1[j] + x02 * b2[j] + x03 * b3[j]
            q += 4
        while q < q1:
            b0 = B[q, j0:j1]
            x00 = X[r, q]
            for j in range(c0.shape[0]):
                c0[j] += x00 * b0[j]
            q += 1
        r += 1


@register_jitable(**HELPER_OPTIONS)
def product_tile(C, X, B, r0, r1, j0, j1):
    """C[r0:r1, j0:j1] += X[r0:r1, :] B[:, j0:j1], the reduction QB at a time."""
    Q = B.shape[0]
    for q0 in range(0, Q, QB):
        rows_update(C, X, B, r0, r1, q0, min(q0 + QB, Q), j0, j1)


@register_jitable(**HELPER_OPTIONS)
def product_tiles(R, M):
    """Tiling of an (R, M) product output: (column tiles, row groups, rows per
    group). Columns JB at a time; rows split in groups (multiples of 4) only
    when there are too few column tiles to keep every core busy."""
    njb = (M + JB - 1) // JB
    ngroups = 1
    if njb < 8:
        ngroups = min((8 + njb - 1) // njb, (R + 3) // 4)
    rows = (R + ngroups - 1) // ngroups
    rows = (rows + 3) // 4 * 4
    ngroups = (R + rows - 1) // rows
    return njb, ngroups, rows


@register_jitable(**HELPER_OPTIONS)
def dot4x4(S, sr, sc, P, pr, po, Q, qr, qo, L, accumulate):
    """S[sr + a, sc + c] (+)= sum_l P[pr + a, po + l] Q[qr + c, qo + l] for
    a, c < 4 and l < L: 16 dot products along contiguous rows of P and Q."""
    prefer_wide_vectors()  # zmm on AVX-512 (kernels.wide)
    zero = S.dtype.type(0.0)
    a0 = P[pr, po:po + L]
    a1 = P[pr + 1, po:po + L]
    a2 = P[pr + 2, po:po + L]
    a3 = P[pr + 3, po:po + L]
    b0 = Q[qr, qo:qo + L]
    b1 = Q[qr + 1, qo:qo + L]
    b2 = Q[qr + 2, qo:qo + L]
    b3 = Q[qr + 3, qo:qo + L]
    s00 = zero; s01 = zero; s02 = zero; s03 = zero
    s10 = zero; s11 = zero; s12 = zero; s13 = zero
    s20 = zero; s21 = zero; s22 = zero; s23 = zero
    s30 = zero; s31 = zero; s32 = zero; s33 = zero
    for j in range(a0.shape[0]):  # 16 reductions: SIMD lanes over j (fastmath reassoc)
        v0 = b0[j]
        v1 = b1[j]
        v2 = b2[j]
        v3 = b3[j]
        u = a0[j]
        s00 += u * v0; s01 += u * v1; s02 += u * v2; s03 += u * v3
        u = a1[j]
        s10 += u * v0; s11 += u * v1; s12 += u * v2; s13 += u * v3
        u = a2[j]
        s20 += u * v0; s21 += u * v1; s22 += u * v2; s23 += u * v3
        u = a3[j]
        s30 += u * v0; s31 += u * v1; s32 += u * v2; s33 += u * v3
    if accumulate:
        s00 += S[sr, sc]; s01 += S[sr, sc + 1]; s02 += S[sr, sc + 2]; s03 += S[sr, sc + 3]
        s10 += S[sr + 1, sc]; s11 += S[sr + 1, sc + 1]; s12 += S[sr + 1, sc + 2]; s13 += S[sr + 1, sc + 3]
        s20 += S[sr + 2, sc]; s21 += S[sr + 2, sc + 1]; s22 += S[sr + 2, sc + 2]; s23 += S[sr + 2, sc + 3]
        s30 += S[sr + 3, sc]; s31 += S[sr + 3, sc + 1]; s32 += S[sr + 3, sc + 2]; s33 += S[sr + 3, sc + 3]
    S[sr, sc] = s00; S[sr, sc + 1] = s01; S[sr, sc + 2] = s02; S[sr, sc + 3] = s03
    S[sr + 1, sc] = s10; S[sr + 1, sc + 1] = s11; S[sr + 1, sc + 2] = s12; S[sr + 1, sc + 3] = s13
    S[sr + 2, sc] = s20; S[sr + 2, sc + 1] = s21; S[sr + 2, sc + 2] = s22; S[sr + 2, sc + 3] = s23
    S[sr + 3, sc] = s30; S[sr + 3, sc + 1] = s31; S[sr + 3, sc + 2] = s32; S[sr + 3, sc + 3] = s33


@register_jitable(**HELPER_OPTIONS)
def dot1x4(S, sr, sc, P, pr, po, Q, qr, qo, L, accumulate):
    """dot4x4 for one leftover row of P: S[sr, sc:sc+4]."""
    prefer_wide_vectors()  # zmm on AVX-512 (kernels.wide)
    zero = S.dtype.type(0.0)
    a0 = P[pr, po:po + L]
    b0 = Q[qr, qo:qo + L]
    b1 = Q[qr + 1, qo:qo + L]
    b2 = Q[qr + 2, qo:qo + L]
    b3 = Q[qr + 3, qo:qo + L]
    s0 = zero; s1 = zero; s2 = zero; s3 = zero
    for j in range(a0.shape[0]):
        u = a0[j]
        s0 += u * b0[j]; s1 += u * b1[j]; s2 += u * b2[j]; s3 += u * b3[j]
    if accumulate:
        s0 += S[sr, sc]; s1 += S[sr, sc + 1]; s2 += S[sr, sc + 2]; s3 += S[sr, sc + 3]
    S[sr, sc] = s0; S[sr, sc + 1] = s1; S[sr, sc + 2] = s2; S[sr, sc + 3] = s3


@register_jitable(**HELPER_OPTIONS)
def dot1x1(S, sr, sc, P, pr, po, Q, qr, qo, L, accumulate):
    """One dot product: S[sr, sc] (+)= P[pr, po:po+L] . Q[qr, qo:qo+L]."""
    prefer_wide_vectors()  # zmm on AVX-512 (kernels.wide)
    a = P[pr, po:po + L]
    b = Q[qr, qo:qo + L]
    s = S.dtype.type(0.0)
    for j in range(a.shape[0]):
        s += a[j] * b[j]
    if accumulate:
        s += S[sr, sc]
    S[sr, sc] = s


@register_jitable(**HELPER_OPTIONS)
def dots_tile(S, sr, sc, P, pr0, pr1, po, Q, qr0, qr1, qo, L, accumulate):
    """S[sr + (r - pr0), sc + (q - qr0)] (+)= P[r, po:po+L] . Q[q, qo:qo+L] for
    r in pr0:pr1 and q in qr0:qr1, 4 x 4 at a time (leftovers 1 x 4, 1 x 1).
    The 4 rows of P stay in L1 while the rows of Q pass by (with wide vectors
    the faster of the two orders on the MNIST layer shapes: kernels.wide).
    P, Q C-contiguous (their row slices are then contiguous: SIMD)."""
    r = pr0
    while r + 4 <= pr1:
        q = qr0
        while q + 4 <= qr1:
            dot4x4(S, sr + r - pr0, sc + q - qr0, P, r, po, Q, q, qo, L, accumulate)
            q += 4
        r += 4
    while r < pr1:  # the last pr1 - pr0 mod 4 rows of P
        q = qr0
        while q + 4 <= qr1:
            dot1x4(S, sr + r - pr0, sc + q - qr0, P, r, po, Q, q, qo, L, accumulate)
            q += 4
        r += 1
    q = qr0 + (qr1 - qr0) // 4 * 4
    while q < qr1:  # the last qr1 - qr0 mod 4 rows of Q, against every row of P
        for r in range(pr0, pr1):
            dot1x1(S, sr + r - pr0, sc + q - qr0, P, r, po, Q, q, qo, L, accumulate)
        q += 1



@register_jitable(**HELPER_OPTIONS)
def pack_transposed(T, X, p0, p1, j0, j1):
    """T[j, p - p0] = X[p, j0 + j]: the block X[p0:p1, j0:j1] transposed into
    the scratch panel T, so that its columns become contiguous rows (the
    dot-product form needs both factors contiguous along the reduction)."""
    prefer_wide_vectors()  # zmm on AVX-512 (kernels.wide)
    nj = j1 - j0
    q = p0
    blocks = nj // 8 * 8 if in_registers(T) else 0  # columns in 8 x 8 blocks in registers
    while q + 8 <= p1:  # 8 rows of X at a time: 8 sequential reads, 8 adjacent writes
        c = q - p0
        for j in range(0, blocks, 8):
            transpose8_rows(T, j, c, X, q, j0 + j)
        x0 = X[q, j0 + blocks:j1]
        x1 = X[q + 1, j0 + blocks:j1]
        x2 = X[q + 2, j0 + blocks:j1]
        x3 = X[q + 3, j0 + blocks:j1]
        x4 = X[q + 4, j0 + blocks:j1]
        x5 = X[q + 5, j0 + blocks:j1]
        x6 = X[q + 6, j0 + blocks:j1]
        x7 = X[q + 7, j0 + blocks:j1]
        for j in range(nj - blocks):
            t = T[blocks + j, c:c + 8]
            t[0] = x0[j]; t[1] = x1[j]; t[2] = x2[j]; t[3] = x3[j]
            t[4] = x4[j]; t[5] = x5[j]; t[6] = x6[j]; t[7] = x7[j]
        q += 8
    while q < p1:
        x0 = X[q, j0:j1]
        c = q - p0
        for j in range(nj):
            T[j, c] = x0[j]
        q += 1


@register_jitable(**HELPER_OPTIONS)
def transposed(W):
    """W^T as a new C-contiguous array (k, n), for W (n, k): pack_transposed
    of all of W (8 rows at a time: 2-3x faster than np.ascontiguousarray(W.T))."""
    n, k = W.shape
    WT = np.empty((k, n), dtype=W.dtype)
    pack_transposed(WT, W, 0, n, 0, k)
    return WT
