"""``gradient-check``: the course's gradient checking notebook (second course,
week 1). Backpropagation's gradients against two-sided differences
(J(theta + eps) - J(theta - eps)) / (2 eps): first on J = theta x, then on the
notebook's three-layer network with its deliberately planted backprop bugs
(dW2 twice too large, db1 four times), then with them fixed, then on
jitloops' own networks (``model.gradient_check``).

Shapes (the course's): the notebook's test case X (4, 3), Y (1, 3); W1 (5, 4),
b1 (5, 1), W2 (3, 5), b2 (3, 1), W3 (1, 3), b3 (1, 1): 47 parameters.
Relative difference = ||g - g_approx|| / (||g|| + ||g_approx||); the notebook
trusts backprop below 2e-7.

The notebook's forward and (buggy) backward are NumPy code; they are the
lesson's material, written here as the notebook has them. Its two-sided check
works on a function of a parameter dict, which ``model.gradient_check`` (on a
NeuralNetwork) does not take, so ``two_sided_difference`` below is the
notebook's gradient_check_n on functions; it also gives each parameter's own
difference, which points at the bug. Runs in about a second.
"""

import numpy as np

from model import NeuralNetwork, datasets, gradient_check

from .common import Lesson, backend_or_default

SUMMARY = "two-sided differences against backprop: the course's planted backprop bugs caught, jitloops passes"

EPSILON = 1e-7  # the notebook's epsilon
THRESHOLD = 2e-7  # the notebook: "There is a mistake in the backward propagation!" above it
KEYS = ("W1", "b1", "W2", "b2", "W3", "b3")  # the notebook's dictionary_to_vector order


def test_case():
    """The notebook's gradient_check_n_test_case (testCases.py): np.random.seed(1)
    then x (4, 3), W1, b1, W2, b2, W3, b3 drawn in that order; y = [1, 1, 0].
    Returns X (4, 3), Y (1, 3) and the parameters dict."""
    rng = np.random.RandomState(1)  # the notebook's np.random.seed(1), without touching the global state
    X = rng.randn(4, 3)
    shapes = {"W1": (5, 4), "b1": (5, 1), "W2": (3, 5), "b2": (3, 1), "W3": (1, 3), "b3": (1, 1)}
    parameters = {k: rng.randn(*shapes[k]) for k in KEYS}
    return X, np.array([[1, 1, 0]]), parameters


def forward_propagation_n(X, Y, parameters):
    """The notebook's LINEAR -> RELU -> LINEAR -> RELU -> LINEAR -> SIGMOID and
    its cost. X (4, m), Y (1, m). Returns (cost, cache)."""
    m = X.shape[1]
    W1, b1, W2, b2, W3, b3 = (parameters[k] for k in KEYS)
    Z1 = np.dot(W1, X) + b1
    A1 = np.maximum(0, Z1)
    Z2 = np.dot(W2, A1) + b2
    A2 = np.maximum(0, Z2)
    Z3 = np.dot(W3, A2) + b3
    A3 = 1 / (1 + np.exp(-Z3))  # the notebook's sigmoid, as written (its Z3 stays small here)
    log_probs = np.multiply(-np.log(A3), Y) + np.multiply(-np.log(1 - A3), 1 - Y)
    cost = 1. / m * np.sum(log_probs)
    return cost, (Z1, A1, W1, b1, Z2, A2, W2, b2, Z3, A3, W3, b3)


def backward_propagation_n(X, Y, cache, planted_bugs=True):
    """The notebook's backward_propagation_n. With ``planted_bugs`` (as the
    notebook hands it out) dW2 is multiplied by 2 and db1 has 4. / m for 1. / m;
    without, the fix its hint ("check dW2 and db1") leads to. Returns the
    gradients dict {"dW1": (5, 4), ..., "db3": (1, 1)}."""
    m = X.shape[1]
    (Z1, A1, W1, b1, Z2, A2, W2, b2, Z3, A3, W3, b3) = cache
    dZ3 = A3 - Y
    dW3 = 1. / m * np.dot(dZ3, A2.T)
    db3 = 1. / m * np.sum(dZ3, axis=1, keepdims=True)
    dA2 = np.dot(W3.T, dZ3)
    dZ2 = np.multiply(dA2, np.int64(A2 > 0))
    dW2 = 1. / m * np.dot(dZ2, A1.T) * 2 if planted_bugs else 1. / m * np.dot(dZ2, A1.T)
    db2 = 1. / m * np.sum(dZ2, axis=1, keepdims=True)
    dA1 = np.dot(W2.T, dZ2)
    dZ1 = np.multiply(dA1, np.int64(A1 > 0))
    dW1 = 1. / m * np.dot(dZ1, X.T)
    db1 = (4. if planted_bugs else 1.) / m * np.sum(dZ1, axis=1, keepdims=True)
    return {"dW1": dW1, "db1": db1, "dW2": dW2, "db2": db2, "dW3": dW3, "db3": db3}


def _difference(g, g_approx):
    denominator = np.linalg.norm(g) + np.linalg.norm(g_approx)
    return float(np.linalg.norm(g - g_approx) / denominator) if denominator else 0.0


def two_sided_difference(cost, parameters, gradients, epsilon=EPSILON):
    """The notebook's gradient_check_n on functions: every parameter theta_i
    (in the dict's order, each array flattened in C order as dictionary_to_vector
    does) shifted by +-epsilon, g_approx[i] = (cost(theta+) - cost(theta-)) / (2 eps).

    cost: parameters dict -> float; parameters: {"W1": array, ...};
    gradients: {"dW1": array of W1's shape, ...}.
    Returns a dict: "difference" (the notebook's, over all parameters), "g" and
    "g_approx" (1-D, all parameters), per parameter name "own" (its own
    relative difference) and "part" (||g_k - g_approx_k|| over the whole
    denominator: the parts add up in quadrature to "difference").
    """
    g, g_approx = {}, {}
    for key, value in parameters.items():
        base = np.asarray(value, dtype=np.float64)
        g[key] = np.asarray(gradients["d" + key], dtype=np.float64).ravel()
        approx = g_approx[key] = np.empty(base.size)
        for i in range(base.size):
            J = []
            for step in (epsilon, -epsilon):
                shifted = base.copy().ravel()
                shifted[i] = shifted[i] + step
                J.append(cost({**parameters, key: shifted.reshape(base.shape)}))
            approx[i] = (J[0] - J[1]) / (2 * epsilon)
    g_all, approx_all = np.concatenate(list(g.values())), np.concatenate(list(g_approx.values()))
    denominator = np.linalg.norm(g_all) + np.linalg.norm(approx_all)
    return {"difference": _difference(g_all, approx_all), "g": g_all, "g_approx": approx_all,
            "own": {k: _difference(g[k], g_approx[k]) for k in g},
            "part": {k: float(np.linalg.norm(g[k] - g_approx[k]) / denominator) if denominator else 0.0
                     for k in g}}


def run(backend=None):
    """The notebook's checks, then ``model.gradient_check`` on jitloops'
    networks on numpy and ``backend``."""
    backend = backend_or_default(backend)
    figures, rows = {}, []

    # 1-D: J(theta) = theta x, dJ/dtheta = x (the notebook's x = 3, theta = 4)
    x = 3.0
    one_d = two_sided_difference(lambda p: float(np.dot(p["theta"], x)), {"theta": np.array(4.0)},
                                 {"dtheta": np.array(x)})["difference"]
    figures["1-D difference"] = one_d
    rows.append(["J = theta x (x = 3, theta = 4)", "-", 1, one_d])

    X, Y, parameters = test_case()
    cost = lambda p: forward_propagation_n(X, Y, p)[0]  # noqa: E731
    _, cache = forward_propagation_n(X, Y, parameters)
    checks = {}
    for label, bugs in (("planted bugs", True), ("fixed", False)):
        grads = backward_propagation_n(X, Y, cache, planted_bugs=bugs)
        check = checks[label] = two_sided_difference(cost, parameters, grads)
        figures[f"difference[{label}]"] = check["difference"]
        figures[f"own differences[{label}]"] = check["own"]
        figures[f"parts[{label}]"] = check["part"]
        rows.append([f"notebook backward_propagation_n, {label}", "numpy (its code)", check["g"].size,
                     check["difference"]])

    # jitloops' own networks: the test case's network, and the initialization notebook's on its circles
    Xc, Yc = datasets.circles(300, 0.05, seed=1)
    nets = [("[4, 5, 3, 1] relu, the test case", [4, 5, 3, 1], X, Y, parameters, 0.0),
            ("[2, 10, 5, 1] relu, He, circles", [2, 10, 5, 1], Xc, Yc, None, 0.0),
            ("[2, 10, 5, 1] relu, He, circles, L2 0.7", [2, 10, 5, 1], Xc, Yc, None, 0.7)]
    for name in dict.fromkeys(("numpy", backend)):
        for label, dims, Xn, Yn, params, l2 in nets:
            net = NeuralNetwork(dims, activations="relu", backend=name, init="he", seed=3)
            if params is not None:
                net.set_parameters(params)
            difference = gradient_check(net, Xn, Yn, epsilon=EPSILON, l2=l2)
            figures[f"jitloops difference[{label}, {name}]"] = difference
            rows.append([f"jitloops {label}", name, sum(v.size for v in net.parameters.values()), difference])
    for row in rows:
        row.append("pass" if row[3] < THRESHOLD else "MISTAKE")
    text = _sentences(figures, backend)

    def draw(plt):
        fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.2))
        approx, g_ok, g_bug = checks["fixed"]["g_approx"], checks["fixed"]["g"], checks["planted bugs"]["g"]
        ax0.plot(approx, approx, color="0.6", lw=1, label="g = g_approx")
        ax0.scatter(approx, g_ok, s=28, facecolors="none", edgecolors="tab:green", label="fixed backprop")
        ax0.scatter(approx, g_bug, s=10, color="tab:red", label="planted bugs")
        ax0.set_xlabel("two-sided difference g_approx")
        ax0.set_ylabel("backprop g")
        ax0.set_title(f"the notebook's {g_ok.size} parameters, one point each", fontsize=9)
        ax0.legend(fontsize=7)
        keys = list(KEYS)
        pos = np.arange(len(keys))
        for shift, label, colour in ((-0.2, "planted bugs", "tab:red"), (0.2, "fixed", "tab:green")):
            part = figures[f"parts[{label}]"]
            ax1.bar(pos + shift, [max(part[k], 1e-17) for k in keys], width=0.4, color=colour, label=label)
        ax1.axhline(THRESHOLD, color="k", ls="--", lw=1, label=f"threshold {THRESHOLD:g}")
        ax1.set_yscale("log")
        ax1.set_xticks(pos)
        ax1.set_xticklabels(keys)
        ax1.set_ylabel("||g_k - g_approx_k|| / (||g|| + ||g_approx||)")
        ax1.set_title("each parameter's part of the difference", fontsize=9)
        ax1.legend(fontsize=7)
        fig.suptitle(f"Gradient checking: the notebook's planted bugs (eps = {EPSILON:g})")
        return fig

    return Lesson("gradient-check", f"Gradient checking: backprop against two-sided differences, eps = {EPSILON:g}, "
                  f"threshold {THRESHOLD:g}", ["check", "backend", "parameters", "difference", "verdict"],
                  rows, text, figures, draw)


def _sentences(f, backend):
    bug, part = f["own differences[planted bugs]"], f["parts[planted bugs]"]
    others = max(v for k, v in part.items() if k not in ("W2", "b1"))
    jit = [v for k, v in f.items() if k.startswith("jitloops difference")]
    return "\n".join([
        f"J = theta x: {f['1-D difference']:.3g}, rounding only. The notebook's backward_propagation_n with its "
        f"planted bugs: {f['difference[planted bugs]']:.10g}, far above {THRESHOLD:g}.",
        f"Parameter by parameter the bugs show where they are: dW2 (x 2) alone differs by {bug['W2']:.4f} "
        f"(|2g - g| / 3|g| = 1/3) and db1 (4/m) by {bug['b1']:.4f} (3/5); of the whole difference dW2 makes "
        f"{part['W2']:.3f} and db1 {part['b1']:.3f}, every other parameter at most {others:.2g}.",
        f"Fixed, the whole check gives {f['difference[fixed]']:.10g}: what is left is rounding, J's last bits "
        f"divided by 2 eps.",
        f"jitloops' own backprop, on numpy and {backend}: every difference between {min(jit):.2g} and "
        f"{max(jit):.2g}, below {THRESHOLD:g} (model.gradient_check, float64).",
    ])
