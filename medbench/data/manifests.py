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
from typing import Any
from urllib.parse import urlparse

import pandas as pd
import yaml

import medbench
from medbench.errors import ConfigError

#: Environment variable naming another folder of manifests (tests, private datasets).
ENV_VAR = "MEDBENCH_MANIFESTS"

#: Archive kinds a manifest file may declare.
EXTRACT_KINDS = ("none", "zip", "tar.gz", "tar")

#: Checksum fields in order of preference, with their hex length.
HASH_FIELDS = {"sha256": 64, "md5": 32}

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TOP_KEYS = ("name", "title", "description", "homepage", "licence", "citation", "modalities", "files", "layout")
_FILE_KEYS = ("url", "sha256", "md5", "size_bytes", "filename", "extract", "members")
_LAYOUT_KEYS = ("images", "labels")


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
        sizes = [f.size_bytes for f in self.files]
        return None if any(s is None for s in sizes) else sum(sizes)  # type: ignore[misc]


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


class _Checker:
    """Field accessors that raise ConfigError naming the manifest file and the field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, field: str, reason: str) -> ConfigError:
        return ConfigError(f"manifest {self.path}: field {field!r} {reason}")

    def mapping(self, value: Any, field: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
        if value is None:
            raise self.fail(field, "is required")
        if not isinstance(value, Mapping):
            raise self.fail(field, f"must be a mapping, got {type(value).__name__}")
        unknown = sorted(set(map(str, value)) - set(allowed))
        if unknown:
            raise self.fail(field, f"has unknown key(s) {', '.join(unknown)} (allowed: {', '.join(allowed)})")
        return value

    def text(self, data: Mapping[str, Any], key: str, prefix: str = "") -> str:
        """A required non-empty string field."""
        value = self.optional_text(data, key, prefix)
        if value is None:
            raise self.fail(f"{prefix}{key}", "is required")
        return value

    def optional_text(self, data: Mapping[str, Any], key: str, prefix: str = "") -> str | None:
        """A non-empty string field, or None when absent."""
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{prefix}{key}", f"must be a non-empty string, got {value!r}")
        return value.strip()

    def relative(self, value: str, field: str) -> str:
        """A relative POSIX path without ``..``: patterns and members stay inside the dataset."""
        posix = PurePosixPath(value)
        if posix.is_absolute() or "\\" in value or ".." in posix.parts or re.match(r"^[A-Za-z]:", value):
            raise self.fail(field, f"must be a relative path inside the dataset without '..', got {value!r}")
        return str(posix)


def _parse(raw: Any, path: Path) -> Manifest:
    check = _Checker(path)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"manifest {path}: must be a YAML mapping of fields, got {type(raw).__name__}")
    data = check.mapping(raw, "(top level)", _TOP_KEYS)
    name = check.text(data, "name")
    if not _NAME_RE.match(name):
        raise check.fail("name", f"must be letters, digits, '_', '-' or '.', got {name!r}")
    if name != path.stem:
        raise check.fail("name", f"is {name!r} but must match the file name {path.name!r}")
    homepage = check.text(data, "homepage")
    if urlparse(homepage).scheme not in ("http", "https"):
        raise check.fail("homepage", f"must be an http(s) URL, got {homepage!r}")
    modalities = data.get("modalities")
    if (not isinstance(modalities, list) or not modalities
            or not all(isinstance(m, str) and m.strip() for m in modalities)):
        raise check.fail("modalities", f"must be a non-empty list of strings, got {modalities!r}")
    files_raw = data.get("files")
    if not isinstance(files_raw, list) or not files_raw:
        raise check.fail("files", f"must be a non-empty list of files, got {files_raw!r}")
    files = tuple(_parse_file(check, item, f"files[{i}]") for i, item in enumerate(files_raw))
    names = [f.filename for f in files]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise check.fail("files", f"lists the filename(s) {', '.join(duplicates)} more than once")
    layout_raw = check.mapping(data.get("layout"), "layout", _LAYOUT_KEYS)
    images = check.text(layout_raw, "images", "layout.")
    labels = check.optional_text(layout_raw, "labels", "layout.")
    layout = Layout(images=check.relative(images, "layout.images"),
                    labels=None if labels is None else check.relative(labels, "layout.labels"))
    return Manifest(
        name=name,
        title=check.text(data, "title"),
        description=check.text(data, "description"),
        homepage=homepage,
        licence=check.text(data, "licence"),
        citation=check.text(data, "citation"),
        modalities=tuple(m.strip() for m in modalities),
        files=files,
        layout=layout,
        path=path,
    )


def _parse_file(check: _Checker, item: Any, field: str) -> ManifestFile:
    data = check.mapping(item, field, _FILE_KEYS)
    prefix = f"{field}."
    url = check.text(data, "url", prefix)
    if urlparse(url).scheme not in ("http", "https"):
        raise check.fail(f"{prefix}url", f"must be an http(s) URL, got {url!r}")
    hash_alg, hash_value = _parse_hash(check, data, prefix)
    filename = check.optional_text(data, "filename", prefix) or PurePosixPath(urlparse(url).path).name
    if not filename or "/" in filename or "\\" in filename or filename.startswith(".") or filename == "extracted":
        raise check.fail(f"{prefix}filename", f"must be a plain file name (no folders, not hidden, "
                         f"not 'extracted'), got {filename!r}")
    extract = data.get("extract", "none")
    if extract not in EXTRACT_KINDS:
        raise check.fail(f"{prefix}extract", f"must be one of {', '.join(EXTRACT_KINDS)}, got {extract!r}")
    size = data.get("size_bytes")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
        raise check.fail(f"{prefix}size_bytes", f"must be a positive integer, got {size!r}")
    members_raw = data.get("members")
    members = None
    if members_raw is not None:
        if extract == "none":
            raise check.fail(f"{prefix}members", "only applies to an archive (extract: zip, tar.gz or tar)")
        if not isinstance(members_raw, list) or not members_raw or not all(
                isinstance(m, str) and m.strip() for m in members_raw):
            raise check.fail(f"{prefix}members", f"must be a non-empty list of paths, got {members_raw!r}")
        members = tuple(check.relative(m.strip().rstrip("/"), f"{prefix}members") for m in members_raw)
    return ManifestFile(url=url, filename=filename, hash_alg=hash_alg, hash_value=hash_value,
                        extract=extract, size_bytes=size, members=members)


def _parse_hash(check: _Checker, data: Mapping[str, Any], prefix: str) -> tuple[str, str]:
    present = [alg for alg in HASH_FIELDS if alg in data]
    if not present:
        raise check.fail(f"{prefix}sha256", "is required (or md5 when only an MD5 is published): "
                         "a file without a checksum is never downloaded")
    if len(present) > 1:
        raise check.fail(f"{prefix}{present[1]}", f"conflicts with {prefix}{present[0]}: give one checksum")
    alg = present[0]
    value = data[alg]
    length = HASH_FIELDS[alg]
    if not isinstance(value, str) or not re.fullmatch(rf"[0-9a-fA-F]{{{length}}}", value.strip()):
        raise check.fail(f"{prefix}{alg}", f"must be a quoted string of {length} hex digits, got {value!r}")
    return alg, value.strip().lower()
