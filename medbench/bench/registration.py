"""Benchmark ``registration``: a multi-resolution pyramid against a single resolution, and SimpleITK against elastix.

Both comparisons run on the same phantom cases in one run, so the ratios are
free of the machine's load drift:

* **pyramid** (case a: MR T1 fixed, CT moving, rigid, Mattes MI, the same
  optimiser and stopping rule: regular-step gradient descent until the step is
  below 1e-3 or the iteration cap): a three-level pyramid (shrink 4, 2, 1;
  smoothing 1, 0.5, 0 voxels) against one full-resolution level (its first
  step 2, 20 % of the voxels, up to ``iterations``). The pyramid runs a
  per-level schedule (:func:`~medbench.registration.register` with one value
  per level): the coarsest level searches with a one-voxel first step on every
  voxel, the middle level refines on 20 % of its voxels, and the
  finest level, on the same 20 % sample as the baseline, either runs until the
  stopping rule ends it (``3-level pyramid``) or stops after ``finest_cap``
  iterations (``3-level pyramid, capped``). ``ratio`` is the
  single-resolution time divided by the method's time (the speed-up);
  ``tre_mm`` the landmark TRE. Every (case, sampling seed) pair runs once and
  the row is the median over ``n_cases`` x ``repeats`` runs: the random sample
  moves the optimum by about 0.5 mm, so one draw per case cannot tell equal
  TREs apart. Both take the metric's gradients by finite differences at the
  sampled points (``gradient_images=False``: no whole-image gradient filter
  per level; it also gives the lower TRE on this pair). Target (reported,
  not asserted): a pyramid row >= 3x faster at equal or better median TRE.
  The default grid is the ``full`` profile's (128 x 128 x 64 at 3.125 mm):
  on the 64 x 64 x 32 smoke grid one full-resolution registration takes about
  0.2 s, and fixed costs (building the pyramid's images, ITK's setup) cap
  any speed-up near 2.5x; there is little for a pyramid to save there.
* **engines** (case b: breathing CT <-> CT): SimpleITK's B-spline FFD and
  diffeomorphic demons (from a rigid SimpleITK result sampled on bone, which
  breathing does not move, as in notebook 02) against elastix's
  B-spline (``itk-elastix``, when installed; otherwise the row says
  ``unavailable: <reason>``). ``ratio`` is the SimpleITK B-spline time divided
  by the method's time; ``dense_tre_organs_mm`` the median dense TRE over the
  liver, spleen and kidneys against the phantom's true displacement;
  ``folding_percent`` the share of body voxels with a Jacobian determinant <= 0.

Every row is the median over ``n_cases`` cases.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from medbench.bench.harness import write_results
from medbench.data.phantom import BENCHMARK_ORGANS, PhantomSpec, load_cohort
from medbench.errors import ConfigError
from medbench.metrics import dense_error_map, jacobian_determinant, jacobian_summary, landmark_tre
from medbench.registration import BONE_HU, RegistrationResult, demons, register, threshold_mask
from medbench.registration.elastix import elastix_available, elastix_register

NAME = "registration"
TARGET_SPEEDUP = 3.0


#: The pyramid's per-level schedule (coarsest first): shrink, smoothing (voxels), first step, sampled share.
PYRAMID = dict(shrink_factors=(4, 2, 1), smoothing_sigmas=(1.0, 0.5, 0.0), learning_rate=(1.0, 0.5, 0.1),
               sampling_fraction=(1.0, 0.2, 0.2))
#: Iteration caps of the two coarse levels.
COARSE_CAPS = (50, 30)


def _rigid(fixed: Any, moving: Any, finest_cap: int | None, threads: int, iterations: int, seed: int
           ) -> RegistrationResult:
    """Single resolution when ``finest_cap`` is None; else the pyramid with that cap on its finest level."""
    common = dict(metric="mattes", histogram_bins=16, threads=threads, seed=seed, gradient_images=False)
    if finest_cap is None:
        return register(fixed, moving, shrink_factors=(1,), smoothing_sigmas=(0.0,), learning_rate=2.0,
                        sampling_fraction=0.2, iterations=iterations, **common)  # type: ignore[arg-type]
    return register(fixed, moving, iterations=(*COARSE_CAPS, finest_cap), **PYRAMID, **common)  # type: ignore[arg-type]


def _dense_row(case: Any, res: RegistrationResult) -> dict[str, Any]:
    organs = np.isin(case.labels_deformed.array, list(BENCHMARK_ORGANS))
    err = dense_error_map(res.transform, case.displacement, case.ct_deformed)
    jac = jacobian_summary(jacobian_determinant(res.transform, case.ct_deformed), case.labels_deformed)
    return {"time_s": res.wall_time_s, "dense_tre_organs_mm": float(np.median(err.array[organs])),
            "tre_mm": landmark_tre(res.transform, case.landmarks.deformed, case.landmarks.ct)["mean"],
            "folding_percent": jac["folding_percent"], "status": res.status}


def run(
    out_dir: str | os.PathLike[str] | None = None,
    *,
    n_cases: int = 2,
    image_size: Sequence[int] = (128, 128, 64),
    spacing: Sequence[float] = (3.125, 3.125, 4.0),
    iterations: int = 200,
    finest_cap: int = 10,
    repeats: int = 3,
    threads: int = 2,
    engines: bool = True,
    seed: int = 0,
) -> pd.DataFrame:
    """Run the benchmark, print and write its table (``reports/bench/registration/``); return the table.

    ``iterations`` caps the single resolution and the finest level of ``3-level pyramid``;
    ``finest_cap`` the finest level of ``3-level pyramid, capped``; ``repeats`` sampling seeds per case.
    """
    if repeats < 1 or finest_cap < 1:
        raise ConfigError(f"registration benchmark: repeats and finest_cap must be >= 1 (got {repeats}, {finest_cap})")
    if n_cases < 1 or len(image_size) != 3 or len(spacing) != 3:
        raise ConfigError(f"registration benchmark: n_cases >= 1 and 3D image_size / spacing "
                          f"(got {n_cases}, {list(image_size)}, {list(spacing)})")
    spec = PhantomSpec(n_cases=n_cases, shape=tuple(int(s) for s in image_size),
                       spacing=tuple(float(s) for s in spacing), seed=seed)
    cohort = load_cohort(spec)
    raw: list[dict[str, Any]] = []
    for i in range(n_cases):
        case = cohort.case(i)
        for rep in range(repeats):
            for name, cap in (("single resolution", None), ("3-level pyramid", iterations),
                              ("3-level pyramid, capped", finest_cap)):
                res = _rigid(case.t1, case.ct, cap, threads, iterations, seed + rep)
                raw.append({"group": "pyramid (rigid MR->CT)", "method": name, "case": i, "time_s": res.wall_time_s,
                            "iterations": res.iterations, "status": res.status,
                            "tre_mm": landmark_tre(res.transform, case.landmarks.mr, case.landmarks.ct)["mean"]})
        if not engines:
            continue
        rigid = register(case.ct_deformed, case.ct, metric="mattes", histogram_bins=32, threads=threads,
                         fixed_mask=threshold_mask(case.ct_deformed, BONE_HU, dilate_voxels=1))
        bs = register(case.ct_deformed, case.ct, transform="bspline", metric="mean_squares",
                      initialisation=rigid.transform, bspline_mesh_mm=50.0, iterations=20, shrink_factors=(2, 1),
                      smoothing_sigmas=(1.0, 0.0), sampling_fraction=0.05, threads=threads)
        raw.append({"group": "engines (breathing CT)", "method": "SimpleITK B-spline", "case": i,
                    **_dense_row(case, bs)})
        dm = demons(case.ct_deformed, case.ct, initialisation=rigid.transform, iterations=50, smoothing_mm=8.0,
                    shrink_factors=(2, 1), threads=threads)
        raw.append({"group": "engines (breathing CT)", "method": "SimpleITK demons", "case": i,
                    **_dense_row(case, dm)})
        available, reason = elastix_available()
        if available:
            ex = elastix_register(case.ct_deformed, case.ct, kind="bspline", grid_spacing_mm=50.0, threads=threads)
            raw.append({"group": "engines (breathing CT)", "method": "elastix B-spline", "case": i,
                        **_dense_row(case, ex)})
        else:
            raw.append({"group": "engines (breathing CT)", "method": "elastix B-spline", "case": i,
                        "status": f"unavailable: {reason}"})
    df = pd.DataFrame(raw)
    numeric = [c for c in ("time_s", "tre_mm", "iterations", "dense_tre_organs_mm", "folding_percent") if c in df]
    table = df.groupby(["group", "method"], sort=False)[numeric].median().reset_index()
    table["status"] = df.groupby(["group", "method"], sort=False)["status"].agg(
        lambda s: ",".join(sorted(set(map(str, s))))).to_numpy()
    base = {"pyramid (rigid MR->CT)": "single resolution", "engines (breathing CT)": "SimpleITK B-spline"}
    ratios = []
    for _, row in table.iterrows():
        ref = table[(table["group"] == row["group"]) & (table["method"] == base[str(row["group"])])]["time_s"]
        ratios.append(float(ref.iloc[0] / row["time_s"]) if len(ref) and row["time_s"] > 0 else np.nan)
    table["ratio"] = ratios
    table["label"] = table["group"].str.split(" ").str[0] + ": " + table["method"]
    single = table[table["method"] == "single resolution"].iloc[0]
    pyramids = table[table["method"].str.startswith("3-level pyramid")]
    met = bool(((pyramids["ratio"] >= TARGET_SPEEDUP) & (pyramids["tre_mm"] <= single["tre_mm"] + 1e-9)).any())
    out = write_results(NAME, table.to_dict("records"), out_dir, label="label", ratio="ratio",
                        extra={"n_cases": n_cases, "image_size": list(image_size), "spacing": list(spacing),
                               "iterations": iterations, "finest_cap": finest_cap, "repeats": repeats,
                               "coarse_caps": list(COARSE_CAPS),
                               "pyramid_schedule": {k: list(v) for k, v in PYRAMID.items()},
                               "threads": threads, "seed": seed,
                               "target": f"pyramid >= {TARGET_SPEEDUP:g}x faster at equal or better TRE",
                               "pyramid_target_met": met})
    print(f"benchmark {NAME}: median of {n_cases} case(s) (pyramid group: x {repeats} sampling seeds) on a "
          f"{'x'.join(map(str, image_size))} grid; ratio = baseline time / method time (same run)")
    print(table.drop(columns=["label"]).round(3).to_string(index=False))
    print(f"pyramid target (>= {TARGET_SPEEDUP:g}x faster at equal or better TRE): {'met' if met else 'not met'}")
    print(f"results: {out}")
    return table
