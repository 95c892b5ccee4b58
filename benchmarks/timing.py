"""Timing shared by the benchmarks (run them as scripts: this folder is then on sys.path)."""

from __future__ import annotations

import time


def best_time(fn, repeat: int) -> float:
    """The shortest of `repeat` wall-clock timings of fn(): the run least disturbed by the machine."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)
