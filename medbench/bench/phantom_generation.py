"""Benchmark ``phantom``: how long one synthetic case takes to generate, per profile, in reference units.

Timings on shared machines drift, so every time is also given as a ratio to
a **reference workload measured in the same run** (``reference``: a 3D
Gaussian filter of a 256 x 256 x 80 float32 volume, SD 2 voxels — pure
memory-bound numpy/scipy work like most of the generator). Rows:

* ``reference`` (ratio 1.0);
* ``generate smoke case`` / ``generate full case``: :func:`generate_case`
  (anatomy, lesions, CT with physical noise for the scan and the breathing
  scan, PET, MR, ground truth), warm (the projector of a grid is built once
  per process; its one-off build is the ``projector build`` row);
* ``write full case``: NIfTI + truth.json + CT/PET/MR DICOM of one case;
* ``CT operator (medbench)`` and ``CT operator (scikit-image loop)``: one
  noisy full-profile CT through :func:`medbench.physics.simulate_ct` and
  through scikit-image's ``radon``/``iradon`` slice by slice (same physics,
  fewer slices measured and scaled), the comparison that motivates the
  sparse-matrix projector.

Targets (reported, never asserted): a smoke case in <= 2 s and a full case in
<= 10 s on 2 cores (``meets_target``).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from medbench.bench.harness import time_call, write_results
from medbench.data.phantom import PhantomSpec, generate_case, write_case
from medbench.errors import ConfigError
from medbench.physics import simulate_ct
from medbench.physics.ct import DEFAULT_PHOTONS, _backprojector, hu_to_mu

NAME = "phantom"
TARGET_S = {"smoke": 2.0, "full": 10.0}
PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"shape": (64, 64, 32), "spacing": (6.25, 6.25, 8.0)},
    "full": {"shape": (256, 256, 80), "spacing": (1.5625, 1.5625, 3.2)},
}


def _reference() -> None:
    ndimage.gaussian_filter(np.ones((256, 256, 80), np.float32), 2.0)


def _skimage_ct(hu: np.ndarray, spacing_mm: float, n_angles: int, n_slices: int) -> None:
    """The same operator with scikit-image's radon / iradon, one slice at a time (``n_slices`` of them)."""
    from skimage.transform import iradon, radon

    theta = np.linspace(0.0, 180.0, n_angles, endpoint=False)
    rng = np.random.default_rng(0)
    for k in range(n_slices):
        p = radon(hu_to_mu(hu[:, :, k]) * spacing_mm, theta, circle=False)
        counts = rng.poisson(DEFAULT_PHOTONS * np.exp(-p))
        noisy = -np.log(np.maximum(counts, 1.0) / DEFAULT_PHOTONS)
        iradon(noisy - p, theta, output_size=hu.shape[0], circle=False, filter_name="ramp")


def _measure_profile(profile: str, reference_s: float, *, n_cases: int, repeat: int, warmup: int,
                     skimage_slices: int) -> list[dict[str, Any]]:
    def row(method: str, times: list[float] | tuple[float, ...], target: float | None = None) -> dict[str, Any]:
        med = float(np.median(times))
        return {"method": method, "profile": profile, "median_s": med, "min_s": float(min(times)),
                "ratio": med / reference_s, "meets_target": None if target is None else bool(med <= target)}

    spec = PhantomSpec(n_cases=max(n_cases, 3), **PROFILES[profile])
    nx, ny, _ = spec.shape
    views = max(64, max(nx, ny) // 2)
    _backprojector.cache_clear()
    start = time.perf_counter()
    _backprojector(nx, ny, views)
    rows = [row("projector build (once per grid)", [time.perf_counter() - start])]
    generate_case(spec, 0)  # warm-up: imports, caches
    times = [time_call(lambda i=i: generate_case(spec, i), repeat=repeat, warmup=warmup).median_s  # type: ignore[misc]
             for i in range(n_cases)]
    rows.append(row("generate case", times, TARGET_S[profile]))
    case = generate_case(spec, 0)
    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(10**6))
        t = time_call(lambda: write_case(case, Path(tmp) / f"c{next(counter)}"), repeat=repeat, warmup=0)
    rows.append(row("write case (NIfTI, truth.json, DICOM)", t.times_s))
    if profile == "full":
        rng = np.random.default_rng(0)
        hu = case.ct_clean.array
        spacing = float(spec.spacing[0])
        t = time_call(lambda: simulate_ct(hu, 1.0, rng, spacing_mm=spacing, n_angles=views), repeat=repeat, warmup=0)
        rows.append(row("CT operator, one volume (medbench)", t.times_s))
        n = max(1, min(skimage_slices, hu.shape[2]))
        t = time_call(lambda: _skimage_ct(hu, spacing, views, n), repeat=1, warmup=0)
        rows.append(row("CT operator, one volume (scikit-image loop)", [t.median_s * hu.shape[2] / n]))
    return rows


def run(
    out_dir: str | os.PathLike[str] | None = None,
    *,
    profiles: Sequence[str] = ("smoke", "full"),
    n_cases: int = 3,
    repeat: int = 1,
    warmup: int = 0,
    skimage_slices: int = 4,
) -> pd.DataFrame:
    """Run the benchmark, print and write its table (``reports/bench/phantom/`` by default); return the table.

    ``n_cases`` different cases are timed per profile (each ``repeat``
    times); the case rows give their median.
    """
    unknown = set(profiles) - set(PROFILES)
    if unknown or n_cases < 1 or repeat < 1:
        raise ConfigError(f"phantom benchmark: profiles from {sorted(PROFILES)}, n_cases and repeat >= 1 "
                          f"(got {list(profiles)}, {n_cases}, {repeat})")
    ref = time_call(_reference, repeat=max(3, repeat), warmup=1)
    rows: list[dict[str, Any]] = [{"method": "reference", "profile": "-", "median_s": ref.median_s,
                                   "min_s": ref.min_s, "ratio": 1.0, "meets_target": None}]
    for profile in profiles:
        rows += _measure_profile(profile, ref.median_s, n_cases=n_cases, repeat=repeat, warmup=warmup,
                                 skimage_slices=skimage_slices)
    table = pd.DataFrame(rows)
    table["case"] = [f"{r['profile']}: {r['method']}" if r["profile"] != "-" else r["method"] for r in rows]
    out = write_results(NAME, table.to_dict("records"), out_dir, label="case", ratio="ratio",
                        extra={"profiles": list(profiles), "n_cases": n_cases, "repeat": repeat, "warmup": warmup,
                               "reference": "scipy.ndimage.gaussian_filter of a 256x256x80 float32 volume, SD 2",
                               "targets_s": TARGET_S})
    shown = table.drop(columns=["case"]).round({"median_s": 3, "min_s": 3, "ratio": 2})
    print(f"benchmark {NAME}: {n_cases} case(s) per profile; ratio = time / reference time (same run)")
    print(shown.to_string(index=False))
    print(f"targets (reported, not asserted): smoke <= {TARGET_S['smoke']:g} s, full <= {TARGET_S['full']:g} s per case")
    print(f"results: {out}")
    return table
