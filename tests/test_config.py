"""medbench.config (schema machinery) and medbench.recipes (registry, profiles)."""

from __future__ import annotations

from typing import ClassVar, Literal

import pytest
from pydantic import Field

from medbench import config, recipes
from medbench.errors import ConfigError


class _Train(config.Section):
    epochs: int = Field(2, ge=1)
    lr: float = 1e-3
    checkpoint: str | None = None


class _Model(config.Section):
    name: Literal["unet", "unetr"] = "unet"
    channels: list[int] = Field(default_factory=lambda: [8, 16])


class _Schema(config.Params):
    notebook: ClassVar[str] = "99_test"
    model: _Model = Field(default_factory=_Model)
    train: _Train = Field(default_factory=_Train)
    note: str = ""
    epochs_by_model: dict[str, int] = Field(default_factory=lambda: {"unet": 4, "unetr": 2})


# -- machinery ------------------------------------------------------------------------------
def test_flat_names_join_the_path_with_underscores() -> None:
    assert _Schema.flat_fields() == {
        "seed": ("seed",), "model_name": ("model", "name"), "model_channels": ("model", "channels"),
        "train_epochs": ("train", "epochs"), "train_lr": ("train", "lr"),
        "train_checkpoint": ("train", "checkpoint"), "note": ("note",), "epochs_by_model": ("epochs_by_model",),
    }
    assert _Schema.defaults_flat()["train_checkpoint"] is None


@pytest.mark.parametrize(
    "values",
    [{"train_epochs": 5}, {"train.epochs": 5}, {"train": {"epochs": 5}}],
    ids=["flat", "dotted", "nested"],
)
def test_flat_dotted_and_nested_spellings_are_equivalent(values: dict) -> None:
    p = config.validate(_Schema, values)
    assert p.train.epochs == 5 and p.train.lr == 1e-3 and p.model.name == "unet"


def test_optional_values_accept_none_and_their_type_only() -> None:
    assert config.validate(_Schema, {"train_checkpoint": "best.pt"}).train.checkpoint == "best.pt"
    assert config.validate(_Schema, {"train_checkpoint": None}).train.checkpoint is None
    with pytest.raises(ConfigError, match=r"'train.checkpoint' \(train_checkpoint in the parameters cell\)"):
        config.validate(_Schema, {"train_checkpoint": 3})


def test_flat_name_collisions_are_rejected() -> None:
    class Bad(config.Params):
        train: _Train = Field(default_factory=_Train)
        train_epochs: int = 1

    with pytest.raises(ConfigError, match="both have the flat name 'train_epochs'"):
        Bad.flat_fields()


def test_unknown_nested_parameter_suggests_the_closest_name() -> None:
    with pytest.raises(ConfigError, match=r"unknown parameter 'train.epoch' \(did you mean 'train.epochs'\?\)"):
        config.validate(_Schema, {"train.epoch": 3})
    with pytest.raises(ConfigError, match=r"unknown parameter 'train_epoch' \(did you mean 'train_epochs'\?\)"):
        config.validate(_Schema, {"train_epoch": 3})
    with pytest.raises(ConfigError, match="unknown parameter 'train.momentum'"):
        config.validate(_Schema, {"train": {"momentum": 0.9}})


def test_schemas_are_frozen() -> None:
    p = config.validate(_Schema, {})
    with pytest.raises(Exception, match="frozen"):
        p.train.epochs = 9  # type: ignore[misc]


def test_merged_applies_layers_in_order_and_keeps_sibling_values() -> None:
    p = config.merged(_Schema, {"train": {"epochs": 4, "lr": 0.1}}, {"train.epochs": 7})
    assert (p.train.epochs, p.train.lr) == (7, 0.1)


@pytest.mark.parametrize(("layer", "expected"), [
    ({"epochs_by_model": {}}, {}),
    ({"epochs_by_model": {"unetr": 9}}, {"unetr": 9}),
    ({"train": {"epochs": 5}}, {"unet": 4, "unetr": 2}),
])
def test_merged_replaces_a_mapping_valued_parameter_whole(layer: dict[str, object], expected: dict[str, int]) -> None:
    # sections merge key by key; a parameter whose value is a mapping is one value: {} clears it
    p = config.merged(_Schema, layer)
    assert p.epochs_by_model == expected
    assert p.train.epochs == layer.get("train", {}).get("epochs", 2)  # type: ignore[attr-defined]


def test_diff_lists_changed_parameters_by_dotted_name() -> None:
    p = config.validate(_Schema, {"seed": 3, "model.channels": [4, 8]})
    assert config.diff(p, _Schema()) == {"seed": 3, "model.channels": [4, 8]}


# -- registry and profiles ------------------------------------------------------------------------
@pytest.mark.parametrize("notebook", list(recipes.NOTEBOOKS))
def test_smoke_profile_is_the_schema_defaults(notebook: str) -> None:
    assert recipes.resolve(notebook, "smoke").to_flat() == recipes.defaults(notebook)


@pytest.mark.parametrize("notebook", list(recipes.NOTEBOOKS))
def test_every_profile_validates_and_full_differs(notebook: str) -> None:
    profiles = recipes.load_profiles(notebook)
    assert set(recipes.PROFILES) <= set(profiles)
    full = recipes.resolve(notebook, "full")
    assert full.to_flat() != recipes.defaults(notebook)
    if "epochs_by_model" in profiles["full"]:  # the profile's per-model epochs are exactly what it writes
        assert full.epochs_by_model == profiles["full"]["epochs_by_model"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("key", "value"),
    [("seed", "1"), ("seed", True), ("seed", 1.5), ("data_n_cases", None), ("data_image_size", [64, 64]),
     ("data_spacing", ["a", 1, 1]), ("data_source", "ct_only"), ("seed", -1), ("data_n_cases", 0)],
)
def test_bad_values_are_config_errors_naming_the_parameter(key: str, value: object) -> None:
    dotted = key.replace("data_", "data.", 1)
    with pytest.raises(ConfigError, match=repr(dotted).replace(".", r"\.")):
        recipes.validate("00_tour", {key: value})


def test_ints_are_accepted_for_floats_and_tuples_for_lists() -> None:
    p = recipes.validate("00_tour", {"data_spacing": (1, 1, 2)})
    assert p.data.spacing == [1.0, 1.0, 2.0] and all(isinstance(v, float) for v in p.data.spacing)  # type: ignore[attr-defined]


def test_overrides_apply_after_profile() -> None:
    p = recipes.resolve("01_data_audit", "full", {"seed": 7})
    assert p.seed == 7 and p.data.n_cases == recipes.load_profiles("01_data_audit")["full"]["data"]["n_cases"]  # type: ignore[attr-defined]


def test_changed_parameters_are_relative_to_the_profile() -> None:
    p = recipes.resolve("00_tour", "full", {"seed": 2})
    assert recipes.changed_parameters("00_tour", "full", p) == {"seed": 2}


def test_unknown_profile_lists_available() -> None:
    with pytest.raises(ConfigError, match="unknown profile 'huge'; available: full, smoke"):
        recipes.resolve("00_tour", "huge")


@pytest.mark.parametrize("name", ["00_tour", "00_tour.ipynb", "notebooks/00_tour.ipynb", "00", "tour"])
def test_notebook_names_resolve(name: str) -> None:
    assert recipes.resolve_notebook(name) == "00_tour"


def test_unknown_notebook_suggests() -> None:
    with pytest.raises(ConfigError, match=r"unknown notebook '00_tuor' \(did you mean '00_tour'\?\)"):
        recipes.resolve_notebook("00_tuor")


# -- command line ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [("seed=3", ("seed", 3)), ("data.spacing=[1, 1, 2.5]", ("data.spacing", [1, 1, 2.5])),
     ("audit_include_pydicom_samples=false", ("audit_include_pydicom_samples", False)),
     ("audit.dicomweb_url=", ("audit.dicomweb_url", "")), ("train.checkpoint=null", ("train.checkpoint", None))],
)
def test_parse_override(text: str, expected: tuple) -> None:
    assert config.parse_override(text) == expected


@pytest.mark.parametrize("text", ["seed", "=3", "se ed=1", "seed=[1,", "train..epochs=1", "1x=2"])
def test_malformed_override(text: str) -> None:
    with pytest.raises(ConfigError, match="malformed parameter"):
        config.parse_override(text)


# -- notebooks: which names count as parameters -------------------------------------------------
def test_literal_assignments_recognises_parameter_cells_only() -> None:
    assert config.literal_assignments("# Parameters\nseed = 3\nname = 'x'\n") == {"seed": 3, "name": "x"}
    assert config.literal_assignments("seed = 3\nprint(seed)") is None
    assert config.literal_assignments("x = f(3)") is None
    assert config.literal_assignments("a = b = 1") is None


def test_from_namespace_reads_the_parameter_cells_and_ignores_later_variables() -> None:
    import math

    params_cell = "seed = 2\ntrain_epochs = 4"
    injected = "# Parameters\ntrain_lr = 0.5\n"
    setup = "cfg = _Schema.from_namespace(globals())"
    ns = {"seed": 2, "train_epochs": 4, "train_lr": 0.5, "math": math, "checked": {"a": 1}, "cols": ["x"],
          "In": ["", params_cell, injected, setup]}
    p = _Schema.from_namespace(ns)
    assert (p.seed, p.train.epochs, p.train.lr) == (2, 4, 0.5)
    # a second Run All: later cells' variables exist but are not in the parameter cells
    ns["In"] = ns["In"] + ["checked = {'a': 1}", "cols = ['x']", params_cell, injected, setup]
    assert _Schema.from_namespace(ns).train.lr == 0.5


def test_from_namespace_rejects_a_misspelt_injected_parameter() -> None:
    ns = {"seed": 0, "train_epocs": 3, "In": ["", "seed = 0", "# Parameters\ntrain_epocs = 3\n", "setup"]}
    with pytest.raises(ConfigError, match=r"unknown parameter 'train_epocs' \(did you mean 'train_epochs'\?\)"):
        _Schema.from_namespace(ns)


def test_from_namespace_without_history_reads_only_schema_names() -> None:
    ns = {"seed": 5, "train_epochs": 3, "metrics": {"x": 1}, "n_case": 3}
    p = _Schema.from_namespace(ns)
    assert (p.seed, p.train.epochs) == (5, 3)
