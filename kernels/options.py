"""One home for the settings every compiled loop shares: compile flags,
activation codes, and the engine's thresholds and block sizes.

Measured figures behind the thresholds are in the README's results; the
comments here say what each one trades.
"""

import numba

from . import target
from .wide import SLPCompiler

# ---------------------------------------------------------------- compile flags
# 'reassoc' lets LLVM reorder the sums of the reductions (dW, db, dot, cost)
# into SIMD lanes, and 'contract' lets it fuse a*b+c into one FMA. Both change
# results only by rounding. No 'nnan'/'ninf': NaN must survive so that
# training can detect divergence.
FASTMATH = {"reassoc", "contract"}
# numpy's error model: a division carries no zero check (which would block SIMD).
ERROR_MODEL = "numpy"

# The public kernels, compiled by kernels.cpu (nogil: threads run them at once).
SERIAL_OPTIONS = dict(cache=True, nogil=True, error_model=ERROR_MODEL, fastmath=FASTMATH)
PARALLEL_OPTIONS = dict(SERIAL_OPTIONS, parallel=True)
# The helpers the kernels call (register_jitable: compiled on their own, not
# with the caller's flags). Interpreted, they are plain Python functions.
HELPER_OPTIONS = dict(error_model=ERROR_MODEL, fastmath=FASTMATH)
# The scalar activations (activations.sigmoid_scalar, activation_scalar,
# derivative_scalar: the C math library's tanh and exp), which the course's
# loops and the CUDA kernels call: no fast-math flag at all. numba-cuda compiles
# a function that has any with its fast float32 functions (tanh.approx.f32,
# __nv_fast_expf): on an H200, float32 tanh 25-50 ulp off.
SCALAR_OPTIONS = dict(error_model=ERROR_MODEL)
# kernels.approx: 'contract' only. 'reassoc' would let LLVM fold the
# Cody-Waite range reduction x - n*ln2_hi - n*ln2_lo into x - n*ln2 and lose
# the accuracy; flags are per instruction, so inlining keeps them.
APPROX_OPTIONS = dict(error_model=ERROR_MODEL, fastmath={"contract"})
# The packed products' micro-kernels: sums in order along the reduction (no
# reassoc: nothing for the loop vectorizer to take over), a*b+c fused, and
# LLVM's SLP vectorizer on for them alone (kernels.wide.SLPCompiler).
MICRO_OPTIONS = dict(pipeline_class=SLPCompiler, error_model=ERROR_MODEL, fastmath={"contract"})

# ----------------------------------------------------------- activation codes
# Compiled loops branch on a small int, not on a string.
SIGMOID = 0
TANH = 1
RELU = 2
LEAKY_RELU = 3
LINEAR = 4
ACTIVATION_CODES = {
    "sigmoid": SIGMOID,
    "tanh": TANH,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "linear": LINEAR,
}
LEAKY_SLOPE = 0.01
# The softmax output layer's code (not a hidden activation: its units share
# one normalization per example). linear_activation_forward leaves A = Z for
# it; the softmax kernel then normalizes A's columns.
SOFTMAX = 5
OUTPUTS = ("sigmoid", "softmax")
# Added to a code (``TANH | EXACT``): tanh, sigmoid, the softmax's exp and
# the cost's log call the C math library instead of the vectorizable
# approximations of kernels.approx (within 2.5 ulp; many times faster once
# LLVM vectorizes them). The scalar helpers (activation_scalar, ...) and
# course.py always use the C library.
EXACT = 8

# ------------------------------------------------------------------ thresholds
# Elementwise kernels, the cost and dot: blocks of BLOCK cells under prange,
# and one serial pass below PARALLEL_ELEMENTS cells (starting threads would
# cost more than the loop).
BLOCK = 256
PARALLEL_ELEMENTS = 16384
# dot's blocks, each one partial sum: long enough that a block's vector loop
# and its final horizontal add are a small part of it, short enough that a
# million elements make hundreds of blocks for the threads to share
DOT_BLOCK = 4096
# An epoch's batches (gather_batches: as large as X) of at least this many
# bytes are written with streaming stores, which bypass the caches (the
# MNIST-sized X, 51 MB); smaller ones (digits' X, 0.7 MB) with ordinary
# stores, so that each step finds its batch in the caches
# (docs/performance-log.md, "The epoch's batches where the steps find them").
STREAM_GATHER_BYTES = 4 << 20
# The products (see kernels/loops/plans.py for the plans these choose between):
# the course's loops up to COURSE_WORK multiply-adds, the SIMPLE plan up to
# BLOCKED_WORK, a serial loop over tiles below PARALLEL_WORK, a parallel one
# above. PARALLEL_WORK trades the thread pool's start-up and the narrower
# tiles two threads need (a few microseconds each product) against half the
# work: 2M multiply-adds take ~40 us on one AVX-512 core in float64. Below
# that the two-thread products measured no faster than the serial ones
# (README, "Threads for mid-sized products").
COURSE_WORK = 256
BLOCKED_WORK = 2048
PARALLEL_WORK = 1 << 21
# BLOCKED_ROWS: tiles of JB examples by all rows, the reduction QB at a time,
# so the QB x JB panel of the right-hand factor stays in L2 while every 4-row
# block of the output walks over it.
JB = 256
QB = 128
# weight_gradients (BLOCKED_DOT): JR_BYTES of each row at a time, so the 4
# rows of dZ a dot4x4 holds and the 4 rows of A_prev passing by share L1.
JR_BYTES = 4096
# linear_forward takes BLOCKED_DOT when the reduction is at least DOT_FORM_K
# long: each 4 x 4 block of Z ends in 16 horizontal sums of vector registers,
# which only a long reduction amortizes. It takes KC of the reduction at a
# time (one pass for an MNIST-sized first layer, k = 784).
DOT_FORM_K = 256
KC = 1024
# PACKED: micro-kernels of MICRO_ROWS rows by MICRO_BYTES of columns, the
# target's (kernels.target.micro_shape): AVX-512 8 rows x 2 vectors, AVX2 3
# rows x 4 vectors: 128 bytes, 16 float64 or 32 float32, either way. The
# reduction MICRO_KC at a time (a 32 KiB panel in L1); used when the output
# has at least MICRO_MIN_ROWS rows, four of the target's row blocks (packing
# costs about as much as 2-3 row blocks' work, so fewer rows do not repay
# it: 32 rows on AVX-512, 12 on AVX2, where the blocked forms' float64
# transposes go cell by cell; docs/performance-log.md, "Packed from four row blocks")
# and the reduction is at least MICRO_MIN_K long. From MICRO_LONG_K on, MICRO_LONG_K_ROWS rows are enough:
# such a product is bound by reading its right-hand operand from memory
# (the deep network's first layer: X 12288 x 209), which the packing reads
# once, row after row, and the dot form's panels no faster; the micro-kernel
# then does the arithmetic in fewer instructions.
MICRO_ROWS, _MICRO_VECTORS = target.micro_shape()
MICRO_BYTES = _MICRO_VECTORS * target.vector_bits() // 8
# The transposing packs (dW's B^T, input_gradient's W^T, the dot form's panels) move 8 x 8 blocks
# through vector registers (products/transpose.py) for the dtypes of at most
# this many bytes (AVX-512 and AVX2: float64 and float32; AVX2's float64 in
# four 4 x 4 quarters, a register a row: whole rows of two registers were
# slower than cell by cell; 128-bit SIMD: neither). The others go cell by cell.
TRANSPOSE_ITEMSIZE = 8 if target.vector_bits() >= 256 else 0
MICRO_KC = 256
# A mini-batch's products over a factor with few nonzero cells (behind a
# relu: a quarter to 0.7 of them) leave the zeros out (products/sparse.py):
# a row of the output at a time in SPARSE_BYTES of vector registers (8 of
# the target's vectors), where at most SPARSE_DENSITY of the cells are
# nonzero (dW), SPARSE_DENSITY_TRANSPOSED (Z, and dA_prev but where
# SPARSE_DENSITY_INPUT says otherwise; these transpose their sparse factor
# first and their result after): about where that stops
# being faster than the packed product (docs/performance-log.md, "Zeros left out"; dW's is
# 0.9 on vectors narrower than 512 bits, whose packed micro-kernel is the
# 3 x 16 one: "AVX2's float64 transposes and dW's zeros").
SPARSE_BYTES = 8 * target.vector_bits() // 8
SPARSE_DENSITY = 0.8 if target.vector_bits() >= 512 else 0.9
SPARSE_DENSITY_TRANSPOSED = 0.5
# dA_prev's own (float64, float32): AVX2's float64 to 0.85, where its packed
# product was slower than the sparse tiles with their transposes (docs/performance-log.md,
# "AVX2's float64 transposes and dW's zeros").
SPARSE_DENSITY_INPUT = (0.85 if target.vector_bits() < 512 else SPARSE_DENSITY_TRANSPOSED, SPARSE_DENSITY_TRANSPOSED)
MICRO_MIN_ROWS = 4 * MICRO_ROWS
MICRO_MIN_K = 16
MICRO_LONG_K = 2048
MICRO_LONG_K_ROWS = 8
# Full-batch training fuses a first layer of fewer than FUSED_FIRST_UNITS
# units over MICRO_LONG_K inputs or more into one pass over X
# (loops/first_layer.py; plans.first_layer_fused): at 64 units the packed
# products were faster, at 20 the fused pass, on AVX-512 and AVX2 alike.
FUSED_FIRST_UNITS = 32
# The threads of Numba's pool (NUMBA_NUM_THREADS, fixed when Numba is
# imported): a parallel packed product takes a tile of columns a thread
# (products.packed.packed_width). A constant of the compiled code
# (numba.get_num_threads() there would keep it out of the cache), so the
# parallel variant's compiled names carry it (kernels.cpu): a pool of another
# size never loads this one's tiling from the cache.
POOL_THREADS = numba.config.NUMBA_NUM_THREADS

# ------------------------------------------------------------------ optimizers
# Codes of kernels.loops.update.optimizer_step (model.optimizers names them).
GD = 0
MOMENTUM = 1
RMSPROP = 2
ADAM = 3
# RMSprop's and Adam's float64 quotient (kernels.loops.update.optimizer_step):
# on AVX-512 from vrcp14pd's estimate (kernels.vector_step); else by division
# where the divider is quick (target.fast_divider: Zen 2 onwards), else on
# the FMA units (kernels.quotient). The same values every way.
DIVIDE_STEP = target.fast_divider() and target.vector_bits() < 512
