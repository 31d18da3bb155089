"""pytest-benchmark suite: the ops theme (cases from ``jitloops.bench.ops_cases``).

Groups are per problem and size, so a report reads contender against contender.
"""

from jitloops import bench


def cases(sweep):
    return bench.ops_cases(sweep)


def test_ops(case, run_case):
    run_case(case)
