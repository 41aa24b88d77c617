"""How fast this machine runs one thread now, for benchmarks whose timings are compared
across days: a shared host can be slower on one day than another, which the load average
does not show (bench_models, bench_intake)."""

from __future__ import annotations

import statistics
import time


def cpu_probe_ms(repeats: int = 7) -> float:
    """A fixed pure-Python workload's median wall time in ms (lower is faster)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sum(i * i for i in range(200_000))
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 2)
