"""How fast this machine runs one thread now, for benchmarks whose timings are compared
across days: a shared host can be slower on one day than another, which the load average
does not show (bench_models, bench_intake)."""

from __future__ import annotations

import argparse
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


def describe(start: float, end: float) -> str:
    """The probe of a run, at its start and end, as a benchmark's report says it."""
    return (
        "CPU probe (`benchmarks/probe.py`: a fixed pure-Python loop, median of 7) "
        f"{start:.1f} ms at start, {end:.1f} ms at the end"
    )


def main(argv: list[str] | None = None) -> int:
    """Print this machine's probe now: ``python benchmarks/probe.py [--repeats N]``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7, help="runs whose median is printed")
    args = parser.parse_args(argv)
    print(f"cpu_probe_ms {cpu_probe_ms(args.repeats)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
