"""Timing helpers the bench scripts share."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_of(repeat: int, action: Callable[[], object]) -> float:
    """The median wall time of `repeat` calls of `action`, in seconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)
