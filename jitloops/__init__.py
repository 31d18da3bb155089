"""jitloops, the application: the ``jitloops`` command line and the benchmark harness.

The two libraries are ``kernels`` (the compute: one formulation per backend)
and ``model`` (the networks trained on any backend); this package only uses
them: ``jitloops.cli`` (the command and its subcommand table),
``jitloops.compare`` (the main job), ``jitloops.train``, ``jitloops.simd``
(the SIMD lesson), ``jitloops.bench`` (the harness that ``jitloops bench``
and the pytest-benchmark suites in ``benchmarks/`` share) and
``jitloops.timing`` (their timers).
"""
