"""``jitloops bench``: race the backends, theme by theme, and say how fast is fast.

Three themes, each a list of ``Case``s (one contender on one problem); the
pytest-benchmark suites in ``benchmarks/`` run the very same cases:

- **ops** (``ops``): every op of the op API x backend, over a size sweep
  whose working sets fit L1, L2, L3 and main memory, float64 and float32;
- **training** (``training``): fit iterations of the course's networks, with
  PyTorch as an optional contender;
- **dot** (``dot``): the course's 1,000,000-element dot product.

The modules, in the order a run uses them: ``machine`` (CPU, caches, clock,
BLAS, threads, peaks), ``cases`` (what a case is, the checks against NumPy),
the three themes, ``runner`` (timing, one case after another or a group's
contenders in turns), ``startup`` (compile time, cache-load time and fit's
memory, in fresh processes), ``report`` (tables, goals, JSON, plot) and
``command`` (the CLI's options and run). This package re-exports what the
suites, the tests and Python users need.
"""

from .cases import (GPU_CONTENDERS, PY_MAX_ROUND_S, PY_SECONDS_PER_ITER, SWEEPS, THEMES, Case, assert_close,
                    default_backends)
from .command import add_arguments, all_cases, run
from .dot import DOT_CONTENDERS, DOT_N, dot_cases
from .machine import (CACHES, blas_threads, compute_peak, cpu_info, handoff_ns, level_of, machine_info,
                      measure_bandwidth, set_threads, torch_cuda_device, torch_version, usable_cpus)
from .ops import OPS, OPS_LAYER, OPS_SIZES, op_sizes, ops_cases
from .report import (format_report, format_table, goal_ratios, goals_table, header_lines, memory_table, plot,
                     startup_table, theme_table, write_json)
from .runner import BLAS_SETTLE_S, ROUNDS, Skip, add_metrics, prepare, run_cases, time_case, time_group
from .startup import STARTUP_SCRIPT, fit_memory, model_available, startup_times
from .training import TRAINING, training_cases, training_data, training_flops

__all__ = [
    "Case", "Skip", "THEMES", "SWEEPS", "GPU_CONTENDERS", "PY_SECONDS_PER_ITER", "PY_MAX_ROUND_S",
    "BLAS_SETTLE_S", "ROUNDS", "CACHES", "OPS", "OPS_LAYER", "OPS_SIZES", "TRAINING", "DOT_N", "DOT_CONTENDERS",
    "STARTUP_SCRIPT",
    # cases
    "all_cases", "ops_cases", "training_cases", "dot_cases", "default_backends", "op_sizes", "training_data",
    "training_flops", "assert_close",
    # the machine and its threads
    "machine_info", "cpu_info", "level_of", "compute_peak", "measure_bandwidth", "set_threads", "blas_threads",
    "torch_version", "torch_cuda_device", "handoff_ns", "usable_cpus",
    # running and reporting
    "prepare", "time_case", "time_group", "run_cases", "add_metrics", "startup_times", "fit_memory",
    "model_available", "header_lines", "format_table", "theme_table", "startup_table", "memory_table",
    "goal_ratios", "goals_table", "format_report", "write_json", "plot",
    # the CLI
    "add_arguments", "run",
]
