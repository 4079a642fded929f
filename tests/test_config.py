"""medbench.config: schemas, profiles and parameter validation."""

from __future__ import annotations

import dataclasses

import pytest

from medbench import config
from medbench.errors import ConfigError


@pytest.mark.parametrize("notebook", list(config.NOTEBOOKS))
def test_smoke_profile_is_the_schema_defaults(notebook: str) -> None:
    assert dataclasses.asdict(config.resolve(notebook, "smoke")) == config.defaults(notebook)


@pytest.mark.parametrize("notebook", list(config.NOTEBOOKS))
def test_every_profile_validates_and_full_differs(notebook: str) -> None:
    profiles = config.load_profiles(notebook)
    assert set(config.PROFILES) <= set(profiles)
    full = config.resolve(notebook, "full")
    assert dataclasses.asdict(full) != config.defaults(notebook)


def test_unknown_parameter_names_the_parameter_and_suggests() -> None:
    with pytest.raises(ConfigError, match=r"unknown parameter 'seeed' \(did you mean 'seed'\?\)"):
        config.validate("00_tour", {"seeed": 1})


@pytest.mark.parametrize(
    ("key", "value"),
    [("seed", "1"), ("seed", True), ("seed", 1.5), ("n_cases", None), ("image_size", [64, 64]),
     ("spacing", ["a", 1, 1]), ("data_source", "ct_only"), ("seed", -1), ("n_cases", 0)],
)
def test_bad_values_are_config_errors(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key.split("[")[0]):
        config.validate("00_tour", {key: value})


def test_ints_are_accepted_for_floats_and_lists_for_tuples() -> None:
    p = config.validate("00_tour", {"spacing": (1, 1, 2)})
    assert p.spacing == [1.0, 1.0, 2.0] and all(isinstance(v, float) for v in p.spacing)


def test_overrides_apply_after_profile() -> None:
    p = config.resolve("01_data_audit", "full", {"seed": 7})
    assert p.seed == 7 and p.n_cases == config.load_profiles("01_data_audit")["full"]["n_cases"]


def test_unknown_profile_lists_available() -> None:
    with pytest.raises(ConfigError, match="unknown profile 'huge'; available: full, smoke"):
        config.resolve("00_tour", "huge")


@pytest.mark.parametrize("name", ["00_tour", "00_tour.ipynb", "notebooks/00_tour.ipynb", "00", "tour"])
def test_notebook_names_resolve(name: str) -> None:
    assert config.resolve_notebook(name) == "00_tour"


def test_unknown_notebook_suggests() -> None:
    with pytest.raises(ConfigError, match=r"unknown notebook '00_tuor' \(did you mean '00_tour'\?\)"):
        config.resolve_notebook("00_tuor")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("seed=3", ("seed", 3)), ("spacing=[1, 1, 2.5]", ("spacing", [1, 1, 2.5])),
     ("include_pydicom_samples=false", ("include_pydicom_samples", False)), ("dicomweb_url=", ("dicomweb_url", ""))],
)
def test_parse_override(text: str, expected: tuple) -> None:
    assert config.parse_override(text) == expected


@pytest.mark.parametrize("text", ["seed", "=3", "se ed=1", "seed=[1,"])
def test_malformed_override(text: str) -> None:
    with pytest.raises(ConfigError, match="malformed parameter"):
        config.parse_override(text)


def test_from_namespace_ignores_modules_and_callables_but_rejects_unknown_data() -> None:
    import math

    ns = {"seed": 2, "math": math, "config": config, "print_it": print, "_private": 1, "In": []}
    assert config.from_namespace("00_tour", ns).seed == 2
    with pytest.raises(ConfigError, match="unknown parameter 'n_case'"):
        config.from_namespace("00_tour", {**ns, "n_case": 3})
