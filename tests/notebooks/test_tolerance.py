"""tools.nbval_tolerance: which printed numbers may move, by how much, and that everything else stays exact."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tools import nbval_tolerance as nt

ROOT = Path(__file__).resolve().parents[2]
RULES = {"04_segmentation": {"dice_*": 0.03, "margin": 0.0}}
REF = "baseline_dice: 0.51\ndice_mean_unet: 0.64\nmargin: 0.13\nn_cases: 6\nok: True"


def test_a_tolerated_number_within_its_tolerance_takes_the_committed_line() -> None:
    test = REF.replace("dice_mean_unet: 0.64", "dice_mean_unet: 0.62")
    assert nt.reconcile(test, REF, RULES, "04_segmentation") == REF


def test_the_tolerance_boundary_is_inclusive_and_one_step_beyond_fails() -> None:
    at = REF.replace("dice_mean_unet: 0.64", "dice_mean_unet: 0.61")
    beyond = REF.replace("dice_mean_unet: 0.64", "dice_mean_unet: 0.60")
    assert nt.reconcile(at, REF, RULES, "04_segmentation") == REF
    assert nt.reconcile(beyond, REF, RULES, "04_segmentation") == beyond


@pytest.mark.parametrize("changed", [
    "n_cases: 7",  # no rule: exact
    "margin: 0.14",  # a rule of 0: exact
    "ok: False",  # not a number
])
def test_lines_without_a_tolerance_stay_exact(changed: str) -> None:
    key = changed.split(":")[0]
    test = "\n".join(changed if line.startswith(key + ":") else line for line in REF.split("\n"))
    assert nt.reconcile(test, REF, RULES, "04_segmentation") == test


def test_rules_belong_to_their_notebook_and_missing_or_extra_lines_are_left_to_nbval() -> None:
    test = REF.replace("dice_mean_unet: 0.64", "dice_mean_unet: 0.63")
    assert nt.reconcile(test, REF, RULES, "05_fusion") == test
    extra = test + "\ndice_extra: 0.5"
    assert nt.reconcile(extra, REF, RULES, "04_segmentation") == REF + "\ndice_extra: 0.5"
    assert nt.reconcile("dice_mean_unet: 0.63", "dice_mean_unet: 0.64\ndice_mean_unet: 0.64", RULES,
                        "04_segmentation") == "dice_mean_unet: 0.63"


def test_negative_numbers_and_the_first_matching_glob() -> None:
    rules = {"nb": {"drop_*": 0.5, "*": 0.01}}
    assert nt.tolerance(rules, "nb", "drop_early") == 0.5
    assert nt.tolerance(rules, "nb", "other") == 0.01
    assert nt.reconcile("drop_early: -0.20", "drop_early: 0.20", rules, "nb") == "drop_early: 0.20"
    assert nt.reconcile("other: -0.20", "other: 0.20", rules, "nb") == "other: -0.20"


@pytest.mark.parametrize("bad", [["x"], {"nb": {}}, {"nb": {"k": -0.1}}, {"nb": {"k": "wide"}},
                                 {"nb": {"k": True}}, {"nb": {"k": float("inf")}}])
def test_a_malformed_tolerance_file_is_refused(bad: object, tmp_path: Path) -> None:
    path = tmp_path / "tol.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match="tol.yaml"):
        nt.load_rules(path)


def test_the_project_file_names_only_real_notebooks_and_checked_keys() -> None:
    """Every rule names a notebook of the series and matches at least one line its checked cell prints."""
    rules = nt.load_rules(ROOT / "tests" / "notebooks" / "tolerance.yaml")
    for notebook, globs in rules.items():
        path = ROOT / "notebooks" / f"{notebook}.ipynb"
        assert path.exists(), notebook
        text = nt.checked_text(path)
        keys = [m["key"] for m in map(nt.LINE.match, text.split("\n")) if m]
        for glob in globs:
            assert any(nt.tolerance({notebook: {glob: 0.0}}, notebook, k) is not None for k in keys), (notebook, glob)
