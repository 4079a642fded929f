"""Public-dataset manifests: one YAML file per dataset in ``data_manifests/``.

A manifest says where a dataset's files live, how to verify them (a checksum
per file — never optional), its licence and citation, how to unpack it, and
where images and labels are once unpacked. :func:`load_manifest` validates a
manifest completely and returns a frozen :class:`Manifest`; every problem is a
:class:`~medbench.errors.ConfigError` naming the file and the field, so a typo
fails before anything is downloaded. :mod:`medbench.data.fetch` does the
downloading.

Schema (unknown keys are rejected)::

    name: msd_spleen                 # = the file's stem
    title: ...
    description: ...
    homepage: https://...
    licence: CC-BY-SA-4.0            # SPDX id or free text
    citation: ...
    modalities: [CT]
    files:
      - url: https://.../Task09_Spleen.tar
        sha256: "<64 hex digits>"    # or md5: "<32 hex digits>" when only that is published
        filename: Task09_Spleen.tar  # optional; default: last part of the URL
        size_bytes: 1234             # optional, informative
        extract: tar                 # none | zip | tar.gz | tar
        members: [Task09_Spleen/imagesTr]   # optional: extract only these (files or folders)
    layout:                          # glob patterns relative to the unpacked folder
      images: "Task09_Spleen/imagesTr/*.nii.gz"
      labels: "Task09_Spleen/labelsTr/*.nii.gz"   # optional
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

import pandas as pd
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

import medbench
from medbench.errors import ConfigError

#: Environment variable naming another folder of manifests (tests, private datasets).
ENV_VAR = "MEDBENCH_MANIFESTS"

#: Archive kinds a manifest file may declare.
EXTRACT_KINDS = ("none", "zip", "tar.gz", "tar")

#: Checksum fields in order of preference, with their hex length.
HASH_FIELDS = {"sha256": 64, "md5": 32}

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class ManifestFile:
    """One downloadable file of a dataset, with its checksum."""

    url: str
    filename: str
    hash_alg: str
    hash_value: str
    extract: str
    size_bytes: int | None = None
    members: tuple[str, ...] | None = None

    @property
    def known_hash(self) -> str:
        """The checksum in pooch's ``"alg:hexdigest"`` form."""
        return f"{self.hash_alg}:{self.hash_value}"


@dataclass(frozen=True)
class Layout:
    """Where images and (optionally) labels are, as globs relative to the unpacked folder."""

    images: str
    labels: str | None = None


@dataclass(frozen=True)
class Manifest:
    """A validated dataset manifest (see the module docstring for the YAML schema)."""

    name: str
    title: str
    description: str
    homepage: str
    licence: str
    citation: str
    modalities: tuple[str, ...]
    files: tuple[ManifestFile, ...]
    layout: Layout
    path: Path

    @property
    def size_bytes(self) -> int | None:
        """Total download size when every file declares it, else None."""
        sizes = [f.size_bytes for f in self.files if f.size_bytes is not None]
        return sum(sizes) if len(sizes) == len(self.files) else None


def manifests_dir() -> Path:
    """The manifests folder: ``$MEDBENCH_MANIFESTS`` or the repository's ``data_manifests/``."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    return Path(medbench.__file__).resolve().parent.parent / "data_manifests"


def list_manifests() -> list[str]:
    """Names of the datasets with a manifest, sorted."""
    folder = manifests_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.yaml") if not p.name.startswith("."))


def manifest_table() -> pd.DataFrame:
    """One row per available manifest (name, title, modalities, licence, files, homepage)."""
    rows = []
    for name in list_manifests():
        m = load_manifest(name)
        rows.append({"name": m.name, "title": m.title, "modalities": ", ".join(m.modalities),
                     "licence": m.licence, "files": len(m.files), "size_bytes": m.size_bytes,
                     "homepage": m.homepage})
    columns = ["name", "title", "modalities", "licence", "files", "size_bytes", "homepage"]
    return pd.DataFrame(rows, columns=columns)


def load_manifest(name_or_path: str | os.PathLike[str]) -> Manifest:
    """Load and validate a manifest given a dataset name or the path of a YAML file."""
    path = _resolve(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"manifest {path}: cannot be read ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"manifest {path}: not valid YAML ({exc})") from exc
    return _parse(raw, path)


def _resolve(name_or_path: str | os.PathLike[str]) -> Path:
    text = os.fspath(name_or_path)
    candidate = Path(text).expanduser()
    looks_like_path = candidate.suffix in (".yaml", ".yml") or "/" in text or os.sep in text
    if looks_like_path:
        if not candidate.is_file():
            raise ConfigError(f"manifest {candidate}: no such file")
        return candidate
    path = manifests_dir() / f"{text}.yaml"
    if not path.is_file():
        available = ", ".join(list_manifests()) or "none"
        raise ConfigError(f"unknown dataset {text!r}: no manifest {path} (available: {available})")
    return path


_Text = Annotated[StrictStr, StringConstraints(strip_whitespace=True, min_length=1)]


def _relative(value: str) -> str:
    """A relative POSIX path without ``..``: patterns and members stay inside the dataset."""
    posix = PurePosixPath(value)
    if posix.is_absolute() or "\\" in value or ".." in posix.parts or re.match(r"^[A-Za-z]:", value):
        raise ValueError(f"must be a relative path inside the dataset without '..', got {value!r}")
    return str(posix)


def _http(value: str) -> str:
    if urlparse(value).scheme not in ("http", "https"):
        raise ValueError(f"must be an http(s) URL, got {value!r}")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _FileModel(_Strict):
    url: _Text
    sha256: Any = None
    md5: Any = None
    size_bytes: StrictInt | None = Field(None, gt=0)
    filename: _Text | None = None
    extract: Literal["none", "zip", "tar.gz", "tar"] = "none"
    members: list[_Text] | None = Field(None, min_length=1)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _http(v)

    @field_validator("sha256", "md5")
    @classmethod
    def _hex(cls, v: Any, info: ValidationInfo) -> Any:
        if v is None:
            return v
        length = HASH_FIELDS[str(info.field_name)]
        if not isinstance(v, str) or not re.fullmatch(rf"[0-9a-fA-F]{{{length}}}", v.strip()):
            raise ValueError(f"must be a quoted string of {length} hex digits, got {v!r}")
        return v.strip().lower()

    @field_validator("members")
    @classmethod
    def _members(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [_relative(m.rstrip("/")) for m in v]

    @model_validator(mode="after")
    def _checks(self) -> _FileModel:
        given = [alg for alg in HASH_FIELDS if getattr(self, alg) is not None]
        if not given:
            raise _FieldError("sha256", "is required (or md5 when only an MD5 is published): "
                                        "a file without a checksum is never downloaded")
        if len(given) > 1:
            raise _FieldError(given[1], f"conflicts with {{prefix}}{given[0]}: give one checksum")
        name = self.resolved_filename
        if not name or "/" in name or "\\" in name or name.startswith(".") or name == "extracted":
            raise _FieldError("filename", f"must be a plain file name (no folders, not hidden, not 'extracted'), "
                                          f"got {name!r}")
        if self.members is not None and self.extract == "none":
            raise _FieldError("members", "only applies to an archive (extract: zip, tar.gz or tar)")
        return self

    @property
    def resolved_filename(self) -> str:
        return self.filename or PurePosixPath(urlparse(self.url).path).name


class _LayoutModel(_Strict):
    images: _Text
    labels: _Text | None = None

    @field_validator("images", "labels")
    @classmethod
    def _rel(cls, v: str | None) -> str | None:
        return None if v is None else _relative(v)


class _ManifestModel(_Strict):
    name: _Text
    title: _Text
    description: _Text
    homepage: _Text
    licence: _Text
    citation: _Text
    modalities: list[_Text] = Field(min_length=1)
    files: list[_FileModel] = Field(min_length=1)
    layout: _LayoutModel

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError(f"must be letters, digits, '_', '-' or '.', got {v!r}")
        return v

    @field_validator("homepage")
    @classmethod
    def _homepage(cls, v: str) -> str:
        return _http(v)

    @field_validator("files")
    @classmethod
    def _unique(cls, v: list[_FileModel]) -> list[_FileModel]:
        names = [f.resolved_filename for f in v]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"lists the filename(s) {', '.join(duplicates)} more than once")
        return v


class _FieldError(ValueError):
    """A model-level check that names one field of the model it ran on."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}\0{reason}")


_TYPE_HINTS = {
    "missing": "is required",
    "list_type": "must be a non-empty list",
    "too_short": "must be a non-empty list",
    "string_type": "must be a non-empty string",
    "string_too_short": "must be a non-empty string",
    "model_type": "must be a mapping",
    "dict_type": "must be a mapping",
    "int_type": "must be a positive integer",
    "greater_than": "must be a positive integer",
    "literal_error": f"must be one of {', '.join(EXTRACT_KINDS)}",
}


def _loc(parts: tuple[Any, ...]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _manifest_error(path: Path, exc: ValidationError) -> ConfigError:
    """The first problem of a validation, as ``manifest PATH: field 'files[0].sha256' <reason>``."""
    errors = exc.errors(include_url=False)
    extras = [e for e in errors if e["type"] == "extra_forbidden"]
    if extras:
        parent = extras[0]["loc"][:-1]
        unknown = sorted(str(e["loc"][-1]) for e in extras if e["loc"][:-1] == parent)
        models: dict[str, type[BaseModel]] = {"files": _FileModel, "layout": _LayoutModel}
        model: type[BaseModel] = _ManifestModel
        for part in parent:
            if isinstance(part, str):
                model = models.get(part, model)
        allowed = ", ".join(model.model_fields)
        where = _loc(parent) or "(top level)"
        return ConfigError(f"manifest {path}: field {where!r} has unknown key(s) {', '.join(unknown)} "
                           f"(allowed: {allowed})")
    err = errors[0]
    loc = tuple(err["loc"])
    ctx_error = err.get("ctx", {}).get("error")
    if isinstance(ctx_error, _FieldError):
        field, _, reason = str(ctx_error).partition("\0")
        prefix = _loc(loc) + "." if loc else ""
        return ConfigError(f"manifest {path}: field {prefix + field!r} {reason.replace('{prefix}', prefix)}")
    if err["type"] == "value_error":
        reason = str(err["msg"]).removeprefix("Value error, ")
    else:
        reason = _TYPE_HINTS.get(err["type"], str(err["msg"]))
        if err["type"] != "missing":
            reason += f", got {err.get('input')!r}"
    return ConfigError(f"manifest {path}: field {_loc(loc)!r} {reason}")


def _parse(raw: Any, path: Path) -> Manifest:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"manifest {path}: must be a YAML mapping of fields, got {type(raw).__name__}")
    try:
        m = _ManifestModel.model_validate(dict(raw))
    except ValidationError as exc:
        raise _manifest_error(path, exc) from None
    if m.name != path.stem:
        raise ConfigError(f"manifest {path}: field 'name' is {m.name!r} but must match the file name {path.name!r}")
    files = tuple(
        ManifestFile(url=f.url, filename=f.resolved_filename, hash_alg="sha256" if f.sha256 else "md5",
                     hash_value=f.sha256 or f.md5, extract=f.extract, size_bytes=f.size_bytes,
                     members=tuple(f.members) if f.members is not None else None)
        for f in m.files
    )
    return Manifest(name=m.name, title=m.title, description=m.description, homepage=m.homepage, licence=m.licence,
                    citation=m.citation, modalities=tuple(m.modalities), files=files,
                    layout=Layout(images=m.layout.images, labels=m.layout.labels), path=path)

