"""Mini-batch epochs on every core: a team of threads shares each step.

``model.training.fit_epochs`` runs a batch's step on one thread; the parallel
backend could only split its matrix products, and a batch of 64 gives each
product too little work to pay for a parallel loop's start (README, "Threads
for mid-sized products"). Here a team of members, each a thread running the
compiled ``team_member`` over a whole chunk of epochs, shares every step by
the *units* of each hidden layer, as model-parallel training shares a layer
between devices: part q of P owns rows splits[l, q] : splits[l, q + 1] of
layer l + 1 (rows of W[l], b[l], Z[l], A[l+1], dZ[l], dA[l]; row ranges of
C arrays are C-contiguous views, so the serial kernels run on them as they
are). A step is a run of phases, each a meeting of the team:

1. **gather**: part q copies its share of the batch's rows of X into A[0]
   (none where the epoch's batches are gathered once an epoch, as
   fit_epochs does: each member's A[0] is then its batch's block there);
2. **forward** of each hidden layer l: part q computes its rows of Z[l] and
   A[l+1] from all of A[l]; the first of these phases has one more item,
   the batch's columns of Y;
3. **output** (one item, while the others wait): the output layer's
   forward, softmax, the cost and dZ = AL - Y;
4. **backward** of each hidden layer l, last first: part q forms its rows
   of dA[l] (the last hidden layer's from the output layer's W and dZ, a
   few rows another core wrote rather than all its rows of dA; below, the
   sum of the shares of the layer above: part 0's written into dA[l]
   itself, the others' into their own buffers dAp), takes dZ, dW and db of its
   rows, its share W[l][rows]^T dZ[l][rows] of dA[l-1], and the optimizer's
   step on its rows (written into the spare parameters: the layer's W is
   read first). The first of these phases has one more item, the output
   layer's dW, db and step, which nothing in backward reads: whoever is
   free first takes it, and the output item, which the others wait for, is
   the forward pass alone.

No gradient is summed across the cores but dA's shares, and no phase waits
for an update: 2L meetings a step (2L - 1 with the epoch's batches
gathered). Once an epoch, one item records the epoch's cost, the
validation cost and early stopping, as fit_epochs does; where X is
gathered once an epoch (every mini-batch fit: model.fit), P items first
gather the epoch's batches (their rows of X), each testing what it copies
for NaN and infinity: a part that meets one halts the team before any step
(X_NOT_FINITE; fit raises check_X's error).

The members synchronise with ``kernels.loops.team`` (taken items, no
barrier that can hang; ``model.team_run.fit_epochs_team`` runs them on
the team's threads: run_members), so the parameters after a step do not
depend on which thread did what, or on how many threads ran: only on P (dA summed from P shares
rounds differently from one sum; within the tolerances of the agreement
tests). Dropout is not shared out (its masks are drawn per batch): fit
runs such fits with fit_epochs.

Shape key as in model.training, for L layers (L >= 2: a hidden layer to share):
    Z, A, dZ, dA, Yb        a full batch's buffers (fit_epochs'); Zl, ..., Ybl the last, smaller batch's
    dAp[q - 1][l]           part q's share of dA[l] (n[l+1], batch), q = 1 .. P-1, l < L - 2; dApl alike
    Z[q][l], dW[q][l]       part q's rows of Z[l], dW[l] (l < L - 1), each part's apart (team_run.part_rows);
                            Z[0][L-1], dW[0][L-1] the output layer's; Zl alike
    splits (L - 1, P + 1)   int64: the parts' first rows in each hidden layer (team_run.row_splits)
    jlog (steps an epoch, 1) float64: each batch's loss sum, b J
"""

import math

from kernels.loops import (activation_backward_from_output, batch_of, cross_entropy, gather_batches,
                           gather_columns, gradient_step, input_gradient, linear_activation_forward, optimizer_step,
                           permutation, softmax, weight_gradients)
from kernels.loops.team import finish, halt, item_to_try, join, meet, take, wait
from kernels.loops.views import borrowed, borrowed_list, borrowed_lists, flat
from kernels.options import EXACT, SOFTMAX

from .training import DIVERGED, STOPPED, X_NOT_FINITE, forward

# team_member's lists, as team_run.fit_epochs_team passes them: two typed
# lists (one argument each, where Numba's dispatch of two dozen lists took
# about as long as a digits step) of the lists named here, in this order.
LISTS = ("W", "b", "W_next", "b_next", "V_W", "V_b", "S_W", "S_b", "A", "dZ", "dA", "Al", "dZl", "dAl", "db", "Zv",
         "Av", "W_best", "b_best")
NESTED = ("Z", "Zl", "dAp", "dApl", "dW")

def team_gather(A0, X, order, q, P):
    """Part q's share of the batch's copy: rows q n / P .. (q + 1) n / P of
    A0 (n[0], b) from columns ``order`` of X."""
    n = A0.shape[0]
    r0, r1 = q * n // P, (q + 1) * n // P
    if r1 > r0:
        gather_columns(A0[r0:r1], X[r0:r1], order)


def moment_rows(M, r0, r1):
    """Rows r0:r1 of an optimizer's moment, or its empty stand-in (an
    optimizer without that moment: see fit_epochs)."""
    return M[r0:r1] if M.shape[0] > 0 else M


def team_step(Ws, bs, Wc, bc, g, db, V_W, V_b, S_W, S_b, l, r0, r1, mb, l2, lr, kind, beta1, beta2,
              epsilon, t):
    """Rows r0:r1 of layer l, their gradient g (r1 - r0, n[l]): g += (l2 /
    mb) W, then the optimizer's step t into Ws, bs (fit_epochs' arithmetic,
    cell for cell). Returns whether the new cells are finite (optimizer_step's
    own test, as it writes them)."""
    if l2 > 0.0:
        gradient_step(g, g, Wc[l][r0:r1], -l2 / mb)
    out, out_b = Ws[l][r0:r1], bs[l][r0:r1]
    ok_W = optimizer_step(out, moment_rows(V_W[l], r0, r1), moment_rows(S_W[l], r0, r1), Wc[l][r0:r1], g, lr, kind,
                          beta1, beta2, epsilon, t)
    ok_b = optimizer_step(out_b, moment_rows(V_b[l], r0, r1), moment_rows(S_b[l], r0, r1), bc[l][r0:r1],
                          db[l][r0:r1], lr, kind, beta1, beta2, epsilon, t)
    return ok_W and ok_b


def team_forward(Zx, Ax, Wc, bc, splits, acts, l, q):
    """Part q's rows of hidden layer l's Z[l], A[l+1] = g(W[l] A[l] + b[l])."""
    r0, r1 = splits[l, q], splits[l, q + 1]
    if r1 > r0:
        linear_activation_forward(Zx[q][l], Ax[l + 1][r0:r1], Ax[l], Wc[l][r0:r1],
                                  bc[l][r0:r1], acts[l])


def team_output(Zx, Ax, dZx, Yx, Wc, bc, acts, eps, exact):
    """The output layer's forward pass, one item: Z, AL (softmax included),
    the batch's cost J and dZ = AL - Y, from the batch's Yx (gathered by
    an item of the first forward phase). Returns b J, or NaN or an infinity
    where J is not finite (dZ then not formed)."""
    L = len(Wc)
    l = L - 1
    linear_activation_forward(Zx[l], Ax[L], Ax[l], Wc[l], bc[l], acts[l])
    if acts[l] & ~EXACT == SOFTMAX:
        softmax(Ax[L], acts[l] & EXACT != 0)
    mb = Yx.shape[1]
    J = cross_entropy(Ax[L], Yx, eps, exact)
    if math.isfinite(J):
        gradient_step(dZx[l], Ax[L], Yx, 1.0)
    return J * mb


def team_output_step(Ax, dZx, Ws, bs, Wc, bc, dW, db, V_W, V_b, S_W, S_b, l2, lr, kind, beta1, beta2,
                     epsilon, t):
    """The output layer's dW, db and the optimizer's step t (into the spare
    parameters), one item of the first backward phase: nothing in backward
    reads them, so the members do not wait for them after the output item
    (whoever is free takes it). Returns whether the new cells are finite."""
    L = len(Wc)
    l = L - 1
    weight_gradients(dW[l], db[l], dZx[l], Ax[l])
    return team_step(Ws, bs, Wc, bc, dW[l], db, V_W, V_b, S_W, S_b, l, 0, Wc[l].shape[0], dZx[l].shape[1],
                     l2, lr, kind, beta1, beta2, epsilon, t)


def output_rows(dA, dZ, W, r0):
    """Rows r0 : r0 + len(dA) of the last hidden layer's dA = W^T dZ, the
    output layer's W (n[L], n[L-1]) and dZ (n[L], b): each part forms its
    own rows from dZ (n[L] rows, few) rather than reading them from the
    output item's core (Cores apart). dA (rows, b) out."""
    zero = dA.dtype.type(0.0)
    for p in range(dA.shape[0]):
        da = dA[p]
        for j in range(da.shape[0]):
            da[j] = zero
        for i in range(W.shape[0]):
            w = W[i, r0 + p]
            dz = dZ[i]
            for j in range(da.shape[0]):
                da[j] += w * dz[j]


def team_backward(Zx, Ax, dZx, dAx, dAq, Ws, bs, Wc, bc, dW, db, V_W, V_b, S_W, S_b, splits, acts, l, q,
                  l2, lr, kind, beta1, beta2, epsilon, t):
    """Part q's rows of hidden layer l in backward: dA[l] (from the output
    layer's dZ for the last hidden layer, output_rows; below it, its share
    from the layer above's part 0, plus the other parts' dAq[p - 1][l], in
    order of p), dZ, dW, db, its share of dA[l-1] (into dA[l-1] itself for part
    0, dAq[q - 1][l - 1] for the others) and the optimizer's step t.
    Returns whether the new cells are finite."""
    r0, r1 = splits[l, q], splits[l, q + 1]
    if r1 == r0:
        return True
    L = len(Wc)
    dA = dAx[l][r0:r1]
    if l == L - 2:
        output_rows(dA, dZx[L - 1], Wc[L - 1], r0)
    else:
        above = splits[l + 1]
        for p in range(1, len(dAq) + 1):
            if above[p + 1] > above[p]:  # part p has rows there: a share
                share = dAq[p - 1][l][r0:r1]
                gradient_step(dA, dA, share, -1.0)  # dA += share
    dZ = dZx[l][r0:r1]
    activation_backward_from_output(dZ, dA, Zx[q][l], Ax[l + 1][r0:r1], acts[l])
    weight_gradients(dW[q][l], db[l][r0:r1], dZ, Ax[l])
    if l > 0:  # dA of the input layer is never needed
        input_gradient(dAx[l - 1] if q == 0 else dAq[q - 1][l - 1], dZ, Wc[l][r0:r1])
    return team_step(Ws, bs, Wc, bc, dW[q][l], db, V_W, V_b, S_W, S_b, l, r0, r1, dZ.shape[1], l2, lr, kind,
                     beta1, beta2, epsilon, t)


def team_member(sync, costs, lists, nested, Yb, Ybl, splits, jlog, X, Y, perm, Xs, acts, start, count,
                cost_every, first_epoch, first_step, learning_rate, decay_rate, decay_every, kind, beta1, beta2,
                epsilon, l2, eps, exact, shuffle, seed, Yv, val_costs, track, validate, early, patience, tol):
    """One member's run through the chunk's phases (see the module
    docstring; team_run.fit_epochs_team's arguments, its lists in two:
    ``lists`` those of LISTS, ``nested`` those of NESTED, in that order).
    Every member keeps its own copy of the loop's state (epoch, step, which
    list holds the current parameters), all alike; only taken items write
    shared arrays."""
    # LISTS' order
    W, b, W_next, b_next = borrowed_list(lists[0]), borrowed_list(lists[1]), borrowed_list(lists[2]), \
        borrowed_list(lists[3])
    V_W, V_b, S_W, S_b = borrowed_list(lists[4]), borrowed_list(lists[5]), borrowed_list(lists[6]), \
        borrowed_list(lists[7])
    A, dZ, dA = borrowed_list(lists[8]), borrowed_list(lists[9]), borrowed_list(lists[10])
    Al, dZl, dAl = borrowed_list(lists[11]), borrowed_list(lists[12]), borrowed_list(lists[13])
    db, Zv, Av = borrowed_list(lists[14]), borrowed_list(lists[15]), borrowed_list(lists[16])
    W_best, b_best = borrowed_list(lists[17]), borrowed_list(lists[18])
    # NESTED's order
    Z, Zl, dAp = borrowed_lists(nested[0]), borrowed_lists(nested[1]), borrowed_lists(nested[2])
    dApl, dW = borrowed_lists(nested[3]), borrowed_lists(nested[4])
    X, Y, Xs, perm = borrowed(X), borrowed(Y), borrowed(Xs), borrowed(perm)
    splits, jlog, acts = borrowed(splits), borrowed(jlog), borrowed(acts)
    m = X.shape[1]
    L = len(W)
    P = splits.shape[1] - 1
    bsize = Yb.shape[1]
    whole = Xs.shape[1] == m  # X gathered once an epoch, batch after batch (fit_epochs)
    Wc, bc, Ws, bs = W, b, W_next, b_next
    traded = False
    t = first_step
    me = join(sync)
    base = 0
    for k in range(count):
        e = start + k
        epoch = first_epoch + e
        if shuffle:
            end = base + 1
            if take(sync, 0, end):
                permutation(perm, seed, epoch)
                finish(sync)
            wait(sync, end)
            base = end
        if whole:
            end = base + P
            for j in range(P):
                q = item_to_try(me, j, P)
                if take(sync, q, end):
                    if not gather_batches(Xs, X, perm, bsize, q * X.shape[0] // P, (q + 1) * X.shape[0] // P):
                        halt(sync, end, X_NOT_FINITE, k, t, traded)
                    finish(sync)
            base = end
            if meet(sync, end):
                return
        lr = learning_rate / (1.0 + decay_rate * (epoch // decay_every))
        for s in range(jlog.shape[0]):
            j0 = s * bsize
            full = m - j0 >= bsize
            mb = bsize if full else m - j0
            Zx, Ax, dZx, dAx, Yx, dAq = (Z, A, dZ, dA, Yb, dAp) if full else (Zl, Al, dZl, dAl, Ybl, dApl)
            order = perm[j0:j0 + mb]  # the batch's columns of X and Y
            if whole:
                Ax[0] = batch_of(Xs, j0, mb)  # this member's own list's item
            else:
                end = base + P
                for j in range(P):
                    q = item_to_try(me, j, P)
                    if take(sync, q, end):
                        team_gather(Ax[0], X, order, q, P)
                        finish(sync)
                wait(sync, end)
                base = end
            for l in range(L - 1):
                items = P + 1 if l == 0 else P  # the first phase's last item: the batch's Y
                end = base + items
                for j in range(items):
                    q = item_to_try(me, j, items)
                    if take(sync, q, end):
                        if q == P:
                            gather_columns(Yx, Y, order)
                        else:
                            team_forward(Zx, Ax, Wc, bc, splits, acts, l, q)
                        finish(sync)
                wait(sync, end)
                base = end
            end = base + 1
            if take(sync, 0, end):
                wJ = team_output(Zx[0], Ax, dZx, Yx, Wc, bc, acts, eps, exact)
                jlog[s, 0] = wJ
                if not math.isfinite(wJ):
                    halt(sync, end, DIVERGED, k, t, traded)
                finish(sync)
            base = end
            if meet(sync, end):
                return
            for l in range(L - 2, -1, -1):
                items = P + 1 if l == L - 2 else P  # the first phase's last item: the output layer's step
                end = base + items
                for j in range(items):
                    q = item_to_try(me, j, items)
                    if take(sync, q, end):
                        if q == P:
                            ok = team_output_step(Ax, dZx, Ws, bs, Wc, bc, dW[0], db, V_W, V_b, S_W, S_b, l2,
                                                  lr, kind, beta1, beta2, epsilon, t + 1)
                        else:
                            ok = team_backward(Zx, Ax, dZx, dAx, dAq, Ws, bs, Wc, bc, dW, db, V_W, V_b, S_W, S_b,
                                               splits, acts, l, q, l2, lr, kind, beta1, beta2, epsilon, t + 1)
                        if not ok:
                            halt(sync, end, DIVERGED, k, t + 1, traded)
                        finish(sync)
                base = end
                if meet(sync, end):
                    return
            t += 1
            Wc, Ws = Ws, Wc
            bc, bs = bs, bc
            traded = not traded
        end = base + 1
        if take(sync, 0, end):
            if team_epoch_end(costs, Wc, bc, jlog, m, e, cost_every, Zv, Av, Yv, val_costs, W_best, b_best,
                              track, validate, early, patience, tol, epoch, acts, eps, exact):
                halt(sync, end, STOPPED, k + 1, t, traded)
            finish(sync)
        base = end
        if meet(sync, end):
            return


def team_epoch_end(costs, Wc, bc, jlog, m, e, cost_every, Zv, Av, Yv, val_costs, W_best, b_best, track,
                   validate, early, patience, tol, epoch, acts, eps, exact):
    """The epoch's cost (the mean of its examples' losses, fit_epochs'),
    the validation cost and early stopping. Returns whether to stop."""
    L = len(Wc)
    if e % cost_every == 0:
        total = 0.0
        for s in range(jlog.shape[0]):
            for q in range(jlog.shape[1]):
                total += jlog[s, q]
        costs[e // cost_every] = total / m
    if not validate:
        return False
    forward(Zv, Av, Wc, bc, acts, 0)
    Jv = cross_entropy(Av[L], Yv, eps, exact)
    if e % cost_every == 0:
        val_costs[e // cost_every] = Jv
    if not early:
        return False
    if Jv < track[0] - tol:
        track[0], track[1], track[2] = Jv, 0.0, epoch
        for l in range(L):
            flat(W_best[l])[:] = flat(Wc[l])
            flat(b_best[l])[:] = flat(bc[l])
        return False
    track[1] += 1.0
    if track[1] >= patience:
        for l in range(L):
            flat(Wc[l])[:] = flat(W_best[l])
            flat(bc[l])[:] = flat(b_best[l])
        return True
    return False
