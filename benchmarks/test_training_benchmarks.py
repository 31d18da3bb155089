"""pytest-benchmark suite: the training theme (cases from ``jitloops.bench.training_cases``).

Groups are per problem and size, so a report reads contender against contender.
"""

from jitloops import bench


def cases(sweep):
    return bench.training_cases(sweep, with_torch=True)  # torch skips where absent


def test_training(case, run_case):
    run_case(case)
