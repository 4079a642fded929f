"""Parameter schemas, one per notebook, and their named profiles (DESIGN §4).

Each notebook has a frozen dataclass schema whose defaults are the ``smoke``
profile (CPU, deterministic, a couple of minutes at most); ``full`` and any
other profile live in ``medbench/profiles/<notebook>.yaml``. Papermill only
warns about unknown parameters, so validation happens twice: ``medbench run``
validates before executing anything, and the notebook's setup cell calls
:func:`from_namespace`, which rejects a parameter the schema does not know —
also one injected by a plain ``papermill -p``.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from medbench.errors import ConfigError

PROFILES = ("smoke", "full")


@dataclasses.dataclass(frozen=True)
class NotebookParams:
    """Parameters every notebook takes."""

    #: Seed for every random number generator of the run.
    seed: int = 0
    #: Run folder; empty means ``reports/<notebook>/interactive`` (``medbench run`` sets it).
    output_dir: str = ""

    def check(self) -> list[str]:
        """Cross-field and range checks; a list of problems (empty when valid)."""
        return ["seed must be >= 0"] if self.seed < 0 else []


@dataclasses.dataclass(frozen=True)
class PhantomParams(NotebookParams):
    """Parameters of notebooks that run on the synthetic phantom cohort."""

    #: Number of synthetic cases.
    n_cases: int = 2
    #: Phantom grid (i, j, k) in voxels.
    image_size: list[int] = dataclasses.field(default_factory=lambda: [64, 64, 32])
    #: Voxel spacing (i, j, k) in mm.
    spacing: list[float] = dataclasses.field(default_factory=lambda: [1.5, 1.5, 3.0])

    def check(self) -> list[str]:
        problems = super().check()
        if self.n_cases < 1:
            problems.append("n_cases must be >= 1")
        if len(self.image_size) != 3 or min(self.image_size) < 8:
            problems.append("image_size must be three integers, each >= 8")
        if len(self.spacing) != 3 or min(self.spacing) <= 0:
            problems.append("spacing must be three positive numbers (mm)")
        return problems


@dataclasses.dataclass(frozen=True)
class TourParams(PhantomParams):
    """00_tour: the phantom, viewers, windowing and profiles."""

    #: Where the images come from: the synthetic phantom, or nilearn's bundled MNI152 T1 template.
    data_source: Literal["phantom", "mni152"] = "phantom"
    #: 3D viewer backend: auto (offline-safe), niivue, slices or itk (online only, opt-in).
    view3d_backend: Literal["auto", "niivue", "slices", "itk"] = "auto"


@dataclasses.dataclass(frozen=True)
class DataAuditParams(PhantomParams):
    """01_data_audit: DICOM/NIfTI ingestion, audit, de-identification, DICOMweb."""

    #: Also audit the real sample files that ship inside pydicom.
    include_pydicom_samples: bool = True
    #: Base URL of a DICOMweb server to audit as well (empty: skip the PACS section).
    dicomweb_url: str = ""
    #: Shift dates per patient during de-identification (intervals preserved).
    deid_date_shift: bool = True

    def check(self) -> list[str]:
        problems = super().check()
        if self.dicomweb_url and not self.dicomweb_url.startswith(("http://", "https://")):
            problems.append("dicomweb_url must start with http:// or https://")
        return problems


#: Notebook stem -> schema. The order is the series order.
NOTEBOOKS: dict[str, type[NotebookParams]] = {
    "00_tour": TourParams,
    "01_data_audit": DataAuditParams,
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


def schema_for(notebook: str) -> type[NotebookParams]:
    return NOTEBOOKS[resolve_notebook(notebook)]


def _describe(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if get_origin(tp) is list:
        return f"list of {get_args(tp)[0].__name__}"
    return getattr(tp, "__name__", str(tp))


def _coerce(notebook: str, key: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against the annotation ``tp``; convert only lossless cases."""

    def bad() -> ConfigError:
        return ConfigError(
            f"{notebook}: parameter {key!r} must be {_describe(tp)}, got {value!r} ({type(value).__name__})"
        )

    origin = get_origin(tp)
    if origin is Literal:
        if value not in get_args(tp):
            raise bad()
        return value
    if origin is list:
        (item_tp,) = get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise bad()
        return [_coerce(notebook, f"{key}[{i}]", v, item_tp) for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise bad()
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad()
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad()
        return value
    raise TypeError(f"unsupported parameter annotation {tp!r} for {key}")


def validate(notebook: str, values: Mapping[str, Any]) -> NotebookParams:
    """Build the notebook's schema from ``values``: unknown keys and wrong types are errors."""
    notebook = resolve_notebook(notebook)
    schema = NOTEBOOKS[notebook]
    hints = typing.get_type_hints(schema, include_extras=False)
    fields = {f.name for f in dataclasses.fields(schema)}
    unknown = sorted(set(values) - fields)
    if unknown:
        parts = []
        for key in unknown:
            hint = difflib.get_close_matches(key, sorted(fields), n=1)
            parts.append(f"{key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        raise ConfigError(
            f"{notebook}: unknown parameter {', '.join(parts)}; valid parameters: {', '.join(sorted(fields))}"
        )
    coerced = {k: _coerce(notebook, k, v, hints[k]) for k, v in values.items()}
    params = schema(**coerced)
    problems = params.check()
    if problems:
        raise ConfigError(f"{notebook}: " + "; ".join(problems))
    return params


def defaults(notebook: str) -> dict[str, Any]:
    """The schema defaults (= the smoke profile) as a plain dict."""
    return dataclasses.asdict(schema_for(notebook)())


def profile_path(notebook: str) -> Path:
    return Path(str(resources.files("medbench") / "profiles" / f"{resolve_notebook(notebook)}.yaml"))


def load_profiles(notebook: str) -> dict[str, dict[str, Any]]:
    """All profiles of a notebook from its YAML (each a partial override of the defaults)."""
    path = profile_path(notebook)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{notebook}: profile file {path} is missing") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) or v is None for v in data.values()):
        raise ConfigError(f"{path}: expected a mapping of profile name -> parameters")
    return {str(k): dict(v or {}) for k, v in data.items()}


def resolve(notebook: str, profile: str = "smoke", overrides: Mapping[str, Any] | None = None) -> NotebookParams:
    """Defaults, then the profile, then ``overrides`` — validated."""
    profiles = load_profiles(notebook)
    if profile not in profiles:
        raise ConfigError(
            f"{resolve_notebook(notebook)}: unknown profile {profile!r}; available: {', '.join(sorted(profiles))}"
        )
    values = {**defaults(notebook), **profiles[profile], **dict(overrides or {})}
    return validate(notebook, values)


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one ``-p KEY=VALUE``; the value is read as a YAML scalar/list (``3``, ``true``, ``[1,2]``)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise ConfigError(f"malformed parameter {text!r}: expected KEY=VALUE, e.g. -p seed=1")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        raise ConfigError(f"malformed parameter {text!r}: the value is not a valid literal") from None
    return key, value


_SKIP_TYPES = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type)


def from_namespace(notebook: str, namespace: Mapping[str, Any]) -> NotebookParams:
    """Validate the parameters a notebook's ``parameters`` cell (and papermill) defined.

    Call from the setup cell as ``cfg = config.from_namespace("00_tour", globals())``.
    Every public plain-data global (numbers, strings, lists, dicts, None) counts as a
    parameter, so a misspelt ``papermill -p seeed 3`` is an error here instead of a
    silently ignored warning.
    """
    ignore = {"In", "Out", "exit", "quit", "get_ipython", "open"}
    values = {
        k: v
        for k, v in namespace.items()
        if not k.startswith("_") and k not in ignore and not isinstance(v, _SKIP_TYPES)
        and isinstance(v, (int, float, str, list, tuple, dict, type(None)))
    }
    return validate(notebook, values)
