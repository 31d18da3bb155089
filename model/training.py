"""The training loop, written once as plain loop code over the kernels.

Every function here calls the kernels by their bare names (``linear_activation_forward``,
``weight_gradients``, ...), so the same source runs on every backend:

- "numba" / "parallel": compiled by Numba (``kernels.cpu.compile_loops`` with
  that variant's kernels laid over this module's globals), so a whole chunk of
  iterations of gradient descent runs inside one compiled call: no Python per
  op, buffers passed in once;
- "python": run by the interpreter with the loop kernels of ``kernels.loops``;
- "numpy", "cuda", ...: run by the interpreter with that backend's raw kernels
  (see ``model.program``), a Python loop of kernel calls.

Shape key (the course's notation), for a network of L layers and m examples:
    W[l] (n[l+1], n[l]), b[l] (n[l+1], 1)     parameters of layer l+1 (0-based lists)
    Z[l], A[l+1], dZ[l], dA[l] (n[l+1], m)   layer l+1's pre-activation, activation
                                             and gradients; A[0] is X (n[0], m)
    dW[l], db[l]                             like W[l], b[l]
    Y (1, m); acts[l] the activation code of layer l+1 (the last is sigmoid)
    zeros (>= the largest parameter size,)   zeros, for the finiteness test below
Lists are ``numba.typed.List`` when compiled, plain lists otherwise. Every array
is C-contiguous; nothing here checks shapes (``model.network`` did).
"""

import math

from kernels.loops import (  # uncompiled defaults: backend "python"
    activation_backward,
    activation_backward_from_output,
    all_finite,
    batch_of,
    cross_entropy,
    dropout,
    first_layer_step,
    gather_batches,
    gather_columns,
    gradient_step,
    input_gradient,
    linear_activation_forward,
    optimizer_step,
    permutation,
    softmax,
    weight_gradients,
)
from kernels.loops.plans import first_layer_fused
from kernels.loops.views import borrowed_list
from kernels.options import EXACT, SOFTMAX

# Whether fit_chunk may fuse the first layer (kernels.loops.plans.plan_globals:
# a compiled program's plan set has FIRST_LAYER); interpreted programs never do.
FUSED_FIRST = False

# Status codes of fit_chunk (its second return value).
FINISHED = 0
DIVERGED = 1
STOPPED = 2  # early stopping: the validation cost stopped improving
X_NOT_FINITE = 3  # the epoch's gather of X met NaN or infinity (fit_epochs: before any step of that epoch)


def forward(Z, A, W, b, acts, first):
    """Forward propagation: A[l+1] = g(W[l] A[l] + b[l]) for the layers l =
    first, ..., L-1 (first = 0: every layer; 1: Z[0], A[1] are there already,
    see fit_chunk); AL is A[L]. A softmax output: the layer leaves A = Z, then
    softmax normalizes its columns."""
    for l in range(first, len(W)):
        linear_activation_forward(Z[l], A[l + 1], A[l], W[l], b[l], acts[l])
        if acts[l] & ~EXACT == SOFTMAX:
            softmax(A[l + 1], acts[l] & EXACT != 0)


def backward(dW, db, dZ, dA, W, Z, A, Y, acts, lowest):
    """Backward propagation from the forward pass's Z and A: dW[l], db[l] for
    the layers l = lowest, ..., L-1, and dZ down to dZ[lowest - 1] (lowest = 0:
    every layer; 1: the first layer's dW and db are left to fit_chunk's
    first_layer_step, which reads dZ[0]).

    The output layer uses dZ = AL - Y: for a sigmoid output unit and the
    cross-entropy cost, dJ/dZ = dJ/dAL * sigma'(Z) = (AL - Y) / (AL (1 - AL)) *
    AL (1 - AL) exactly, and the 1/m sits in dW and db; for a softmax output
    and the categorical cost (Y one-hot) it is AL - Y as well. (It is the gradient of
    the unclipped cost; the cost's clipping to [eps, 1 - eps] only matters
    where AL rounds to 0 or 1.) It is written as gradient_step(out, AL, Y, 1):
    out = AL - 1 * Y, a kernel every backend has.
    """
    L = len(W)
    gradient_step(dZ[L - 1], A[L], Y, 1.0)
    for l in range(L - 1, lowest - 1, -1):
        weight_gradients(dW[l], db[l], dZ[l], A[l])
        if l > 0:  # dA of the input layer (dX) is never needed
            input_gradient(dA[l - 1], dZ[l], W[l])
            activation_backward_from_output(dZ[l - 1], dA[l - 1], Z[l - 1], A[l], acts[l - 1])


def parameters_finite(W, b, zeros):
    """True if every W[l] and b[l] is finite: the once-per-chunk test of the
    unguarded chunks a device backend runs (see fit_chunk). A backend may bring
    its own, with one host sync in all (kernels.cuda.parameters_finite)."""
    for l in range(len(W)):
        if not (all_finite(W[l], zeros) and all_finite(b[l], zeros)):
            return False
    return True


def update(W_next, b_next, W, b, dW, db, zeros, learning_rate, lowest):
    """One gradient-descent step into the spare arrays: W_next = W - lr dW and
    b_next = b - lr db for the layers lowest, ..., L-1 (see backward); W and
    b are left as they were.
    Returns whether every new value is finite (the guard): only then does the
    caller (fit_chunk) take W_next, b_next as the current parameters. (In the
    unguarded binding of ``model.program``, all_finite is always true.)
    """
    ok = True
    for l in range(lowest, len(W)):
        gradient_step(W_next[l], W[l], dW[l], learning_rate)
        gradient_step(b_next[l], b[l], db[l], learning_rate)
        if not (all_finite(W_next[l], zeros) and all_finite(b_next[l], zeros)):
            ok = False
    return ok


def swap_items(P, Q):
    """P[l], Q[l] = Q[l], P[l] for every l: the lists trade their arrays
    (nothing is copied)."""
    for l in range(len(P)):
        P[l], Q[l] = Q[l], P[l]


def fit_chunk(costs, lists, X, zeros, Y, acts, start, count, cost_every, learning_rate, eps, exact):
    """Iterations start, ..., start + count - 1 of batch gradient descent (the
    course's: forward, cost, backward, update), on the parameters W, b in place.

    ``lists``: the lists W, b, W_next, b_next, Z, A, dZ, dA, dW, db, as one
    list (Numba's dispatch takes one typed list of them at the cost of two
    lists; model.fit keeps it between fits). A[0] stands in for X: the
    loop's own list takes X there.

    costs (ceil(iterations / cost_every),) float64: at an iteration i that is a
    multiple of cost_every, costs[i // cost_every] = the cost of i's forward
    pass (before i's update; its log from the C math library when ``exact``).
    Returns (done, status): ``done`` iterations
    completed; status DIVERGED if iteration start + done produced a NaN/inf
    cost or parameter, in which case W, b are still those of the last finite
    iteration. Each completed step trades the arrays of W, b with those of
    W_next, b_next: where ``done`` is even the lists hold the arrays they
    held before (fit reads them back only where it is odd).

    Bound unguarded (``Program.fit_chunk_unguarded``: all_finite always true),
    the parameters are not tested per iteration: a device backend's chunks run
    so, without a host sync per iteration, then test them once with
    parameters_finite, and if that fails run the chunk again guarded from a
    copy of its starting parameters (``model.network``). A non-finite cell
    stays non-finite in every later step (inf - x and NaN - x are never
    finite), so the test at the end misses no divergence inside the chunk.

    Where ``first_layer_fused`` says so (a long, thin first layer, hidden or
    the output layer of a one-layer network such as logistic regression; in
    programs compiled with FIRST_LAYER), every step but the chunk's last
    takes the first layer's step and the next forward pass's first layer in
    one pass over X (``first_layer_step``), and that forward pass starts at
    layer 1: X is read once an iteration, not twice. (The last step does not:
    the forward pass it would start belongs to no iteration of the chunk.)
    """
    W, b, W_next, b_next = lists[0], lists[1], lists[2], lists[3]
    L = len(W)
    # Wc, bc: the current parameters; Ws, bs: the spare arrays the next step
    # is written into. A finite step makes the spare arrays current by
    # trading two local names, not the lists' items (a typed list's setitem
    # is a call into Numba's C runtime, a large part of a small network's
    # iteration). On return W, b hold the current parameters again. The
    # loop takes its arrays from lists of borrowed views (borrowed_list: an
    # item taken counts no reference).
    Wc, bc, Ws, bs = borrowed_list(W), borrowed_list(b), borrowed_list(W_next), borrowed_list(b_next)
    Z, A, dZ, dA, dW, db = borrowed_list(lists[4]), borrowed_list(lists[5]), borrowed_list(lists[6]), \
        borrowed_list(lists[7]), borrowed_list(lists[8]), borrowed_list(lists[9])
    A[0] = X  # the borrowed list's own item: the kept list keeps its stand-in
    fuse = first_layer_fused(W[0].shape[0], W[0].shape[1])
    ready = 0  # 1: Z[0] and A[1] hold this iteration's first layer (first_layer_step)
    traded = False
    done, status = count, FINISHED
    for t in range(count):
        i = start + t
        forward(Z, A, Wc, bc, acts, ready)
        if i % cost_every == 0:
            J = cross_entropy(A[L], Y, eps, exact)
            costs[i // cost_every] = J
            if not math.isfinite(J):
                done, status = t, DIVERGED
                break
        ready = 0
        if FUSED_FIRST and fuse and t + 1 < count:
            ready = 1
        backward(dW, db, dZ, dA, Wc, Z, A, Y, acts, ready)
        ok = update(Ws, bs, Wc, bc, dW, db, zeros, learning_rate, ready)
        if FUSED_FIRST and ready == 1:
            first_layer_step(Z[0], A[1], Ws[0], bs[0], Wc[0], bc[0], dZ[0], X, learning_rate, acts[0])
            if acts[0] & ~EXACT == SOFTMAX:  # a one-layer network's softmax output (forward's own step)
                softmax(A[1], acts[0] & EXACT != 0)
            if not (all_finite(Ws[0], zeros) and all_finite(bs[0], zeros)):
                ok = False
        if not ok:
            done, status = t, DIVERGED
            break
        Wc, Ws = Ws, Wc
        bc, bs = bs, bc
        traded = not traded
    if traded:
        swap_items(W, W_next)
        swap_items(b, b_next)
    return done, status


# --------------------------------------------------------------------------
# The second course's training: mini-batches, optimizers, decay, L2.


def forward_dropout(Z, A, W, b, acts, keep, seed, stream):
    """forward() with inverted dropout on the outputs of the layers l with
    keep[l] < 1 (the hidden ones; keep[L-1] is 1): the mask of (seed, stream + l)."""
    for l in range(len(W)):
        linear_activation_forward(Z[l], A[l + 1], A[l], W[l], b[l], acts[l])
        if acts[l] & ~EXACT == SOFTMAX:
            softmax(A[l + 1], acts[l] & EXACT != 0)
        if keep[l] < 1.0:
            dropout(A[l + 1], seed, stream + l, keep[l])


def backward_dropout(dW, db, dZ, dA, W, Z, A, Y, acts, keep, seed, stream):
    """backward() after forward_dropout: dA of a dropped-out layer gets the
    forward's mask again, scaled alike (the course's dA = dA * D / keep_prob),
    and g' comes from Z there (A was scaled by the mask)."""
    L = len(W)
    gradient_step(dZ[L - 1], A[L], Y, 1.0)
    for l in range(L - 1, -1, -1):
        weight_gradients(dW[l], db[l], dZ[l], A[l])
        if l > 0:
            input_gradient(dA[l - 1], dZ[l], W[l])
            if keep[l - 1] < 1.0:
                dropout(dA[l - 1], seed, stream + l - 1, keep[l - 1])
                activation_backward(dZ[l - 1], dA[l - 1], Z[l - 1], acts[l - 1])
            else:
                activation_backward_from_output(dZ[l - 1], dA[l - 1], Z[l - 1], A[l], acts[l - 1])


def optimizer_update(W_next, b_next, W, b, dW, db, V_W, V_b, S_W, S_b, learning_rate,
                     kind, beta1, beta2, epsilon, t):
    """update() with the optimizer ``kind`` (kernels.options: GD, MOMENTUM,
    RMSPROP, ADAM): its moments V, S (lists like W, b; empty arrays where the
    optimizer needs none) are updated in place, the step goes into the spare
    arrays. Returns whether every new value is finite (optimizer_step's own
    test, as it writes them)."""
    ok = True
    for l in range(len(W)):
        ok_W = optimizer_step(W_next[l], V_W[l], S_W[l], W[l], dW[l], learning_rate, kind, beta1, beta2, epsilon, t)
        ok_b = optimizer_step(b_next[l], V_b[l], S_b[l], b[l], db[l], learning_rate, kind, beta1, beta2, epsilon, t)
        if not (ok_W and ok_b):
            ok = False
    return ok


def fit_epochs(costs, W, b, W_next, b_next, V_W, V_b, S_W, S_b, Z, A, dZ, dA, Zl, Al, dZl, dAl, dW, db,
               X, Y, Yb, Ybl, perm, Xs, acts, start, count, cost_every, first_epoch, first_step,
               learning_rate, decay_rate, decay_every, kind, beta1, beta2, epsilon, l2, eps, exact,
               copy_batches, shuffle, seed, Zv, Av, Yv, val_costs, W_best, b_best, track, validate, early,
               patience, tol, keep, dropping):
    """Epochs start, ..., start + count - 1 of mini-batch training, the course's:
    each epoch a permutation of the columns (``shuffle``: drawn from (seed,
    epoch), kernels.loops.draws; else the columns in order), then consecutive
    batches of b = Yb.shape[1] examples, the last one smaller (its buffers Zl,
    Al, dZl, dAl, Ybl) when b does not divide m. Each batch: forward, cost,
    backward (+ (l2 / b_batch) W with L2), one optimizer step.

    When ``Xs`` has X's shape (every mini-batch fit: see model.fit), each
    epoch first gathers all of X's columns in the epoch's order into it, the course's
    ``shuffled_X = X[:, permutation]``, batch after batch (gather_batches),
    and each batch's A[0] is its block there (batch_of), not a copy: one
    pass over X an epoch uses every cache line it reads, where a batch's own
    gather from X reads a whole line for each of its cells. The batches are
    the same either way.

    With ``dropping``, inverted dropout on the layers l with keep[l] < 1, the
    masks drawn from (seed, step * L + l) (forward_dropout, backward_dropout).

    Epoch e (counted from first_epoch over the network's epochs with this
    optimizer) uses learning_rate / (1 + decay_rate * floor(e / decay_every)).
    costs[i // cost_every] = the mean over the epoch's examples of the loss of
    each batch's forward pass (before its update; no L2 term) at epochs i that
    are multiples of cost_every. A[0] / Al[0] are the buffers for the batch's
    copies of X's columns (when ``copy_batches``, and Xs is empty; else A[0]
    is X itself: one batch, in order).

    With ``validate``, the validation cost (forward on Av[0] = Xv, Yv) after
    each epoch's updates goes into val_costs at the epochs costs are recorded.
    With ``early`` too, an epoch whose validation cost is below track[0] - tol
    is the new best (track = [best cost, epochs without improvement, best
    epoch], carried across chunks; its parameters copied to W_best, b_best);
    after ``patience`` epochs in a row without one, the best parameters are
    restored and the fit stops.

    Returns (done, status, steps): epochs completed, FINISHED, DIVERGED (W, b
    then hold the last finite parameters), STOPPED or X_NOT_FINITE (the
    gather of X met NaN or infinity; no step of that epoch made), and the
    optimizer's step count.
    """
    L = len(W)
    m = X.shape[1]
    bsize = Yb.shape[1]
    whole = copy_batches and Xs.shape[1] == m  # one gather an epoch (see above)
    # the current and spare parameters, as in fit_chunk; every list the
    # steps take items from as borrowed views (borrowed_list)
    Wc, bc, Ws, bs = borrowed_list(W), borrowed_list(b), borrowed_list(W_next), borrowed_list(b_next)
    V_W, V_b, S_W, S_b = borrowed_list(V_W), borrowed_list(V_b), borrowed_list(S_W), borrowed_list(S_b)
    Z, A, dZ, dA = borrowed_list(Z), borrowed_list(A), borrowed_list(dZ), borrowed_list(dA)
    Zl, Al, dZl, dAl = borrowed_list(Zl), borrowed_list(Al), borrowed_list(dZl), borrowed_list(dAl)
    dW, db = borrowed_list(dW), borrowed_list(db)
    traded = False
    t = first_step
    done, status = count, FINISHED
    for k in range(count):
        e = start + k
        epoch = first_epoch + e
        if shuffle:
            permutation(perm, seed, epoch)
        if whole and not gather_batches(Xs, X, perm, bsize, 0, X.shape[0]):
            done, status = k, X_NOT_FINITE  # fit tests X here: see model.fit
            break
        lr = learning_rate / (1.0 + decay_rate * (epoch // decay_every))
        total = 0.0
        for j0 in range(0, m, bsize):
            mb = min(bsize, m - j0)
            Zx, Ax, dZx, dAx, Yx = (Z, A, dZ, dA, Yb) if mb == bsize else (Zl, Al, dZl, dAl, Ybl)
            if copy_batches:
                if whole:
                    Ax[0] = batch_of(Xs, j0, mb)  # the borrowed list's own item: A's stays
                else:
                    gather_columns(Ax[0], X, perm[j0:j0 + mb])
                gather_columns(Yx, Y, perm[j0:j0 + mb])
            if dropping:
                forward_dropout(Zx, Ax, Wc, bc, acts, keep, seed, t * L)
            else:
                forward(Zx, Ax, Wc, bc, acts, 0)
            J = cross_entropy(Ax[L], Yx, eps, exact)
            if not math.isfinite(J):
                done, status = k, DIVERGED
                break
            total += J * mb
            if dropping:
                backward_dropout(dW, db, dZx, dAx, Wc, Zx, Ax, Yx, acts, keep, seed, t * L)
            else:
                backward(dW, db, dZx, dAx, Wc, Zx, Ax, Yx, acts, 0)
            if l2 > 0.0:
                for l in range(L):  # dW += (l2 / mb) W
                    gradient_step(dW[l], dW[l], Wc[l], -l2 / mb)
            t += 1
            if not optimizer_update(Ws, bs, Wc, bc, dW, db, V_W, V_b, S_W, S_b, lr,
                                    kind, beta1, beta2, epsilon, t):
                done, status = k, DIVERGED
                break
            Wc, Ws = Ws, Wc
            bc, bs = bs, bc
            traded = not traded
        if status == DIVERGED:
            break
        if e % cost_every == 0:
            costs[e // cost_every] = total / m
        if validate:
            forward(Zv, Av, Wc, bc, acts, 0)
            Jv = cross_entropy(Av[L], Yv, eps, exact)
            if e % cost_every == 0:
                val_costs[e // cost_every] = Jv
            if early:
                if Jv < track[0] - tol:
                    track[0], track[1], track[2] = Jv, 0.0, epoch
                    for l in range(L):  # a copy: out = param - 0 * param (finite: guarded)
                        gradient_step(W_best[l], Wc[l], Wc[l], 0.0)
                        gradient_step(b_best[l], bc[l], bc[l], 0.0)
                else:
                    track[1] += 1.0
                    if track[1] >= patience:
                        for l in range(L):
                            gradient_step(Wc[l], W_best[l], W_best[l], 0.0)
                            gradient_step(bc[l], b_best[l], b_best[l], 0.0)
                        done, status = k + 1, STOPPED
                        break
    if traded:
        swap_items(W, W_next)
        swap_items(b, b_next)
    return done, status, t
