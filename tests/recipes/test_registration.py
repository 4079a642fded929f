"""The 02_registration recipe at the QUICK size: schema, profiles, checked metrics against their definitions."""

from __future__ import annotations

import numpy as np
import pytest

from medbench import recipes
from medbench.metrics import dense_error_map, landmark_tre, tre_summary
from medbench.recipes import registration as reg


def test_quick_parameters_and_profiles_validate() -> None:
    reg.Params.validate_values(reg.QUICK)
    full = recipes.resolve("02_registration", "full")
    assert full.data.image_size == [128, 128, 64]  # type: ignore[attr-defined]
    assert recipes.resolve("02_registration") == reg.Params()
    with pytest.raises(Exception, match="deformable_demons_iteration"):
        reg.Params.validate_values({"deformable_demons_iteration": 3})


@pytest.fixture(scope="module")
def quick() -> tuple[reg.Params, reg.CaseData]:
    cfg = reg.Params.validate_values(reg.QUICK)
    return cfg, reg.load_case(cfg)  # type: ignore[arg-type]


@pytest.mark.slow
def test_checked_metrics_match_their_definitions(quick: tuple[reg.Params, reg.CaseData]) -> None:
    cfg, data = quick
    c = data.case
    rigid = reg.rigid_case(cfg, data)
    rigid_tre = reg.tre_table(data, rigid)
    failures = reg.failure_cases(cfg, data)
    failure_tre = reg.tre_table(data, failures)
    breathing = reg.breathing_case(cfg, data)
    ev = reg.evaluate_breathing(data, breathing)
    m = reg.checked_metrics(data, rigid_tre, failure_tre, ev)
    methods = tuple(k for k in reg.CHECKED_METHODS if k != "localnet")  # the learned row: its own test
    assert set(m) == {"a_rigid_tre_before_mm", "a_rigid_tre_after_mm", "a_rigid_single_res_tre_mm",
                      "d_mean_squares_tre_mm", "d_no_init_tre_mm", "d_geometry_init_tre_mm"} | {
        f"b_{k}_{q}" for k in methods for q in ("landmark_tre_mm", "dense_tre_organs_mm", "dense_tre_body_mm",
                                                "dice", "folding_percent")}
    # before = the true CT <-> MR offset at the landmarks
    assert m["a_rigid_tre_before_mm"] == pytest.approx(tre_summary(c.landmarks.mr, c.landmarks.ct)["mean"])
    first = rigid["rigid MI, 3-level pyramid"]
    assert m["a_rigid_tre_after_mm"] == pytest.approx(landmark_tre(first.transform, c.landmarks.mr,
                                                                   c.landmarks.ct)["mean"])
    assert m["a_rigid_tre_after_mm"] < m["a_rigid_tre_before_mm"] / 3
    # the failures fail and the initialised run recovers
    assert m["d_mean_squares_tre_mm"] > 3 * m["a_rigid_tre_after_mm"]
    assert m["d_no_init_tre_mm"] == -1.0 or m["d_no_init_tre_mm"] > 3 * m["d_geometry_init_tre_mm"]
    # before registration the dense error is |u|; the organs move, so their median error is the motion
    organ = np.isin(c.labels_deformed.array, list(reg.ORGANS))
    assert m["b_before_dense_tre_organs_mm"] == pytest.approx(float(np.median(c.displacement.magnitude[organ])),
                                                              rel=1e-5)
    assert m["b_before_folding_percent"] == 0.0
    assert ev.table.loc["demons", "status"] == "converged"
    assert set(ev.organs.columns) == set(methods)


@pytest.mark.slow
def test_mni_case_moves_the_template_by_the_known_transform_and_rigid_mi_recovers_it() -> None:
    cfg = reg.Params.validate_values({"mni_spacing_mm": 8.0, "rigid_iterations": 30, "mni_n_points": 10})
    case = reg.mni_case(cfg)  # type: ignore[arg-type]
    # moving(T(x)) = fixed(x) up to the contrast change: the moved brain points land on brain in the moving image
    assert case.truth.apply(case.points).shape == (10, 3)
    res = reg.mni_register(cfg, case)  # type: ignore[arg-type]
    table = case.table(res)
    before, after = table["tre_mean_mm"]
    assert before == pytest.approx(float(np.linalg.norm(case.truth.apply(case.points) - case.points, axis=1).mean()))
    assert after < before / 4


def test_the_checked_numbers_depend_on_the_seed() -> None:
    a = reg.load_case(reg.Params.validate_values({**reg.QUICK, "seed": 0}))  # type: ignore[arg-type]
    b = reg.load_case(reg.Params.validate_values({**reg.QUICK, "seed": 1}))  # type: ignore[arg-type]
    before = [tre_summary(d.case.landmarks.mr, d.case.landmarks.ct)["mean"] for d in (a, b)]
    assert round(before[0], 2) != round(before[1], 2)


@pytest.mark.slow
def test_learned_case_trains_on_other_patients_and_scores_like_any_transform(
        quick: tuple[reg.Params, reg.CaseData]) -> None:
    cfg, data = quick
    lc = reg.LearnedParams(pairs=2, val_pairs=1, epochs=2, channels=4, levels=2, field_weight=1.0, label_weight=1.0)
    train, val = reg.learned_pairs(cfg, lc)
    assert len(train) == 4 and len(val) == 1  # both directions of 2 patients; 1 validation patient
    assert all(np.isfinite(p["ddf"].numpy()).all() for p in train[::2])  # forward pairs carry the true field
    assert all(np.isnan(p["ddf"].numpy()).all() for p in train[1::2])  # its inverse is not known
    assert int(train[0]["fixed_label"].max()) <= len(reg.ORGANS)
    result, fitted = reg.learned_case(cfg, data, lc)
    assert result.ok and result.engine.startswith("MONAI LocalNet") and fitted.epochs_run == 2
    assert {"similarity", "bending", "label", "field"} <= set(fitted.history.columns)
    ev = reg.evaluate_breathing(data, {"localnet": result})
    row = ev.table.loc["localnet"]
    assert np.isfinite(row["dense_tre_organs_median_mm"]) and 0.0 <= row["dice_organs"] <= 1.0
    with pytest.raises(reg.RegistrationError, match="multiple of"):
        reg.learned_case(cfg, data, reg.LearnedParams(levels=4, downsample=4))
    rows, summary, history = reg.learned_rows(cfg, data)  # QUICK: one training patient, one epoch
    assert list(rows) == ["localnet"] and int(summary.loc["LocalNet", "epochs"]) == 1
    assert int(summary.loc["LocalNet", "train_pairs"]) == 2 and "val_field_error" in history


@pytest.mark.slow
def test_the_bone_sampled_rigid_stage_keeps_the_skeleton_where_the_whole_image_rigid_moves_it() -> None:
    """Case (b) on the smoke grid: breathing moves the organs, not the bones. Rigid MI on the whole image trades
    bone alignment for organ alignment; sampled on bone it stays on the skeleton (its true displacement is 0)."""
    cfg = reg.Params()
    data = reg.load_case(cfg)
    stage = reg.breathing_rigid(cfg, data)
    assert list(stage) == ["rigid_whole_image", "rigid"]
    bone = data.case.ct_deformed.array >= cfg.deformable.bone_hu
    err = {k: float(np.median(dense_error_map(r.transform, data.case.displacement, data.case.ct_deformed
                                              ).array[bone])) for k, r in stage.items()}
    assert err["rigid"] < 1.0 < 3.0 < err["rigid_whole_image"], err
    whole_only = reg.breathing_rigid(reg.Params.validate_values({"deformable_rigid_sampling": "image"}), data)
    assert list(whole_only) == ["rigid"]  # type: ignore[arg-type]


def test_the_learned_margin_is_the_best_classical_organ_error_minus_the_learned_one() -> None:
    import pandas as pd

    rigid_tre = pd.DataFrame({"tre_before_mm": [20.0, 20.0], "tre_after_mm": [0.5, 1.0]}, index=["pyr", "single"])
    failure_tre = pd.DataFrame({"tre_after_mm": [90.0, np.nan, 0.6]}, index=["ms", "none", "geometry"])
    cols = ("landmark_tre_mm", "dense_tre_organs_median_mm", "dense_tre_body_median_mm", "dice_organs",
            "folding_percent")
    organs = {"before": 10.0, "rigid": 9.0, "bspline": 3.0, "demons": 2.0, "localnet": 2.5}
    table = pd.DataFrame([{"method": m, **dict.fromkeys(cols, 0.0), "dense_tre_organs_median_mm": v}
                          for m, v in organs.items()]).set_index("method")
    ev = reg.BreathingEvaluation(table, pd.DataFrame(), {}, {}, {})
    m = reg.checked_metrics(None, rigid_tre, failure_tre, ev)  # type: ignore[arg-type]
    assert m["b_localnet_margin_mm"] == pytest.approx(-0.5)  # demons (2.0) is better than the LocalNet (2.5)
    assert m["d_no_init_tre_mm"] == -1.0 and m["b_localnet_dense_tre_organs_mm"] == 2.5
    m = reg.checked_metrics(None, rigid_tre, failure_tre, reg.BreathingEvaluation(  # type: ignore[arg-type]
        table.drop(index="localnet"), pd.DataFrame(), {}, {}, {}))
    assert "b_localnet_margin_mm" not in m


def test_learned_rows_are_empty_when_the_learned_section_is_off(quick: tuple[reg.Params, reg.CaseData]) -> None:
    cfg, data = quick
    rows, summary, history = reg.learned_rows(cfg.model_copy(update={"learned": reg.LearnedParams(enabled=False)}),
                                              data)
    assert rows == {} and summary.empty and history.empty
