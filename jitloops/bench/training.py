"""The training theme: fit iterations of the course's networks, backend by backend.

Planar [2, 4, 1] m = 400, logistic regression [12288, 1] m = 209, deep
[12288, 20, 7, 5, 1] m = 209, MNIST-like [784, 128, 64, 1] m = 1024 (and
m = 60000 in the full sweep); and epochs of mini-batch (64) Adam training on
a digits-sized [64, 128, 64, 1] m = 1347 and an MNIST-like softmax
[784, 128, 64, 10] m = 8192 network
(whole epochs a round: each contender's loop over its batches; five of the
digits-sized network's, whose epoch of 22 steps is short next to a fit
call's own work). PyTorch races too where it is installed: on
the CPU ("torch", autograd), and on the GPU ("torch-cuda", the reference for
the cuda backend) where it sees one. Every contender's parameters are checked
against the numpy backend's after the same iterations from the same seed.
"""

import numpy as np

import kernels

from .cases import PY_MAX_ROUND_S, PY_SECONDS_PER_ITER, SWEEPS, Case, assert_close, bound_of, default_backends
from .machine import numba_threads, torch_cuda_device, torch_version

# name -> (layer dims, hidden activation, m, learning rate, iterations per round, sweeps).
# A round is one fit(iterations=K) call, K large enough that fit's own per-call
# work (checking X, allocating its buffers) is small next to K iterations; the
# tables divide by K. The smoke sweep runs 2 per round (it checks, not times).
TRAINING = {
    "planar": ([2, 4, 1], "tanh", 400, 1.2, 100, SWEEPS),
    "logistic": ([12288, 1], None, 209, 0.005, 10, SWEEPS),
    "deep": ([12288, 20, 7, 5, 1], "relu", 209, 0.0075, 10, SWEEPS),
    "mnist": ([784, 128, 64, 1], "relu", 1024, 0.1, 5, SWEEPS),
    "mnist60k": ([784, 128, 64, 1], "relu", 60000, 0.1, 2, ("full",)),
    "adam64-digits": ([64, 128, 64, 1], "relu", 1347, 0.001, 5, SWEEPS),
    "adam64-mnist": ([784, 128, 64, 10], "relu", 8192, 0.001, 1, ("default", "full")),  # softmax: 10 classes
}
# float32 mini-batch Adam, checked against numpy after an epoch: every step
# divides by sqrt(s) + 1e-8, which amplifies the implementations' rounding
# differences wherever a gradient is near zero (s tiny), over ~100 steps;
# measured 6e-3 of the largest weight against PyTorch (MKL's summation order).
ADAM_FLOAT32_TOL = 2e-2


def _check_tol(name, dtype):
    return ADAM_FLOAT32_TOL if name in FIT_OPTIONS and np.dtype(dtype) == np.float32 else None


# fit's options per problem (the others: full-batch gradient descent)
FIT_OPTIONS = {
    "adam64-digits": dict(batch_size=64, optimizer="adam", seed=0),
    "adam64-mnist": dict(batch_size=64, optimizer="adam", seed=0),
}
SMOKE_PER_ROUND = 2
# Problems under this many flops an iteration keep their full rounds in the
# quick sweep (a round of them takes about a millisecond).
QUICK_FULL_FLOPS = 1e6


def program_variant(name, contender, dtype):
    """The compiled variant ("numba" or "parallel") whose training program a
    compiled contender runs on problem ``name``: a network whose shapes
    reach no loop big enough for threads runs the serial program on
    "parallel" too (kernels.cpu.compiled_variant; LogisticRegression always
    compiles every plan). The same rule as model's NeuralNetwork._program_for.
    A mini-batch fit that a team of threads shares (model.team) runs the
    serial variant's kernels and drivers, one member a thread: "numba"."""
    from kernels.cpu import compiled_variant
    from kernels.loops.plans import ALL_PLANS, SMALL_PLANS, plan_tier, plans_needed
    from model.team_run import team_parts
    dims, act, m, *_ = TRAINING[name]
    if act is None:
        return compiled_variant(contender, ALL_PLANS)[0]
    size = min(FIT_OPTIONS.get(name, {}).get("batch_size") or m, m)
    if size < m and team_parts(dims, size, False):
        return "numba"
    ms = [size] + ([m % size] if m % size else [])
    plans = plan_tier(SMALL_PLANS | plans_needed(dims, ms, np.dtype(dtype).itemsize))
    return compiled_variant(contender, plans)[0]


def training_data(name, dtype, seed=1):
    dims, _, m, *_ = TRAINING[name]
    if name == "planar":
        try:
            from model import datasets
            X, Y = datasets.planar()
            return np.ascontiguousarray(X, dtype=dtype), np.ascontiguousarray(Y, dtype=dtype)
        except Exception:
            pass
    rng = np.random.default_rng(seed)
    X = rng.random((dims[0], m)).astype(dtype)          # pixel-like, in [0, 1)
    if dims[-1] > 1:  # a softmax output: labels 0..C-1 from C random directions
        w = rng.standard_normal((dims[-1], dims[0]))
        return X, np.argmax(w @ (X - 0.5), axis=0).astype(dtype).reshape(1, m)
    w = rng.standard_normal(dims[0])
    Y = ((w @ (X - 0.5)) > 0).astype(dtype).reshape(1, m)  # learnable labels
    return X, Y


def training_flops(dims, m):
    """Multiply-adds x 2 of an iteration's matrix products: forward (W A), and
    backward's dW and dA_prev, except the first layer's dA_prev (dX), which
    no contender computes (X needs no gradient)."""
    mac = sum(dims[l] * dims[l - 1] for l in range(1, len(dims)))
    return 2 * (3 * mac - dims[1] * dims[0]) * m


def _new_net(name, backend, dtype, seed=3):
    import model
    dims, act, *_ = TRAINING[name]
    if act is None:  # starts at zero: no seed
        return model.LogisticRegression(dims[0], backend=backend, dtype=dtype)
    return model.NeuralNetwork(dims, activations=act or "relu", backend=backend, seed=seed, dtype=dtype,
                               output="softmax" if dims[-1] > 1 else "sigmoid")


def _params_scale(params):
    """The largest parameter magnitude of a network: errors of parameters
    that are still tiny (biases after a few steps) are measured against it."""
    return max(float(np.max(np.abs(np.asarray(v)))) for v in params.values()) or 1.0


def _training_make(name, contender, dtype, per_round):
    dims, act, m, lr, _, _ = TRAINING[name]

    def make():
        X, Y = training_data(name, dtype)
        if contender in ("torch", "torch-cuda"):
            return _torch_training(name, X, Y, dtype, per_round,
                                   device="cuda" if contender == "torch-cuda" else "cpu")
        net = _new_net(name, contender, dtype)

        def run():
            net.fit(X, Y, per_round, lr, **FIT_OPTIONS.get(name, {}))
            kernels.get_backend(contender).synchronize()

        run()  # compile / load from cache

        def check():
            if contender == "numpy":
                assert np.isfinite(net.cost(X, Y))  # the reference itself
                return
            # fresh nets from one seed, the same iterations: they agree with numpy's
            got = _new_net(name, contender, dtype).fit(X, Y, per_round, lr, **FIT_OPTIONS.get(name, {}))
            want = _new_net(name, "numpy", dtype).fit(X, Y, per_round, lr, **FIT_OPTIONS.get(name, {}))
            gp, wp = got.parameters, want.parameters
            assert set(gp) == set(wp)
            for key in wp:
                assert_close(f"training {name} {contender} {dtype} {key}", gp[key], wp[key], dtype,
                             scale=_params_scale(wp), tol=_check_tol(name, dtype))
        return run, check
    return make


def _torch_training(name, X, Y, dtype, per_round, device="cpu"):
    """PyTorch doing the same step on ``device`` ("cpu", or "cuda": the GPU
    reference for the cuda backend): forward, binary cross-entropy, autograd
    backward, in-place gradient step; parameters from the numpy backend's
    initialization, so ``check`` compares against it. On the GPU the data is
    copied there once, before timing, as the cuda backend's fit does, and
    each round ends with a synchronize (GPU work is queued)."""
    import torch
    import torch.nn.functional as F

    dims, act, m, lr, _, _ = TRAINING[name]
    L = len(dims) - 1
    tdtype = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
    init = _new_net(name, "numpy", dtype).parameters
    if "w" in init:  # LogisticRegression's {"w": (n_x, 1), "b": float}
        init = {"W1": init["w"].T.copy(), "b1": np.full((1, 1), init["b"], dtype)}
    g = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "linear": lambda z: z,
         "leaky_relu": lambda z: F.leaky_relu(z, 0.01), None: torch.relu}[act]
    tX, tY = torch.from_numpy(X).to(device), torch.from_numpy(Y).to(device)

    def sync():
        if device != "cpu":
            torch.cuda.synchronize()

    def fresh():
        return [torch.tensor(init[f"{w}{l}"], dtype=tdtype, device=device, requires_grad=True)
                for l in range(1, L + 1) for w in "Wb"]

    options = FIT_OPTIONS.get(name, {})
    batch = options.get("batch_size") or m

    def gradients(params, Xb, Yb):
        A = Xb
        for l in range(L - 1):
            A = g(params[2 * l] @ A + params[2 * l + 1])
        Z = params[2 * L - 2] @ A + params[2 * L - 1]
        if dims[-1] > 1:  # softmax + categorical cross-entropy on the labels
            cost = F.cross_entropy(Z.T, Yb[0].long())
        else:
            cost = F.binary_cross_entropy(torch.sigmoid(Z), Yb)   # -(1/m) sum(Y log A + (1-Y) log(1-A))
        return torch.autograd.grad(cost, params)

    def step(params, state):
        if not options:  # full-batch gradient descent
            grads = gradients(params, tX, tY)
            with torch.no_grad():
                for p, dp in zip(params, grads):
                    p -= lr * dp
            return
        # one epoch of mini-batch Adam, the batches of model's fit (kernels' permutation)
        perm = np.empty(m, dtype=np.int64)
        kernels.get_backend("numpy").kernels.permutation(perm, options["seed"], state["epoch"])
        tperm = torch.from_numpy(perm).to(device)
        for j0 in range(0, m, batch):
            idx = tperm[j0:j0 + batch]
            grads = gradients(params, tX[:, idx], tY[:, idx])
            state["t"] += 1
            t = state["t"]
            with torch.no_grad():
                for p, dp, v, s in zip(params, grads, state["v"], state["s"]):
                    v.mul_(0.9).add_(dp, alpha=0.1)
                    s.mul_(0.999).addcmul_(dp, dp, value=0.001)
                    p -= lr * (v / (1 - 0.9 ** t)) / (torch.sqrt(s / (1 - 0.999 ** t)) + 1e-8)
        state["epoch"] += 1

    def new_state(params):
        return dict(epoch=0, t=0, v=[torch.zeros_like(p) for p in params], s=[torch.zeros_like(p) for p in params])

    params = fresh()
    state = new_state(params)

    def run():
        for _ in range(per_round):
            step(params, state)
        sync()

    run()

    def check():
        mine = fresh()
        mine_state = new_state(mine)
        for _ in range(per_round):
            step(mine, mine_state)
        sync()
        want = _new_net(name, "numpy", dtype).fit(X, Y, per_round, lr, **options).parameters
        if "w" in want:
            want = {"W1": want["w"].T, "b1": np.full((1, 1), want["b"])}
        for l in range(1, L + 1):
            for j, w in enumerate("Wb"):
                assert_close(f"training {name} torch ({device}) {dtype} {w}{l}",
                             mine[2 * (l - 1) + j].detach().cpu().numpy(), want[f"{w}{l}"], dtype,
                             scale=_params_scale(want), tol=_check_tol(name, dtype))
    return run, check


def training_cases(sweep="default", backends=None, dtypes=("float64", "float32"), names=None,
                   with_torch=None):
    """The training theme: network x dtype x contender (the backends, and
    torch where ``with_torch`` (default: where installed): on the CPU, and
    "torch-cuda" on the GPU where PyTorch sees one)."""
    backends = backends or default_backends()
    if with_torch is None:
        with_torch = torch_version() is not None
    torch_contenders = ["torch"] + (["torch-cuda"] if torch_cuda_device() else []) if with_torch else []
    nthreads = numba_threads()
    cases = []
    for name in names or TRAINING:
        dims, act, m, lr, per_round, sweeps = TRAINING[name]
        if sweep not in sweeps:
            continue
        for dtype in dtypes:
            # the cuda backend trains full-batch gradient descent only (its raw
            # kernels have no optimizer step or batch gather): no mini-batch rows
            contenders = [c for c in backends if not (c == "cuda" and name in FIT_OPTIONS)] + torch_contenders
            for c in contenders:
                # quick: a fifth of the iterations, except where an iteration is tiny
                # (planar): there fit's own per-call cost would dominate the row
                quick = per_round if training_flops(dims, m) < QUICK_FULL_FLOPS else max(2, per_round // 5)
                k = {"smoke": SMOKE_PER_ROUND, "quick": quick}.get(sweep, per_round)
                if c == "python":  # the interpreter: a tenth of the iterations, if under a second
                    k = max(1, k // 10)
                    if training_flops(dims, m) * k / 2 * PY_SECONDS_PER_ITER > PY_MAX_ROUND_S:
                        continue
                flops = training_flops(dims, m) * k
                per_round_c = k
                cases.append(Case(
                    theme="training", group=f"training {name} {dims} m={m} {dtype} ({k} "
                                           f"{'epochs' if name in FIT_OPTIONS else 'iterations'}/round)",
                    contender=c,
                    make=_training_make(name, c, dtype, per_round_c), size=m, dtype=dtype, flops=flops,
                    bound=bound_of(c, "compute"), threads=1 if c in ("python", "numba") else nthreads,
                    blas_threads=1 if c == "parallel" else None, per_round=per_round_c,
                    label=f"{name} {dims} m={m}", id=f"{name}-{dtype}-{c}"))
    return cases
