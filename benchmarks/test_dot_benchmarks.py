"""pytest-benchmark suite: the dot theme (cases from ``jitloops.bench.dot_cases``).

Groups are per problem and size, so a report reads contender against contender.
"""

from jitloops import bench


def cases(sweep):
    return bench.dot_cases(sweep, with_torch=True)  # torch skips where absent


def test_dot(case, run_case):
    run_case(case)
