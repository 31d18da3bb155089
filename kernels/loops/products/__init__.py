"""The engine behind the loop kernels: the BLAS way, still plain loops.

    blocked.py  register-blocked products (plans BLOCKED_ROWS, BLOCKED_DOT)
    packed.py   packed panels (plan PACKED)
    micro.py    the micro-kernels PACKED runs, holding their block in vector registers
    transpose.py  8 x 8 blocks transposed in vector registers (the transposing packs)
    sparse.py   mini-batch products over a mostly-zero factor (behind a relu), its zeros left out
"""
