"""Timing one compiled inference: warm-up, batched repeats, median and spread, fixed threads.

Why batched medians: on this class of machine one call of a small operator takes microseconds, so a
single timer read is mostly timer noise. Each sample times `number` back-to-back calls; the median over
`repeats` samples resists the occasional stall, and min/max/std report the spread honestly.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Timing:
    """Latency statistics in ms per call; `samples` are the per-sample means (ms)."""

    median_ms: float
    min_ms: float
    max_ms: float
    std_ms: float
    samples: tuple[float, ...]
    number: int

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("samples")
        return d


def time_runner(
    runner: Callable[[], Any],
    *,
    warmup: int = 10,
    repeats: int = 15,
    number: int | None = None,
    target_s: float = 0.02,
    clock: Callable[[], float] = time.perf_counter,
) -> Timing:
    """Time `runner()` (one inference). `number=None` picks calls per sample so a sample lasts ~`target_s`.

    `clock` defaults to wall time; `time.thread_time` (CPU time of the calling thread) is the robust
    choice for single-threaded inference on a shared machine, because time spent preempted by other
    processes is not counted (see `nas.cost.build.DEFAULT_TIMING`).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        runner()
    if number is None:
        t0 = clock()
        runner()
        once = max(clock() - t0, 1e-7)
        number = max(1, min(10_000, int(target_s / once)))
    samples = []
    for _ in range(repeats):
        t0 = clock()
        for _ in range(number):
            runner()
        samples.append((clock() - t0) * 1000.0 / number)
    return Timing(
        median_ms=statistics.median(samples),
        min_ms=min(samples),
        max_ms=max(samples),
        std_ms=statistics.pstdev(samples) if len(samples) > 1 else 0.0,
        samples=tuple(samples),
        number=number,
    )
