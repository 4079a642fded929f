"""The 05_fusion recipe: schema rules, a QUICK run end to end, the shift, lesion detection and checked metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from medbench import config
from medbench.errors import ConfigError
from medbench.models.fusion import subsets
from medbench.recipes import fusion as fr
from medbench.recipes import segmentation as segr

MODS = ["ct", "pet", "t1", "t2"]
ROWS = ["ct", "pet", "t1", "t2", "early", "late", "intermediate", "early+dropout"]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


# -- schema ---------------------------------------------------------------------------------------------
def test_schema_defaults_validate_and_name_every_row() -> None:
    cfg = fr.Params.validate_values({})
    assert cfg.data.modalities == MODS and fr.MALIGNANT in cfg.data.classes and "lesion_cyst" in cfg.data.classes
    assert cfg.data.image_size == [128, 128, 64] and cfg.data.spacing == [3.125, 3.125, 4.0]
    assert cfg.data.roi == ["liver", "spleen"] and cfg.data.patch == [48, 48, 32]
    spec = cfg.data.spec(cfg.seed)  # a lesion-rich cohort: every case positive, more malignant lesions
    assert spec.positive_fraction == 1.0 and spec.extra_malignant_mean == cfg.data.extra_malignant_mean > 1.0
    assert spec.shape == (128, 128, 64) and spec.spacing == (3.125, 3.125, 4.0)
    assert cfg.synthesis.enabled and (cfg.synthesis.source, cfg.synthesis.target) == ("ct", "pet")
    assert fr.row_names(cfg) == ROWS
    assert fr.fusion_rows(fr.row_names(cfg)) == ["early", "late", "intermediate", "early+dropout"]
    assert cfg.fusion.shifts_mm == [0.0, 4.0, 8.0] and cfg.fusion.shift_modalities == ["pet", "t1", "t2"]
    assert cfg.train_for("late").epochs < cfg.train_for("early").epochs  # the smoke CPU budget
    net = cfg.fusion.network("late", MODS, dropout=True)
    assert net.level == "late" and net.dropout_p == cfg.fusion.dropout_p
    assert cfg.fusion.network("early", MODS, dropout=False).dropout_p == 0.0


@pytest.mark.parametrize(("values", "message"), [
    ({"fusion_dropout_levels": ["late"], "fusion_levels": ["early"]}, "not in levels"),
    ({"epochs_by_model": {"unet": 3}}, "not rows of this run"),
    ({"fusion_shift_modalities": ["mr"]}, "not input modalities"),
    ({"data_modalities": ["ct"]}, "at least two"),
    ({"data_classes": ["liver"]}, "lesion_malignant"),
    ({"fusion_shifts_mm": [0, 0]}, "distinct"),
    ({"synthesis_target": "ct"}, "must differ"),
    ({"synthesis_target": "mr"}, "not input modalities"),
])
def test_schema_rejects_inconsistent_settings(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        fr.Params.validate_values(values)


def test_rows_follow_the_fusion_section() -> None:
    cfg = fr.Params.validate_values({"fusion_single": False, "fusion_levels": ["late", "early"],
                                     "fusion_dropout_levels": ["late", "early"], "epochs_by_model": {}})
    assert fr.row_names(cfg) == ["late", "early", "late+dropout", "early+dropout"]


def test_profiles_smoke_is_the_defaults_and_full_validates() -> None:
    path = Path(fr.__file__).parent / "profiles" / "05_fusion.yaml"
    profiles = config.read_profiles(path, fr.NOTEBOOK)
    assert profiles["smoke"] == {}
    full = config.merged(fr.Params, profiles["full"], where=fr.NOTEBOOK)
    assert isinstance(full, fr.Params) and full.data.spacing[0] < 3.125 and full.train.epochs > 40
    assert fr.Params.validate_values(fr.QUICK).data.n_cases <= 5


def test_segmentation_params_carry_the_data_and_training() -> None:
    cfg = fr.Params.validate_values({"seed": 3, "train_lr": 0.005, "eval_overlap": 0.5})
    seg_cfg = fr.segmentation_params(cfg)
    assert isinstance(seg_cfg, segr.Params)
    assert seg_cfg.data.modalities == MODS and seg_cfg.seed == 3 and seg_cfg.train.lr == 0.005
    assert seg_cfg.eval.overlap == 0.5 and seg_cfg.models == [cfg.model.name]


# -- networks ---------------------------------------------------------------------------------------------
def test_single_modality_row_reads_only_its_channel() -> None:
    from medbench.models.factory import ModelParams, build_model

    torch.manual_seed(0)
    net = fr.SingleModality(build_model(ModelParams(base_channels=4, levels=3, dropout=0.0), 1, 3, (16,) * 3),
                            MODS, "pet").eval()
    x = torch.randn(1, 4, 16, 16, 16)
    other = x.clone()
    other[:, [0, 2, 3]] = torch.randn(1, 3, 16, 16, 16)
    changed = x.clone()
    changed[:, 1] += 1.0
    with torch.no_grad():
        assert torch.equal(net(x), net(other))
        assert not torch.allclose(net(x), net(changed))
    with pytest.raises(ConfigError, match="not an input channel"):
        fr.SingleModality(torch.nn.Identity(), MODS, "mr")


# -- shift -------------------------------------------------------------------------------------------------
def _centroid(a: np.ndarray) -> np.ndarray:
    idx = np.indices(a.shape).reshape(3, -1)
    w = a.reshape(-1).astype(np.float64)
    return (idx * w).sum(axis=1) / w.sum()


@pytest.mark.parametrize(("axis", "shift_mm"), [(0, 5.0), (1, -4.5), (2, 7.0), (2, 0.6)])
def test_shift_moves_a_blob_by_the_requested_millimetres(axis: int, shift_mm: float) -> None:
    spacing = (2.0, 3.0, 1.25)  # anisotropic: the shift must use the spacing of its own axis
    grid = np.indices((24, 20, 28)).astype(np.float64)
    centre = np.array([11.3, 9.7, 13.2])
    blob = np.exp(-((grid - centre[:, None, None, None]) ** 2).sum(0) / (2 * 2.0**2)).astype(np.float32)
    image = np.stack([blob, blob, 2 * blob])
    out = fr.shift_channels(torch.from_numpy(image), shift_mm, spacing, channels=[1, 2], axis=axis)
    expected = np.zeros(3)
    expected[axis] = shift_mm / spacing[axis]
    assert np.array_equal(out[0], image[0]), "an unlisted channel stays put"
    for c in (1, 2):
        moved = _centroid(out[c]) - _centroid(image[c])
        np.testing.assert_allclose(moved, expected, atol=0.1)
    assert np.array_equal(fr.shift_channels(image, 0.0, spacing, [1, 2]), image)
    with pytest.raises(ConfigError, match="channel-first"):
        fr.shift_channels(blob, 1.0, spacing, [0])


# -- lesion detection --------------------------------------------------------------------------------------
def _masks() -> tuple[np.ndarray, np.ndarray]:
    truth = np.zeros((20, 20, 20), bool)
    pred = np.zeros_like(truth)
    truth[2:5, 2:5, 2:5] = True  # lesion A: hit by a partial prediction
    pred[3:6, 3:6, 3:6] = True
    truth[12:15, 2:5, 2:5] = True  # lesion B: missed
    pred[2:4, 14:17, 14:17] = True  # a false positive far from both
    return pred, truth


def test_detection_counts_one_hit_one_miss_one_false_positive() -> None:
    pred, truth = _masks()
    assert fr.detect_lesions(pred, truth) == {"lesions": 2, "detected": 1, "missed": 1, "false_positives": 1}
    # connectivity matters: two predicted voxels touching only at a corner are one component at 26, two at 6
    pred[10, 10, 10] = pred[11, 11, 11] = True
    assert fr.detect_lesions(pred, truth, connectivity=3)["false_positives"] == 2
    assert fr.detect_lesions(pred, truth, connectivity=1)["false_positives"] == 3
    with pytest.raises(ConfigError, match="shape"):
        fr.detect_lesions(pred[:5], truth)


def test_lesion_detection_sums_over_cases() -> None:
    pred, truth = _masks()
    cfg = fr.Params.validate_values({})
    names = {0: "background", 1: "liver", 2: fr.MALIGNANT}
    lab_truth, lab_pred = truth.astype(np.int64) * 2, pred.astype(np.uint8) * 2
    empty = np.zeros_like(lab_pred)
    ev = fr.Evaluation(pd.DataFrame(), pd.DataFrame(), {"early": {"a": lab_pred, "b": empty}},
                       {"a": lab_truth, "b": lab_truth}, names)
    table = fr.lesion_detection(cfg, ev)
    assert table.loc["early", "lesions"] == 4 and table.loc["early", "detected"] == 1
    assert table.loc["early", "sensitivity"] == pytest.approx(0.25)
    assert table.loc["early", "fp_per_case"] == pytest.approx(0.5)


# -- checked metrics ---------------------------------------------------------------------------------------
def test_checked_metrics_known_answers() -> None:
    table = pd.DataFrame({"dice_lesion_malignant": [0.2, 0.4, 0.5, 0.3, 0.45]},
                         index=pd.Index(["ct", "pet", "early", "late", "early+dropout"], name="row"))
    ev = fr.Evaluation(pd.DataFrame(), table, {}, {}, {})
    mods = ["ct", "pet"]
    rows = []
    for row, values in (("early", {"ct+pet": 0.6, "ct": 0.2, "pet": 0.5}),
                        ("early+dropout", {"ct+pet": 0.55, "ct": 0.45, "pet": 0.5})):
        for subset in subsets(mods):
            name = "+".join(subset)
            rows.append({"row": row, "subset": name, "n_modalities": len(subset), "dice_mean": values[name]})
    missing = pd.DataFrame(rows).set_index(["row", "subset"])
    m = fr.checked_metrics(ev, missing)
    assert m["dice_malignant_pet"] == 0.4 and m["dice_malignant_early_dropout"] == 0.45
    assert m["fusion_margin_malignant"] == pytest.approx(0.1)  # best fusion 0.5 (early) - best single 0.4 (pet)
    assert m["full_dice_early"] == pytest.approx(0.6) and m["full_dice_early_dropout"] == pytest.approx(0.55)
    assert m["worst_subset_drop_early"] == pytest.approx(0.4)
    assert m["worst_subset_drop_early_dropout"] == pytest.approx(0.1)
    documented = " ".join(fr.CHECKED)
    for key in m:
        assert any(key.startswith(k.split("<")[0]) for k in fr.CHECKED), key
    assert "fusion_margin_malignant" in documented


# -- QUICK end to end --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def quick() -> dict[str, Any]:
    from medbench.repro import seed_everything

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        seed_everything(0)
        cfg = fr.Params.validate_values(fr.QUICK)
        data = fr.load_data(cfg)
        seg = fr.setup(cfg, data)
        trained = fr.train_rows(cfg, data, None, seg)
        base = fr.baseline(cfg, data, seg)
        ev = fr.evaluate(cfg, seg, trained, base)
        missing = fr.missing_modality_table(cfg, seg, trained)
        shifted = fr.misregistration(cfg, seg, trained)
        detection = fr.lesion_detection(cfg, ev)
        synth = fr.train_synthesis(cfg, seg)
        synthesis = fr.synthesis_experiment(cfg, seg, trained, synth)
    finally:
        torch.set_num_threads(saved)
    return {"cfg": cfg, "data": data, "seg": seg, "trained": trained, "ev": ev, "missing": missing,
            "shifted": shifted, "detection": detection, "base": base, "synth": synth, "synthesis": synthesis}


def test_quick_trains_every_row_through_the_engine(quick: dict[str, Any]) -> None:
    trained, seg = quick["trained"], quick["seg"]
    assert list(trained) == ROWS
    assert seg.modalities == MODS and seg.n_classes == 5  # background, liver, spleen, malignant, cyst
    for row, t in trained.items():
        assert t.fit.epochs_run == 1 and t.params_m > 0, row
    assert trained["late"].params_m > 3 * trained["ct"].params_m  # one backbone per modality
    assert trained["early+dropout"].model.dropout_p == quick["cfg"].fusion.dropout_p
    assert trained["early"].model.dropout_p == 0.0


def test_quick_evaluation_has_every_row_and_class(quick: dict[str, Any]) -> None:
    ev = quick["ev"]
    n_test = len(quick["seg"].test_datalist)
    assert list(ev.table.index) == [*ROWS, f"baseline: {quick['base'].name}"]
    assert "CT+PET lesion rule" in quick["base"].name
    for cls in ("liver", "spleen", *fr.LESIONS):
        assert f"dice_{cls}" in ev.table.columns and f"dice_{cls}" in ev.per_case.columns
    assert len(ev.per_case) == len(ROWS) * n_test
    finite = ev.per_case["dice_liver"].to_numpy(float)
    assert np.isfinite(finite).all() and ((finite >= 0) & (finite <= 1)).all()
    assert list(quick["detection"].index) == ROWS
    # every volume is cropped to one box, chosen from the training labels (then padded up to the patch)
    cfg = quick["cfg"]
    lo, hi = fr.roi_box(cfg, quick["data"])
    extent = (np.asarray(hi) - np.asarray(lo)) / np.asarray(cfg.data.spacing)
    assert (extent < np.asarray(cfg.data.image_size) - 2).any(), "the box is smaller than the field of view"
    most = np.maximum(np.ceil(extent) + 1, cfg.data.patch)  # the voxel centres inside the box, or the patch
    shapes = {tuple(quick["seg"].test_dataset[i]["image"].shape[1:]) for i in range(n_test)}
    assert len(shapes) == 1 and (np.asarray(next(iter(shapes))) <= most).all()
    assert set(quick["detection"].columns) >= {"lesions", "detected", "sensitivity", "fp_per_case"}


def test_quick_missing_modality_table_has_every_subset(quick: dict[str, Any]) -> None:
    missing, ev = quick["missing"], quick["ev"]
    fused = ["early", "early+dropout"]  # the levels with a dropout partner, without and with dropout
    assert fr.missing_rows(quick["cfg"], ROWS) == fused
    assert list(dict.fromkeys(missing.index.get_level_values("row"))) == fused
    expected = ["+".join(s) for s in subsets(MODS)]
    assert len(expected) == 15
    for row in fused:
        assert list(missing.xs(row, level="row").index) == expected
        # with every modality present the table is the row's ordinary evaluation
        full = missing.loc[(row, "ct+pet+t1+t2")]
        assert full["n_modalities"] == 4
        assert full["dice_mean"] == pytest.approx(ev.table.loc[row, "dice_mean"], nan_ok=True)
        assert full["dice_liver"] == pytest.approx(ev.table.loc[row, "dice_liver"])
    # a missing modality changes the prediction: not every subset can score the same
    assert missing.loc["early", "dice_mean"].nunique() > 1


def test_quick_misregistration_has_every_shift_and_leaves_ct_alone(quick: dict[str, Any]) -> None:
    shifted, ev, cfg = quick["shifted"], quick["ev"], quick["cfg"]
    assert list(dict.fromkeys(shifted.index.get_level_values("row"))) == ROWS
    for row in ROWS:
        assert list(shifted.xs(row, level="row").index) == cfg.fusion.shifts_mm
        assert shifted.loc[(row, 0.0), "dice_mean"] == pytest.approx(ev.table.loc[row, "dice_mean"])
    ct = shifted.xs("ct", level="row")["dice_mean"]
    assert ct.nunique() == 1, "the CT channel is the reference and is never shifted"
    moved = shifted.xs("pet", level="row")["dice_liver"]
    assert moved.iloc[0] != moved.iloc[-1], "a one-voxel PET shift must change the PET row's prediction"


def test_quick_synthesis_compares_true_synthetic_and_missing(quick: dict[str, Any]) -> None:
    result, synth = quick["synthesis"], quick["synth"]
    assert synth.fit.epochs_run == 1 and synth.source == 0 and synth.target == 1
    assert result.table.index.names == ["row", "pet"]
    assert list(dict.fromkeys(result.table.index.get_level_values("row"))) == ["pet", "early", "early+dropout"]
    for row in ("early", "early+dropout"):
        assert list(result.table.xs(row, level="row").index) == ["true", "synthetic", "missing"]
    assert list(result.table.xs("pet", level="row").index) == ["true", "synthetic"]  # no 'missing' for one input
    true = result.table.xs("true", level="pet")["dice_mean"]
    assert true["early"] == pytest.approx(quick["ev"].table.loc["early", "dice_mean"], nan_ok=True)
    assert set(result.quality) == {"mae", "psnr_db"} and result.quality["mae"] > 0
    assert set(result.example) == {"true", "synthetic", "truth"}


def _synthesis_with(quick: dict[str, Any], generator: torch.nn.Module, source: int) -> fr.SynthesisResult:
    synth = fr.Synthesis(generator, quick["synth"].fit, 0.0, source=source, target=1, multiple=8)
    return fr.synthesis_experiment(quick["cfg"], quick["seg"], quick["trained"], synth)


class _Zero(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.w


class _Copy(_Zero):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.w


def test_synthesis_known_answers_a_perfect_and_an_empty_generator(quick: dict[str, Any]) -> None:
    # a "generator" copying the PET itself is perfect: every lesion keeps its contrast, nothing changes
    perfect = _synthesis_with(quick, _Copy(), source=1)
    assert perfect.quality["mae"] == 0.0 and not perfect.lesions["erased"].any()
    np.testing.assert_allclose(perfect.lesions["contrast_synthetic"], perfect.lesions["contrast_true"])
    t = perfect.table
    for row in ("early", "pet"):
        assert t.loc[(row, "synthetic")].equals(t.loc[(row, "true")])
    # one that draws nothing erases every lesion with positive contrast
    empty = _synthesis_with(quick, _Zero(), source=0)
    hot = empty.lesions["contrast_true"] > 0
    assert hot.any() and empty.lesions.loc[hot, "erased"].all()
    assert empty.quality["mae"] > 0


def test_synthesis_pairs_pad_slices_and_synthesize_replaces_only_the_target() -> None:
    image = torch.rand(3, 13, 10, 4)
    pairs = fr.synthesis_pairs(image, source=0, target=2, multiple=8)
    assert len(pairs) == 4 and pairs[0]["input"].shape == (1, 16, 16) == pairs[0]["target"].shape
    assert torch.equal(pairs[1]["input"][0, :13, :10], image[0, :, :, 1])
    assert torch.equal(pairs[1]["target"][0, :13, :10], image[2, :, :, 1]) and not pairs[1]["input"][0, 13:].any()
    synth = fr.Synthesis(_Copy(), None, 0.0, source=0, target=2, multiple=8)  # type: ignore[arg-type]
    out = fr.synthesize(synth, image)
    assert torch.equal(out[2], image[0]) and torch.equal(out[:2], image[:2])


def test_checked_metrics_with_baseline_and_synthesis() -> None:
    table = pd.DataFrame({"dice_lesion_malignant": [0.4, 0.6, 0.3]},
                         index=pd.Index(["pet", "early", "baseline: rule"], name="row"))
    ev = fr.Evaluation(pd.DataFrame(), table, {}, {}, {})
    missing = pd.DataFrame([{"row": "early", "subset": s, "n_modalities": n, "dice_mean": d}
                            for s, n, d in (("ct+pet", 2, 0.7), ("ct", 1, 0.3), ("pet", 1, 0.5))]
                           ).set_index(["row", "subset"])
    synth_table = pd.DataFrame([{"row": "early", "pet": v, "dice_malignant": d}
                                for v, d in (("true", 0.6), ("synthetic", 0.2), ("missing", 0.1))]
                               ).set_index(["row", "pet"])
    lesions = pd.DataFrame({"erased": [True, False, True]})
    m = fr.checked_metrics(ev, missing, fr.SynthesisResult(synth_table, lesions, {}, {}))
    assert "dice_malignant_baseline: rule" not in m and m["baseline_dice_malignant"] == 0.3
    assert m["fusion_margin_malignant"] == pytest.approx(0.2)
    assert m["margin_over_baseline_malignant"] == pytest.approx(0.3)
    assert m["synthesis_dice_malignant_early_synthetic"] == 0.2
    assert m["synthesis_dice_malignant_early_missing"] == 0.1
    assert "synthesis_dice_malignant_early_true" not in m and m["synthesis_lesions_erased"] == "2/3"


def test_quick_checked_metrics(quick: dict[str, Any]) -> None:
    m = fr.checked_metrics(quick["ev"], quick["missing"], quick["synthesis"])
    for row in ROWS:
        assert f"dice_malignant_{row.replace('+', '_')}" in m
    for row in ("early", "early_dropout"):
        assert m[f"worst_subset_drop_{row}"] >= 0
        assert 0 <= m[f"full_dice_{row}"] <= 1
    assert "fusion_margin_malignant" in m
