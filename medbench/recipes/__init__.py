"""medbench.recipes: one module per notebook — its parameters, its orchestration, its checked numbers.

A recipe module (``tour.py`` for ``00_tour``) holds:

* ``Params``: the notebook's parameter schema (a :class:`medbench.config.Params`);
  its defaults are the ``smoke`` profile and ``profiles/<notebook>.yaml`` holds
  the others;
* the orchestration calls the notebook makes, each one line in a cell;
* ``CHECKED``: every metric the notebook's ``# NBVAL_CHECK_OUTPUT`` cell
  prints, with why it is checked; and ``checked_metrics(...)``, which computes
  them (unit-tested with known answers).

This package is the registry: notebook stem -> recipe module, with the
profile machinery that needs both (:func:`resolve`). Layering: recipes sit
above every domain room and below the runner and the CLI.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

from medbench import config
from medbench.errors import ConfigError

PROFILES = config.PROFILES

#: Notebook stem -> recipe module. The order is the series order.
NOTEBOOKS: dict[str, str] = {
    "00_tour": "medbench.recipes.tour",
    "01_data_audit": "medbench.recipes.data_audit",
    "02_registration": "medbench.recipes.registration",
    "03_restoration": "medbench.recipes.restoration",
    "04_segmentation": "medbench.recipes.segmentation",
    "05_fusion": "medbench.recipes.fusion",
    "06_explainability": "medbench.recipes.explainability",
    "07_inference_benchmark": "medbench.recipes.inference_benchmark",
}


def resolve_notebook(name: str) -> str:
    """Accept ``00_tour``, ``00_tour.ipynb``, ``notebooks/00_tour.ipynb``, ``00`` or ``tour``."""
    stem = Path(name).name.removesuffix(".ipynb")
    if stem in NOTEBOOKS:
        return stem
    matches = [nb for nb in NOTEBOOKS if nb.split("_", 1)[0] == stem or nb.split("_", 1)[1] == stem]
    if len(matches) == 1:
        return matches[0]
    hint = difflib.get_close_matches(stem, list(NOTEBOOKS), n=1)
    extra = f" (did you mean {hint[0]!r}?)" if hint else ""
    raise ConfigError(f"unknown notebook {name!r}{extra}; known notebooks: {', '.join(NOTEBOOKS)}")


def recipe(notebook: str) -> ModuleType:
    """The recipe module of a notebook."""
    return importlib.import_module(NOTEBOOKS[resolve_notebook(notebook)])


def schema_for(notebook: str) -> type[config.Params]:
    schema: type[config.Params] = recipe(notebook).Params
    return schema


def defaults(notebook: str) -> dict[str, Any]:
    """The schema defaults (= the smoke profile) by flat parameter name."""
    return schema_for(notebook).defaults_flat()


def profile_path(notebook: str) -> Path:
    return Path(str(resources.files("medbench.recipes") / "profiles" / f"{resolve_notebook(notebook)}.yaml"))


def load_profiles(notebook: str) -> dict[str, dict[str, Any]]:
    """All profiles of a notebook from its YAML (each a partial override of the defaults)."""
    return config.read_profiles(profile_path(notebook), resolve_notebook(notebook))


def resolve(notebook: str, profile: str = "smoke", overrides: Mapping[str, Any] | None = None) -> config.Params:
    """Defaults, then the profile, then ``overrides`` (flat or dotted names) — validated."""
    stem = resolve_notebook(notebook)
    profiles = load_profiles(stem)
    if profile not in profiles:
        raise ConfigError(f"{stem}: unknown profile {profile!r}; available: {', '.join(sorted(profiles))}")
    return config.merged(schema_for(stem), profiles[profile], overrides, where=stem)


def validate(notebook: str, values: Mapping[str, Any]) -> config.Params:
    """The notebook's schema built from ``values`` (flat names, dotted paths or nested mappings)."""
    stem = resolve_notebook(notebook)
    return config.validate(schema_for(stem), values, where=stem)


def changed_parameters(notebook: str, profile: str, params: config.Params) -> dict[str, Any]:
    """Dotted name -> value of every parameter that differs from the named profile (the run's overrides)."""
    return config.diff(params, resolve(notebook, profile))
