"""Mini-batch epochs on every core: a team of threads shares each step.

``model.training.fit_epochs`` runs a batch's step on one thread; the parallel
backend could only split its matrix products, and a batch of 64 gives each
product too little work to pay for a parallel loop's start (README, "Threads
for mid-sized products"). Here a team of members, each a thread running the
compiled ``team_member`` over a whole chunk of epochs, shares every step by
the columns of the batch, as data-parallel training shares a batch between
devices:

1. **parts**: the batch's columns split into P parts (``offsets``); part p
   gathers its columns, runs forward, its cost and backward into its own
   dW_p, db_p (the mean over its w_p examples), each with the serial
   kernels;
2. **update blocks**: the parameters' cells in blocks (``blocks``); a block
   sums the parts' gradients, dW = sum_p (w_p / b) dW_p (+ (l2 / b) W), and
   takes the optimizer's step on its cells;
3. once an epoch, one item records the epoch's cost, the validation cost
   and early stopping, as fit_epochs does.

The members synchronise with ``kernels.loops.team`` (claimed items, no
barrier that can hang; ``fit_epochs_team`` starts and joins their
threads), so the parameters after a step do not depend on which thread
did what, or on how many threads ran: only on P (a batch
summed in P parts rounds differently from one summed whole; within the
tolerances of the agreement tests). Dropout is not shared out (its masks
are drawn per batch): fit runs such fits with fit_epochs.

Shape key as in model.training; per part p (lists of P items):
    Zf[p], Af[p], dZf[p], dAf[p], Yf[p]   a full batch's part: (n[l], w_p), A[0] (n[0], w_p)
    Zt[p], ...                            the last, smaller batch's part
    dWp[p], dbp[p]                        the part's gradients, like W, b
    offsets_full, offsets_last (P + 1,)   the parts' first columns in the batch
    blocks (Q, 4) int64                   update blocks: layer, 0 (W) or 1 (b), first and end cell
    jlog (steps an epoch, P) float64      the parts' loss sums, w_p J_p
"""

import math
import threading

import numba
import numpy as np

from kernels.loops import all_finite, cross_entropy, gather_columns, optimizer_step, permutation
from kernels.loops.team import STOP, SYNC_SIZE, WHY, claim, finish, halt, meet, reset, wait
from kernels.loops.views import flat

from .training import DIVERGED, FINISHED, STOPPED, backward, forward, swap_items

# Columns a part of a batch has at least (narrower ones do not keep the
# micro-kernel's tiles full), and the multiply-adds of a batch's forward
# pass from which sharing a step pays for the team's synchronisation.
MIN_PART = 16
TEAM_WORK = 1 << 18
# Cells of an update block: enough to outweigh claiming it, small enough
# that the largest layer's blocks spread over the members.
UPDATE_BLOCK = 4096
# Rows of X a member gathers at once in an epoch's shuffle of a large X.
GATHER_ROWS = 32


def team_part(W, b, Zq, Aq, dZq, dAq, Yq, dWq, dbq, X, Y, x_order, y_order, c0, acts, eps, exact):
    """One part's share of a step: its columns x_order[c0 : c0 + w] of X and
    y_order[c0 : c0 + w] of Y gathered, forward, its mean loss J, backward
    into dWq, dbq. Returns w J (NaN/inf when the loss is)."""
    w = Yq.shape[1]
    if w == 0:
        return 0.0
    gather_columns(Aq[0], X, x_order[c0:c0 + w])
    gather_columns(Yq, Y, y_order[c0:c0 + w])
    forward(Zq, Aq, W, b, acts)
    J = cross_entropy(Aq[len(W)], Yq, eps, exact)
    if math.isfinite(J):
        backward(dWq, dbq, dZq, dAq, W, Zq, Aq, Yq, acts)
    return J * w


def team_update(Ws, bs, Wc, bc, dW, db, dWp, dbp, V_W, V_b, S_W, S_b, zeros, block, offsets, l2, lr,
                kind, beta1, beta2, epsilon, t):
    """One update block: the parts' gradients summed into dW (or db), the
    L2 term, the optimizer's step into Ws (or bs). Returns whether the new
    cells are finite."""
    l, is_b, a, z = block[0], block[1], block[2], block[3]
    P = len(dWp)
    size = offsets[P]
    if is_b:
        g, out, p, v, s = flat(db[l])[a:z], flat(bs[l])[a:z], flat(bc[l])[a:z], flat(V_b[l]), flat(S_b[l])
    else:
        g, out, p, v, s = flat(dW[l])[a:z], flat(Ws[l])[a:z], flat(Wc[l])[a:z], flat(V_W[l]), flat(S_W[l])
    first = True
    for q in range(P):
        w = offsets[q + 1] - offsets[q]
        if w == 0:  # an empty part of a small last batch: no gradient of its own
            continue
        part = flat(dbp[q][l])[a:z] if is_b else flat(dWp[q][l])[a:z]  # g itself for q = 0
        scale = g.dtype.type(w / size)
        if first:
            for j in range(g.shape[0]):
                g[j] = scale * part[j]
            first = False
        else:
            for j in range(g.shape[0]):
                g[j] += scale * part[j]
    if l2 > 0.0 and not is_b:  # dW += (l2 / b) W
        decay = g.dtype.type(l2 / size)
        for j in range(g.shape[0]):
            g[j] += decay * p[j]
    # the moments: their block's cells, or the empty arrays of an optimizer without them
    vb = v[a:z] if v.shape[0] > 0 else v
    sb = s[a:z] if s.shape[0] > 0 else s
    optimizer_step(out, vb, sb, p, g, lr, kind, beta1, beta2, epsilon, t)
    return all_finite(out, zeros)


def team_member(sync, costs, W, b, W_next, b_next, V_W, V_b, S_W, S_b, Zf, Af, dZf, dAf, Yf, Zt, At, dZt, dAt,
                Yt, dWp, dbp, offsets_full, offsets_last, blocks, jlog, dW, db, zeros, X, Y, perm, Xs, iota,
                acts, start, count, cost_every, first_epoch, first_step, learning_rate, decay_rate, decay_every, kind,
                beta1, beta2, epsilon, l2, eps, exact, shuffle, seed, Zv, Av, Yv, val_costs, W_best, b_best,
                track, validate, early, patience, tol):
    """One member's run through the chunk's phases (see the module
    docstring; fit_epochs_team's arguments). Every member keeps its own
    copy of the loop's state (epoch, step, which list holds the current
    parameters), all alike; only claimed items write shared arrays."""
    m = X.shape[1]
    P = len(Zf)
    bsize = offsets_full[P]
    whole = Xs.shape[1] == m  # X gathered once an epoch, in its order (fit_epochs)
    source = Xs if whole else X
    Wc, bc, Ws, bs = W, b, W_next, b_next
    traded = False
    t = first_step
    base = 0
    for k in range(count):
        e = start + k
        epoch = first_epoch + e
        if shuffle:
            end = base + 1
            while claim(sync, base, end) >= 0:
                permutation(perm, seed, epoch)
                finish(sync)
            wait(sync, end)
            base = end
        if whole:
            end = base + (X.shape[0] + GATHER_ROWS - 1) // GATHER_ROWS
            while True:
                r = claim(sync, base, end)
                if r < 0:
                    break
                for i in range(r * GATHER_ROWS, min(r * GATHER_ROWS + GATHER_ROWS, X.shape[0])):
                    row, x = Xs[i], X[i]
                    for c in range(m):
                        row[c] = x[perm[c]]
                finish(sync)
            wait(sync, end)
            base = end
        lr = learning_rate / (1.0 + decay_rate * (epoch // decay_every))
        for s in range(jlog.shape[0]):
            j0 = s * bsize
            full = m - j0 >= bsize
            offsets = offsets_full if full else offsets_last
            order = perm[j0:j0 + offsets[P]]  # the batch's columns of X and Y
            x_order = iota[j0:j0 + offsets[P]] if whole else order  # ... and of source
            end = base + P
            while True:
                q = claim(sync, base, end)
                if q < 0:
                    break
                if full:
                    wJ = team_part(Wc, bc, Zf[q], Af[q], dZf[q], dAf[q], Yf[q], dWp[q], dbp[q], source, Y,
                                   x_order, order, offsets[q], acts, eps, exact)
                else:
                    wJ = team_part(Wc, bc, Zt[q], At[q], dZt[q], dAt[q], Yt[q], dWp[q], dbp[q], source, Y,
                                   x_order, order, offsets[q], acts, eps, exact)
                jlog[s, q] = wJ
                if not math.isfinite(wJ):
                    halt(sync, end, DIVERGED, k, t, traded)
                finish(sync)
            base = end
            if meet(sync, end):
                return
            t += 1
            end = base + blocks.shape[0]
            while True:
                u = claim(sync, base, end)
                if u < 0:
                    break
                if not team_update(Ws, bs, Wc, bc, dW, db, dWp, dbp, V_W, V_b, S_W, S_b, zeros, blocks[u],
                                   offsets, l2, lr, kind, beta1, beta2, epsilon, t):
                    halt(sync, end, DIVERGED, k, t, traded)
                finish(sync)
            base = end
            if meet(sync, end):
                return
            Wc, Ws = Ws, Wc
            bc, bs = bs, bc
            traded = not traded
        end = base + 1
        while claim(sync, base, end) >= 0:
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
    forward(Zv, Av, Wc, bc, acts)
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


def fit_epochs_team(member, sync, costs, W, b, W_next, b_next, V_W, V_b, S_W, S_b, Zf, Af, dZf, dAf, Yf, Zt, At,
                    dZt, dAt, Yt, dWp, dbp, offsets_full, offsets_last, blocks, jlog, dW, db, zeros, X, Y, perm, Xs,
                    iota, acts, start, count, cost_every, first_epoch, first_step, learning_rate, decay_rate,
                    decay_every, kind, beta1, beta2, epsilon, l2, eps, exact, shuffle, seed, Zv, Av, Yv, val_costs,
                    W_best, b_best, track, validate, early, patience, tol, members):
    """model.training.fit_epochs (the same arguments, the same returns:
    done, status, steps), each step shared by a team of ``members`` members
    (the module docstring): ``member`` is team_member compiled (nogil), run
    by this thread and by members - 1 threads of our own, at most one a
    thread Numba runs (numba.set_num_threads); a thread with more runs
    them one after the other, each finding the phases done. The team's
    buffers and ``sync`` (kernels.loops.team.SYNC_SIZE,) int64 come first.
    Always batches copied from X (fit runs one batch in order with
    fit_epochs).

    Why threads of our own and not a parallel loop: a ``prange`` over the
    members makes Numba optimize team_member's whole call tree twice more
    (in the loop's body and in the function around it), 2/3 of the team's
    cold compile; the members need nothing of a threading layer."""
    args = (sync, costs, W, b, W_next, b_next, V_W, V_b, S_W, S_b, Zf, Af, dZf, dAf, Yf, Zt, At, dZt, dAt, Yt,
            dWp, dbp, offsets_full, offsets_last, blocks, jlog, dW, db, zeros, X, Y, perm, Xs, iota, acts, start,
            count, cost_every, first_epoch, first_step, learning_rate, decay_rate, decay_every, kind, beta1, beta2,
            epsilon, l2, eps, exact, shuffle, seed, Zv, Av, Yv, val_costs, W_best, b_best, track, validate, early,
            patience, tol)
    reset(sync)
    run_members(member, args, members, min(members, numba.get_num_threads()))
    if sync[STOP] >= 0:  # an item halted the team: halt's record
        status, done, steps, traded = int(sync[WHY]), int(sync[WHY + 1]), int(sync[WHY + 2]), sync[WHY + 3] != 0
    else:
        steps_per_chunk = count * jlog.shape[0]
        done, status, steps, traded = count, FINISHED, first_step + steps_per_chunk, steps_per_chunk % 2 == 1
    if traded:
        swap_items(W, W_next)
        swap_items(b, b_next)
    return done, status, steps


def run_members(member, args, members, threads):
    """member(*args) ``members`` times on ``threads`` threads (this one and
    threads - 1 started here, all joined before it returns, whatever
    happens: none outlives the call, so a fork after it copies no team)."""
    errors = []

    def run(first):
        try:
            for _ in range(first, members, threads):
                member(*args)
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(i,), name=f"jitloops-team-{i}", daemon=True)
               for i in range(1, max(threads, 1))]
    try:
        for w in workers:
            w.start()
        run(0)
    finally:
        for w in workers:
            w.join()
    if errors:
        raise errors[0]


def team_members():
    """How many members a team has: one per thread Numba runs (numba.set_num_threads)."""
    return numba.get_num_threads()


def team_parts(dims, size, dropping, threads=None):
    """How many parts a team splits batches of ``size`` examples into for a
    network of layer sizes ``dims``: one a thread, each at least MIN_PART
    columns; 0 where a team does not pay (under TEAM_WORK multiply-adds a
    batch, one thread, or dropout)."""
    threads = team_members() if threads is None else threads
    work = size * sum(dims[l] * dims[l - 1] for l in range(1, len(dims)))
    parts = min(threads, size // MIN_PART)
    return parts if parts >= 2 and work >= TEAM_WORK and not dropping else 0


def _offsets(size, parts):
    """The parts' first columns: as even as can be, (parts + 1,) int64."""
    return np.array([q * size // parts for q in range(parts + 1)], dtype=np.int64)


def team_arrays(net, X, Y, size, last, parts, dW, db):
    """fit_epochs_team's own arguments for ``net`` (a NeuralNetwork) training
    on X (n[0], m), Y with batches of ``size`` (the last of ``last``
    examples, 0 if none): the parts' buffers, gradients, offsets, update
    blocks, loss log and sync, as a tuple in the order it takes them. The
    first part's gradients are dW, db themselves (program lists): the
    update blocks scale them in place, one array fewer to stream."""
    p, ops, dt = net.program, net._ops, net.dtype

    def buffers(offsets):
        lists = [[], [], [], [], []]
        for q in range(parts):
            w = int(offsets[q + 1] - offsets[q])
            for into, item in zip(lists, net._batch_buffers(X, w, True) + (ops.empty((Y.shape[0], w), dt),)):
                into.append(item)
        return [numba.typed.List(items) for items in lists[:4]] + [p.list(lists[4])]

    full_offsets = _offsets(size, parts)
    last_offsets = _offsets(last, parts) if last else full_offsets
    full = buffers(full_offsets)
    tail = buffers(last_offsets) if last else full
    dWp = numba.typed.List([dW] + [p.list([ops.empty(w.shape, dt) for w in net._W]) for _ in range(1, parts)])
    dbp = numba.typed.List([db] + [p.list([ops.empty(v.shape, dt) for v in net._b]) for _ in range(1, parts)])
    blocks = [(l, is_b, a, min(a + UPDATE_BLOCK, x.size))
              for l, (w, v) in enumerate(zip(net._W, net._b)) for is_b, x in ((0, w), (1, v))
              for a in range(0, x.size, UPDATE_BLOCK)]
    steps = -(-X.shape[1] // size)
    return (*full, *tail, dWp, dbp, full_offsets, last_offsets, np.array(blocks, dtype=np.int64),
            np.zeros((steps, parts)), np.zeros(SYNC_SIZE, dtype=np.int64))
