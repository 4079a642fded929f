"""Peak resident memory of a call: the process's RSS sampled in a background thread (psutil)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def measure_peak(fn: Callable[[], T], interval_s: float = 0.005) -> tuple[T, dict[str, Any]]:
    """Run ``fn()``; return its result and ``{"seconds", "peak_rss_mb", "peak_delta_mb"}``.

    ``peak_rss_mb`` is the largest resident set size of this process seen while
    ``fn`` ran (sampled every ``interval_s`` seconds, so a spike shorter than
    that can be missed), ``peak_delta_mb`` that peak minus the RSS just before
    the call: the extra memory the call needed (torch's CPU allocations included,
    which ``tracemalloc`` does not see).
    """
    import psutil

    proc = psutil.Process()
    before = proc.memory_info().rss
    peak = [before]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            stop.wait(interval_s)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    try:
        result = fn()
    finally:
        seconds = time.perf_counter() - start
        stop.set()
        thread.join()
    peak[0] = max(peak[0], proc.memory_info().rss)
    return result, {"seconds": seconds, "peak_rss_mb": peak[0] / 2**20, "peak_delta_mb": (peak[0] - before) / 2**20}
