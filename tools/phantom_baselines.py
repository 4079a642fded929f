"""Measure every phantom difficulty target on a whole cohort and write the table (developer tool).

    .venv/bin/python -m tools.phantom_baselines --profile smoke
    .venv/bin/python -m tools.phantom_baselines --profile full      # 24 cases, ~15 min after generation

The cohort is the one the 00_tour profile describes (generated into the cache
if needed). Baselines are fitted on the training split, chosen on the
validation split and scored on validation + test ("held out"); the CT-only
oracle and the CT+PET rule (nothing fitted) are scored on every case with a
malignant lesion. Writes ``reports/baselines/phantom-baselines-<profile>.csv``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medbench import baselines as B
from medbench import recipes
from medbench.data.phantom import BENCHMARK_ORGANS, LABELS, MALIGNANT, PhantomCase, load_cohort
from medbench.metrics import point_distances
from medbench.physics import centre_periphery_sd_ratio, noise_power_spectrum, nps_peak_frequency

ROOT = Path(__file__).resolve().parent.parent


def _mattes(case: PhantomCase) -> float:
    import SimpleITK as sitk

    fixed = sitk.Cast(case.ct.to_sitk(), sitk.sitkFloat32)
    moving = sitk.Cast(case.t1.to_sitk(), sitk.sitkFloat32)
    init = sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler3DTransform(),
                                             sitk.CenteredTransformInitializerFilter.GEOMETRY)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=50)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.02, seed=1)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-3, numberOfIterations=300,
                                                 relaxationFactor=0.5)
    reg.SetOptimizerScalesFromPhysicalShift()
    small = min(case.t1.shape) < 32  # the smoke grid: a 4x shrink would leave a few voxels
    reg.SetShrinkFactorsPerLevel([2, 1] if small else [4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([1.0, 0.0] if small else [2.0, 1.0, 0.0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(init, inPlace=False)
    tx = reg.Execute(fixed, moving)
    est = np.array([tx.TransformPoint(tuple(p)) for p in case.landmarks.ct])
    return float(point_distances(est, case.landmarks.mr).mean())


def measure(profile: str) -> pd.DataFrame:
    cfg = recipes.resolve("00_tour", profile)
    spec = cfg.data.spec(cfg.seed)  # type: ignore[attr-defined]
    start = time.perf_counter()
    cohort = load_cohort(spec)
    print(f"cohort ready in {time.perf_counter() - start:.0f} s: {cohort}")
    split = cohort.split
    train = [cohort.case(c) for c in split["train"]]
    held_ids = split["val"] + split["test"]
    rows: list[dict[str, Any]] = []

    def add(quantity: str, value: float, target: str = "", met: bool | None = None) -> None:
        rows.append({"profile": profile, "quantity": quantity, "value": round(float(value), 4), "target": target,
                     "met": met})
        print(f"{quantity:55s} {value:9.3f}  {target} {'' if met is None else ('met' if met else 'NOT MET')}")

    # segmentation
    held = [cohort.case(c) for c in held_ids]
    truths = {c.case_id: c for c in held}
    atlas = B.mean_dice({c.case_id: B.atlas_vote(train, c.labels) for c in held}, truths)
    best: dict[str, float] = {}
    for variant in B.segmentation.THRESHOLD_VARIANTS:
        rule = B.fit_threshold_rule(train, BENCHMARK_ORGANS, **variant)
        d = B.mean_dice({c.case_id: B.segment_threshold(c, rule) for c in held}, truths)
        best = {k: max(best.get(k, 0.0), v) for k, v in d.items()}
    for organ in ("liver", "spleen", "kidney_left", "kidney_right"):
        lim_a, lim_t = (0.75, 0.85) if organ == "liver" else (0.55, 0.75)
        add(f"atlas Dice {organ} (held out)", atlas[organ], f"<= {lim_a}", atlas[organ] <= lim_a)
        add(f"threshold rule Dice {organ} (best variant, held out)", best[organ], f"<= {lim_t}", best[organ] <= lim_t)
    val = [c for c in held if c.case_id in split["val"]]
    test = [c for c in held if c.case_id in split["test"]]
    name, preds = B.best_segmentation_baseline(train, test, BENCHMARK_ORGANS, val=val)
    d = B.mean_dice(preds, {c.case_id: c for c in test})
    add(f"best baseline ({name}) mean Dice on test", d["mean"])
    del held, preds

    # lesions, noise, registration: one case at a time
    oracle, both, peaks, ratios, identity, com, gains, occult = [], [], [], [], [], [], [], []
    pet_threshold = B.fit_pet_lesion_rule(train)
    pet_only = []
    vols: dict[str, list[float]] = {LABELS[o]: [] for o in BENCHMARK_ORGANS}
    mattes = []
    for i, cid in enumerate(cohort.case_ids):
        case = cohort.case(cid)
        lab = case.labels.array
        for o in BENCHMARK_ORGANS:
            vols[LABELS[o]].append(float((lab == o).sum()) * case.labels.voxel_volume_ml)
        occult += [bool(r["ct_occult"]) for r in case.lesion_info if r["class"] == "malignant"]
        if (lab == MALIGNANT).any():
            oracle.append(B.oracle_ct_lesion(case)[3])
            both.append(B.mean_dice({cid: B.ct_pet_lesion_rule(case)}, {cid: case}, (MALIGNANT,))["mean"])
            if cid in held_ids:
                pet_only.append(B.mean_dice({cid: B.pet_lesion_rule(case, pet_threshold)}, {cid: case},
                                            (MALIGNANT,))["mean"])
        noise = case.ct.array - case.ct_clean.array
        body = lab > 0
        peaks.append(nps_peak_frequency(noise_power_spectrum(noise, case.ct.spacing[0], mask=body)))
        ratios.append(centre_periphery_sd_ratio(noise, body))
        lm = case.landmarks
        identity.append(float(point_distances(lm.ct, lm.mr).mean()))
        com.append(float(point_distances(B.centre_of_mass_align(case.ct, case.t1).apply(lm.ct), lm.mr).mean()))
        if i < 3:
            ks = list(range(case.ct.shape[2] // 2 - 2, case.ct.shape[2] // 2 + 2))
            den = np.asarray(B.nlm_denoise(case.ct.array, slices=ks))
            gains.append(B.psnr_gain_db(case.ct.array[:, :, ks], den[:, :, ks], case.ct_clean.array[:, :, ks],
                                        body[:, :, ks]))
            mattes.append(_mattes(case))
        print(f"  {cid} done", flush=True)
    add("CT-only malignant Dice, oracle band (mean over positive cases)", float(np.mean(oracle)), "<= 0.5",
        float(np.mean(oracle)) <= 0.5)
    add("CT+PET rule malignant Dice (mean over positive cases)", float(np.mean(both)), ">= 0.8",
        float(np.mean(both)) >= 0.8)
    if pet_only:
        add("PET-only rule malignant Dice (held out)", float(np.mean(pet_only)))
    add("malignant lesions CT-occult (fraction)", float(np.mean(occult)) if occult else float("nan"), ">= 0.3",
        bool(occult) and float(np.mean(occult)) >= 0.3)
    add("CT NPS peak, min over cases (mm^-1)", min(peaks), "0.15-0.40", 0.15 <= min(peaks) and max(peaks) <= 0.40)
    add("CT NPS peak, max over cases (mm^-1)", max(peaks))
    add("centre/periphery noise SD, min over cases", min(ratios), ">= 1.2", min(ratios) >= 1.2)
    add("untuned NLM PSNR gain (dB, mean of 3 cases)", float(np.mean(gains)), "<= 4", float(np.mean(gains)) <= 4.0)
    add("identity TRE (mm), min over cases", min(identity), ">= 10", min(identity) >= 10.0)
    add("centre-of-mass TRE (mm), min over cases", min(com), ">= 5", min(com) >= 5.0)
    voxel = float(max(cohort.case(0).ct.spacing))
    add("SimpleITK Mattes rigid TRE (mm), max of 3 cases", max(mattes), f"<= 1 voxel ({voxel:g} mm)",
        max(mattes) <= voxel)
    for organ, v in vols.items():
        arr = np.asarray(v)
        add(f"{organ} volume mean (mL)", float(arr.mean()))
        lim = 0.30 if organ == "spleen" else 0.20
        add(f"{organ} volume CV", float(arr.std() / arr.mean()), f">= {lim}", float(arr.std() / arr.mean()) >= lim)
    table = pd.DataFrame(rows)
    out = ROOT / "reports" / "baselines" / f"phantom-baselines-{profile}.csv"
    table.to_csv(out, index=False)
    print(f"written {out}")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="smoke", choices=("smoke", "full"))
    measure(parser.parse_args().profile)


if __name__ == "__main__":
    main()
