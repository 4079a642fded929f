"""The 06_explainability recipe: schema rules, QUICK, data plumbing and checked metrics with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from medbench.errors import ConfigError
from medbench.explain import Attribution
from medbench.recipes import explainability as ex


def test_defaults_quick_and_profiles_validate() -> None:
    cfg = ex.Params()
    assert cfg.classifier.name == "resnet" and cfg.classifier.pooling == "max" and cfg.data.downsample == 1
    quick = ex.Params.validate_values(ex.QUICK)
    assert quick.data.n_cases == 6 and quick.explain.methods == ["saliency", "gradcam"]
    from medbench.recipes import load_profiles, resolve

    assert set(load_profiles("06_explainability")) >= {"smoke", "full"}
    full = resolve("06_explainability", "full")
    assert full.data.n_cases == 80 and full.classifier.name == "densenet"


def test_schema_rejects_unknown_methods_and_modalities() -> None:
    with pytest.raises(ConfigError, match="unknown methods"):
        ex.Params.validate_values({"explain_methods": ["lime"]})
    with pytest.raises(ConfigError, match="modalities"):
        ex.Params.validate_values({"data_modalities": ["t1"]})


def test_cohort_specs_differ_only_by_the_cue() -> None:
    sp = ex.specs(ex.Params.validate_values({"data_cue_correlation": 0.8}))
    clean, spur = sp["clean"].model_dump(), sp["spurious"].model_dump()
    assert {k for k in clean if clean[k] != spur[k]} == {"spurious_cue", "cue_correlation", "cue_radius_mm"}
    assert spur["spurious_cue"] and spur["cue_correlation"] == 0.8 and spur["cue_split"] == "train"
    assert spur["cue_radius_mm"] == 12.0 and sp["clean"].key() == ex.specs(ex.Params())["clean"].key()


def _item(cid: str, label: int, cue: bool) -> ex.Item:
    cause = np.zeros((8, 8, 4), bool)
    cue_mask = np.zeros((8, 8, 4), bool)
    if label:
        cause[2:4, 2:4, 1:3] = True
    if cue:
        cue_mask[6, 6, 2] = True
    hosts = np.zeros((8, 8, 4), bool)
    hosts[1:5, 1:5, :] = True  # the "liver": the lesion lies inside it
    return ex.Item(cid, "test", label, cue, torch.zeros(2, 8, 8, 4), cause, cue_mask, hosts)


def test_dataset_permutes_labels_only_when_asked() -> None:
    items = [_item(f"c{i}", i % 2, False) for i in range(6)]
    data = ex.ClassData({"clean": {"train": items, "val": [], "test": []}}, {}, ["ct", "pet"], (8, 8, 4))
    plain = [int(d["label"]) for d in data.dataset("clean", "train")]
    assert plain == [0, 1, 0, 1, 0, 1]
    permuted = [int(d["label"]) for d in data.dataset("clean", "train", permute_seed=3)]
    assert sorted(permuted) == sorted(plain) and permuted != plain


def test_baseline_scores_are_the_pet_maximum_and_rank_the_hottest_case_first() -> None:
    items = [_item(f"c{i}", i % 2, False) for i in range(4)]
    for n, it in enumerate(items):
        it.image[1, 3, 3, 1] = 0.2 + 0.1 * n  # PET channel: hotter with n, positives are n = 1, 3
        it.image[0, 0, 0, 0] = 1.0 - 0.1 * n  # CT channel must not count
    data = ex.ClassData({"clean": {"train": items, "val": [], "test": items}}, {}, ["ct", "pet"], (8, 8, 4))
    scores, labels = ex.baseline_scores(data, "clean", "test")
    assert scores.tolist() == pytest.approx([0.2, 0.3, 0.4, 0.5]) and labels.tolist() == [0, 1, 0, 1]
    from medbench.metrics.classification import auroc

    assert auroc(scores, labels) == pytest.approx(0.75)  # 3 of the 4 positive-negative pairs are ordered
    ct_only = ex.ClassData({"clean": {"test": items}}, {}, ["ct"], (8, 8, 4))
    assert ex.baseline_scores(ct_only, "clean", "test")[0].tolist() == pytest.approx([1.0, 0.9, 0.8, 0.7])


def test_host_reference_reads_pet_inside_the_host_organs_only() -> None:
    items = [_item(f"c{i}", i % 2, False) for i in range(4)]
    for n, it in enumerate(items):
        it.image[1, 7, 7, 0] = 0.9 - 0.1 * n  # hot PET outside the hosts (a "kidney"): the baseline's maximum
        it.image[1, 2, 2, 1] = 0.3 + 0.2 * it.label  # inside the hosts: hotter in the positives (the lesion)
    data = ex.ClassData({"clean": {"train": items, "val": [], "test": items}}, {}, ["ct", "pet"], (8, 8, 4))
    from medbench.metrics.classification import auroc

    ref, labels = ex.host_reference_scores(data, "clean", "test")
    assert ref.tolist() == pytest.approx([0.3, 0.5, 0.3, 0.5]) and auroc(ref, labels) == 1.0
    base, _ = ex.baseline_scores(data, "clean", "test")
    assert base.tolist() == pytest.approx([0.9, 0.8, 0.7, 0.6]) and auroc(base, labels) == 0.25
    both = ex.ClassData({c: {"train": items, "val": [], "test": items} for c in ex.COHORTS}, {}, ["ct", "pet"],
                        (8, 8, 4))
    table = ex.classification_table(both, {})
    assert table.loc[(ex.HOST_REFERENCE, "clean"), "auroc"] == 1.0
    assert table.loc[(ex.BASELINE, "clean"), "auroc"] == 0.25
    ct_only = ex.ClassData({"clean": {"test": items}}, {}, ["ct"], (8, 8, 4))
    assert ex.host_reference_scores(ct_only, "clean", "test")[0].tolist() == [0.0] * 4


def test_pool_mask_keeps_any_covered_voxel() -> None:
    m = np.zeros((4, 4, 4), bool)
    m[1, 1, 1] = True
    pooled = ex._pool_mask(m, 2)
    assert pooled.shape == (2, 2, 2) and pooled[0, 0, 0] and pooled.sum() == 1


def _attr(method: str, rel: np.ndarray) -> Attribution:
    return Attribution(method, rel[None].astype(np.float32), rel.astype(np.float32), 0.1)


def test_checked_metrics_known_answers() -> None:
    table = pd.DataFrame([{"model": "clean", "test_cohort": "clean", "auroc": 0.9, "accuracy": 0.8, "cases": 4},
                          {"model": ex.BASELINE, "test_cohort": "clean", "auroc": 0.6, "accuracy": 0.5, "cases": 4}]
                         ).set_index(["model", "test_cohort"])
    expl_table = pd.DataFrame({"relevance_mass": [0.7, 0.2], "pointing_game": [1.0, 0.0], "chance_mass": [0.01, 0.01],
                               "deletion_auc": [0.1, 0.4], "insertion_auc": [0.9, 0.5]},
                              index=pd.Index(["integrated_gradients", "gradcam"], name="method"))
    expl = ex.Explanations([], {}, pd.DataFrame(), expl_table, {})
    verdict = pd.DataFrame({"passes": [True, False]}, index=pd.Index(["integrated_gradients", "gradcam"]))
    san = ex.Sanity(pd.DataFrame(), pd.DataFrame(), verdict, 0.5)
    short = ex.Shortcut(pd.DataFrame(), pd.DataFrame(), {"integrated_gradients": False, "gradcam": True}, [], {})
    out = ex.checked_metrics(table, expl, san, short)
    assert out["auroc_clean_clean"] == 0.9 and out["auroc_margin_clean"] == pytest.approx(0.3)
    assert out["best_method"] == "integrated_gradients" and out["best_mass"] == 0.7 and out["best_pointing"] == 1.0
    assert out["sanity_integrated_gradients"] == "pass" and out["sanity_gradcam"] == "fail"
    assert out["shortcut_detected"] == "yes" and out["shortcut_methods"] == "gradcam"
    short_none = ex.Shortcut(pd.DataFrame(), pd.DataFrame(), {"gradcam": False}, [], {})
    assert ex.checked_metrics(table, expl, san, short_none)["shortcut_detected"] == "no"


class _CueModel(torch.nn.Module):
    """Class 1's logit is the input at one fixed voxel (where the cue sits): a pure shortcut."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x[:, 0, 6, 6, 2] * 5.0
        return torch.stack([-s, s], dim=1)


class _LesionModel(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x[:, 1, 2:4, 2:4, 1:3].sum(dim=(1, 2, 3))
        return torch.stack([-s, s], dim=1)


def test_shortcut_is_revealed_for_a_cue_model_and_not_for_a_lesion_model() -> None:
    items = [_item("p0", 1, True), _item("p1", 1, True)]
    for it in items:
        it.image[:] = 0.5
    data = ex.ClassData({"spurious": {"test": items, "val": [], "train": []}}, {}, ["ct", "pet"], (8, 8, 4))
    cfg = ex.Params.validate_values({"explain_methods": ["saliency", "integrated_gradients"], "explain_n_steps": 4})
    trained = {"clean": ex.Trained("clean", _LesionModel(), None), "spurious": ex.Trained("spurious", _CueModel(), None)}  # type: ignore[arg-type]
    short = ex.shortcut(cfg, data, trained)
    assert short.revealed == {"saliency": True, "integrated_gradients": True}
    assert short.table.loc[("clean", "saliency"), "lesion_mass"] == pytest.approx(1.0)
    assert short.table.loc[("spurious", "saliency"), "cue_mass"] == pytest.approx(1.0)
    swapped = {"clean": trained["clean"], "spurious": ex.Trained("spurious", _LesionModel(), None)}  # type: ignore[arg-type]
    assert not any(ex.shortcut(cfg, data, swapped).revealed.values())
    # a method that flags the cue on the clean control too reveals nothing about the spurious model
    both = {"clean": ex.Trained("clean", _CueModel(), None), "spurious": trained["spurious"]}  # type: ignore[arg-type]
    short_both = ex.shortcut(cfg, data, both)
    assert short_both.table.loc[("clean", "saliency"), "cue_over_lesion"]
    assert not any(short_both.revealed.values())


def test_sanity_verdict_words() -> None:
    assert ex.sanity_word(True) == "pass" and ex.sanity_word(False) == "fail"
    assert ex.sanity_word(None) == "no map" and ex.sanity_word(float("nan")) == "no map"


def test_removal_tells_a_lesion_model_from_a_cue_model() -> None:
    def bright(it: ex.Item) -> ex.Item:
        it.image[:] = 0.1
        it.image[1][torch.from_numpy(it.cause)] = 0.9  # PET-avid lesion
        it.image[0][torch.from_numpy(it.cue)] = 1.0  # the marker on CT
        return it

    clean = [bright(_item("p0", 1, False)), bright(_item("n0", 0, False))]
    spurious = [bright(_item("p0", 1, True)), bright(_item("n0", 0, True))]
    data = ex.ClassData({"clean": {"test": clean, "val": [], "train": []},
                         "spurious": {"test": spurious, "val": [], "train": []}}, {}, ["ct", "pet"], (8, 8, 4))
    cfg = ex.Params.validate_values({"explain_removal_margin": 0, "explain_removal_ring": 1})
    trained = {"clean": ex.Trained("clean", _LesionModel(), None),  # type: ignore[arg-type]
               "spurious": ex.Trained("spurious", _CueModel(), None)}  # type: ignore[arg-type]
    removed = ex.removal(cfg, data, trained)
    t = removed.table
    assert t.loc[("clean", "lesion"), "cases"] == 1 and t.loc[("clean", "cue"), "cases"] == 2
    # the lesion model: p 0.9993 -> 0.83 without the lesion; the cue model: 0.993 -> 0.73 without the cue
    assert t.loc[("clean", "lesion"), "drop"] > 0.1 and t.loc[("clean", "cue"), "drop"] == pytest.approx(0.0)
    assert t.loc[("spurious", "cue"), "drop"] > 0.2 and t.loc[("spurious", "lesion"), "drop"] == pytest.approx(0.0)
    assert t["flipped"].sum() == 0  # both stay above 0.5 here
    out = ex.checked_metrics(pd.DataFrame(columns=["auroc"]), ex.Explanations([], {}, pd.DataFrame(), pd.DataFrame(
        {"relevance_mass": [0.1], "pointing_game": [0.0], "chance_mass": [0.01], "deletion_auc": [0.1],
         "insertion_auc": [0.1]}, index=pd.Index(["saliency"], name="method")), {}),
        ex.Sanity(pd.DataFrame(), pd.DataFrame(), pd.DataFrame({"passes": [True]}, index=["saliency"]), 0.5),
        ex.Shortcut(pd.DataFrame(), pd.DataFrame(), {"saliency": False}, [], {}), removed=removed)
    assert out["removal_lesion_clean"] == pytest.approx(float(t.loc[("clean", "lesion"), "drop"]))
    assert out["removal_cue_spurious"] > 0.2
