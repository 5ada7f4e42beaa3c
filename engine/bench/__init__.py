"""Benchmark tooling: the memory-bandwidth floor, the suite's conventions, and the trend report.

Modules
-------
floor
    The memory-bandwidth floor (a parallel copy with all cores) and its measurement.
machine
    The hardware a run was measured on (CPU model, cores, memory) and its comparison key.
harness
    The conventions every benchmark group follows (roles, bytes touched, peer scaling)
    and the ratios computed from them.
storage
    Reading pytest-benchmark's saved runs (``.benchmarks/<machine-id>/NNNN_*.json``).
trend
    Noise-aware step detection on a benchmark's history.
report
    The trend report: PNG figures, an HTML index and a text list of regressions.
table
    The README performance table from the newest run.

The modules are imported on demand so that ``cityvitals --help`` stays fast and the
trend report does not need numba.
"""

from __future__ import annotations
