"""The 04_segmentation recipe: schema rules, per-model budgets, and checked metrics with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from medbench.errors import ConfigError
from medbench.recipes import segmentation as seg


def test_patch_must_suit_every_model() -> None:
    with pytest.raises(ConfigError, match="swin_unetr needs one patch side of at least 64"):
        seg.Params.validate_values({"data_patch": [32, 32, 32]})
    assert seg.Params.validate_values({"data_patch": [32, 32, 32], "models": ["unet", "unetr"]}).data.patch == [32] * 3
    with pytest.raises(ConfigError, match="multiples of 16"):
        seg.Params.validate_values({"data_patch": [64, 64, 40], "models": ["unetr"]})


def test_epochs_by_model_overrides_only_the_named_architecture() -> None:
    cfg = seg.Params.validate_values({"models": ["unet", "unetr"], "epochs_by_model": {"unetr": 3},
                                      "train_epochs": 7})
    assert cfg.train_for("unet").epochs == 7 and cfg.train_for("unetr").epochs == 3
    assert cfg.train_for("unetr").lr == cfg.train.lr
    assert seg.Params.validate_values({"models": ["unet"]}).train_for("unet").epochs == 40  # the smoke budget
    with pytest.raises(ConfigError, match="not architectures"):
        seg.Params.validate_values({"epochs_by_model": {"vnet": 3}})


def _evaluation() -> seg.Evaluation:
    fg = {1: "liver", 2: "spleen", 3: "lesion_malignant"}
    rows = []
    for model, liver, spleen in (("unet", (0.9, 0.8), (0.7, 0.5)), ("unetr", (0.5, 0.7), (0.1, 0.3))):
        for n, cid in enumerate(("a", "b")):
            rows.append({"model": model, "case_id": cid, "inference_s": 0.1,
                         "dice_liver": liver[n], "dice_spleen": spleen[n], "dice_lesion_malignant": np.nan,
                         "hd95_liver": 3.0, "hd95_spleen": math.inf, "hd95_lesion_malignant": np.nan,
                         "surface_dice_liver": 0.5, "surface_dice_spleen": 0.2, "surface_dice_lesion_malignant": np.nan})
    per_case = pd.DataFrame(rows)
    base = pd.DataFrame({"dice_liver": [0.6, 0.6], "dice_spleen": [0.2, 0.4]}, index=pd.Index(["a", "b"]))
    table = []
    for model in ("unet", "unetr"):
        table.append({"model": model, **seg.class_summary(per_case[per_case["model"] == model], fg)})
    table.append({"model": "baseline: atlas", **seg.class_summary(base, fg, dice_only=True)})
    return seg.Evaluation(per_case, pd.DataFrame(table).set_index("model"), {})


def test_summary_means_organs_and_confidence_intervals() -> None:
    ev = _evaluation()
    unet = ev.table.loc["unet"]
    assert unet["dice_liver"] == pytest.approx(0.85) and unet["dice_spleen"] == pytest.approx(0.6)
    assert unet["dice_organs"] == pytest.approx(0.725)  # liver and spleen; lesions are not organs
    # two cases: half-width = t(0.975, 1) * sd / sqrt(2) = 12.706 * 0.0707 / 1.414
    assert unet["dice_liver_ci"] == pytest.approx(12.7062 * np.std([0.9, 0.8], ddof=1) / np.sqrt(2), rel=1e-4)
    assert math.isinf(unet["hd95_spleen"]) and np.isnan(unet["dice_lesion_malignant"])


def test_checked_metrics_known_answers() -> None:
    ev = _evaluation()
    unc = seg.Uncertainty("unet", "a", None, None, pd.DataFrame(), 0.031, 0.9)  # type: ignore[arg-type]
    base = seg.BaselineResult("atlas", pd.DataFrame())
    m = seg.checked_metrics(ev, unc, base)
    assert m["dice_organs_unet"] == pytest.approx(0.725) and m["dice_organs_unetr"] == pytest.approx(0.4)
    assert m["baseline_dice_organs"] == pytest.approx(0.45) and m["baseline_name"] == "atlas"
    assert m["margin_organs_unet"] == pytest.approx(0.275) and m["margin_organs_unetr"] == pytest.approx(-0.05)
    assert m["ece_unet"] == 0.031 and m["uncertainty_error_auroc"] == 0.9
    assert not any(k.endswith("_ci") or "hd95" in k for k in m), "only the documented quantities are checked"
    documented = " ".join(seg.CHECKED)
    for key in m:
        stem = key.split("_")[0]
        assert stem in documented or key.startswith("baseline"), key


def test_quick_parameters_are_valid_and_small() -> None:
    cfg = seg.Params.validate_values(seg.QUICK)
    assert cfg.models == ["unet"] and cfg.train_for("unet").epochs <= 2 and cfg.data.n_cases <= 5
