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


def best_times(fns: dict, repeat: int) -> dict:
    """best_time of each of several functions, their runs interleaved (a, b, a, b, ...), so that a
    slow spell of a shared machine falls on all of them rather than on one."""
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: min(t) for name, t in times.items()}
