"""The course's lessons, each measured live on this machine (``jitloops lesson``).

A lesson is a module here with ``SUMMARY`` (one line) and ``run(backend=None)
-> Lesson`` (see ``jitloops.lessons.common``): it computes every figure when it
runs (tables, sentences and the numbers a test compares with the course's
published ones) and can draw its picture. ``LESSONS`` maps the names, which
are the contract, to their modules.
"""

import importlib

# name -> module (under jitloops.lessons)
LESSONS = {
    "vectorization": "vectorization",
    "loop-ladder": "loop_ladder",
    "logistic-loop": "logistic_loop",
    "nonlinearity": "nonlinearity",
    "hidden-units": "hidden_units",
    "symmetry": "symmetry",
    "initialization": "initialization",
    "vanishing-gradients": "vanishing_gradients",
    "gradient-check": "gradient_check",
    "optimizers": "optimizers",
}


def module(name):
    """The lesson's module; ValueError naming the lessons for an unknown name."""
    if name not in LESSONS:
        raise ValueError(f"unknown lesson {name!r}; the lessons: {', '.join(LESSONS)} "
                         f"(`jitloops lesson` lists them with a line each)")
    return importlib.import_module(f"{__name__}.{LESSONS[name]}")


def available():
    """[(name, summary)] of the lessons, in the course's order."""
    return [(name, module(name).SUMMARY) for name in LESSONS]


def run(name, backend=None, **kwargs):
    """Run lesson ``name`` on ``backend`` (None: the lesson's default); returns its Lesson."""
    return module(name).run(backend=backend, **kwargs)
