"""The optimization notebook reproduced (issues 14 and 15): Adam on its moons
with its mini-batches reaches its published accuracy after its 5000 epochs,
and the ``optimizers`` lesson gives every accuracy the notebook published.

The published figures are the course's Optimization_methods notebook's
outputs (Course 2, week 2, W2A1/Optimization_methods.ipynb, as kept with its
outputs in the public repository aniket414/improving-deep-neural-network):
the costs it prints every 1000 epochs (6 decimals) and its accuracies.
"""

import numpy as np
import pytest

from jitloops import lessons
from jitloops.lessons.recipes import notebook_model, optimization_network
from model import datasets

# "Cost after epoch 0: 0.702166 ... 4000: 0.136066", "Accuracy: 0.9433333333333334"
ADAM_COSTS = [0.702166, 0.167845, 0.141316, 0.138788, 0.136066]
ADAM_ACCURACY = 0.9433333333333334
# Every model() run of the notebook, in its order: (label in the lesson, accuracy printed)
PUBLISHED = {
    "gd": 0.7166666666666667,
    "momentum": 0.7166666666666667,
    "adam": 0.9433333333333334,
    "gd, update_lr": 0.6533333333333333,
    "gd, schedule": 0.9433333333333334,
    "momentum, schedule": 0.9533333333333334,
    "adam, schedule": 0.94,
}
# The notebook prints 6 decimals: half a unit of the last one.
PRINTED = 5e-7


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_adam_on_the_notebooks_moons_reaches_its_published_accuracy(backend):
    """[2, 5, 2, 1] relu, He init (seed 3), Adam lr 0.0007, batches of 64 in the
    notebook's order, 5000 epochs: its printed costs and its accuracy. numba
    differs from numpy only by rounding (its loops sum in another order), far
    below the printed digits."""
    X, Y = datasets.moons()
    net = optimization_network(backend)
    costs = notebook_model(net, X, Y, "adam", 0.0007, epochs=5000)
    np.testing.assert_allclose(costs[::1000], ADAM_COSTS, rtol=0, atol=PRINTED)
    assert net.accuracy(X, Y) == ADAM_ACCURACY


@pytest.fixture(scope="module")
def lesson():
    return lessons.run("optimizers", backend="numba")


def test_the_optimizers_lesson_gives_every_published_accuracy(lesson):
    got = {label: lesson.figures[f"accuracy[{label}]"] for label in PUBLISHED}
    assert got == PUBLISHED
    assert [row[0] for row in lesson.rows] == list(PUBLISHED)
    np.testing.assert_allclose(lesson.figures["costs[adam]"], ADAM_COSTS, rtol=0, atol=PRINTED)
    # the sentences carry the figures computed in this run
    assert f"{PUBLISHED['adam']:.1%}" in lesson.text and f"{PUBLISHED['momentum, schedule']:.1%}" in lesson.text


def test_the_optimizers_lesson_draws_its_picture(lesson, tmp_path):
    pytest.importorskip("matplotlib")
    path = lesson.plot(tmp_path / "optimizers.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_notebook_recipe_checks_its_decay():
    X, Y = datasets.moons()
    with pytest.raises(ValueError, match="decay must be one of"):
        notebook_model(optimization_network("numpy"), X, Y, "gd", 0.1, epochs=1, decay="cosine")
