"""Named benchmarks (DESIGN §10): ``medbench bench NAME`` or :func:`run_benchmark`.

Each benchmark measures its baseline in the same run, reports ratios with the
environment, and writes ``results.csv`` / ``results.json`` / ``results.png``
under ``reports/bench/NAME/`` (see :mod:`medbench.bench.harness`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pandas as pd

from medbench.bench import audit_throughput, engine_vs_loop, inference, phantom_generation, registration
from medbench.errors import ConfigError

#: Benchmark name -> its ``run(out_dir=..., **size)`` function.
BENCHMARKS: dict[str, Callable[..., pd.DataFrame]] = {
    "audit": audit_throughput.run,
    "engine": engine_vs_loop.run,
    "inference": inference.run,
    "phantom": phantom_generation.run,
    "registration": registration.run,
}


def run_benchmark(name: str, out_dir: str | os.PathLike[str] | None = None, **size: Any) -> pd.DataFrame:
    """Run benchmark ``name`` (sizes as keyword arguments, e.g. ``n_files=20``); return its table."""
    try:
        fn = BENCHMARKS[name]
    except KeyError:
        raise ConfigError(f"unknown benchmark {name!r}; available: {', '.join(sorted(BENCHMARKS))}") from None
    return fn(out_dir=out_dir, **size)


__all__ = ["BENCHMARKS", "run_benchmark"]
