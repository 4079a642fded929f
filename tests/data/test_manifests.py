"""Tests for medbench.data.manifests: the shipped manifests and the schema's error messages."""

from __future__ import annotations

import ast
import copy
import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

import medbench
from medbench.data.manifests import list_manifests, load_manifest, manifest_table, manifests_dir
from medbench.errors import ConfigError

SHIPPED = Path(medbench.__file__).resolve().parent.parent / "data_manifests"

VALID: dict[str, Any] = {
    "name": "demo",
    "title": "Demo",
    "description": "A demo dataset.",
    "homepage": "https://example.org/demo",
    "licence": "CC-BY-4.0",
    "citation": "Someone (2024).",
    "modalities": ["MR"],
    "files": [{"url": "https://example.org/files/demo.tar.gz", "sha256": "ab" * 32, "extract": "tar.gz"}],
    "layout": {"images": "demo/images/*.nii.gz", "labels": "demo/labels/*.nii.gz"},
}


@pytest.fixture
def manifests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MEDBENCH_MANIFESTS", str(tmp_path))
    return tmp_path


def _write(folder: Path, doc: Any, stem: str = "demo") -> Path:
    path = folder / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(doc) if not isinstance(doc, str) else doc, encoding="utf-8")
    return path


def test_every_shipped_manifest_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDBENCH_MANIFESTS", raising=False)
    assert manifests_dir() == SHIPPED
    names = list_manifests()
    assert names == sorted(p.stem for p in SHIPPED.glob("*.yaml")) and len(names) >= 2
    for name in names:
        m = load_manifest(name)
        assert m.name == name and m.path == SHIPPED / f"{name}.yaml"
        for f in m.files:
            assert f.url.startswith("https://")
            assert f.known_hash.split(":")[0] in ("sha256", "md5")
    assert list(manifest_table()["name"]) == names


def _monai_decathlon_table() -> tuple[dict[str, str], dict[str, str]]:
    """DecathlonDataset.resource and .md5, read from MONAI's source (importing monai.apps takes seconds)."""
    spec = importlib.util.find_spec("monai")
    assert spec is not None and spec.origin is not None
    tree = ast.parse((Path(spec.origin).parent / "apps" / "datasets.py").read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "DecathlonDataset")
    values = {t.id: ast.literal_eval(n.value) for n in cls.body if isinstance(n, ast.Assign)
              for t in n.targets if isinstance(t, ast.Name) and t.id in ("resource", "md5")}
    return values["resource"], values["md5"]


def test_decathlon_manifests_carry_monai_checksums(monkeypatch: pytest.MonkeyPatch) -> None:
    """The URLs and MD5s must be exactly those MONAI's DecathlonDataset uses."""
    resource, md5 = _monai_decathlon_table()
    monkeypatch.delenv("MEDBENCH_MANIFESTS", raising=False)
    checked = 0
    for name in list_manifests():
        for f in load_manifest(name).files:
            task = f.filename.removesuffix(".tar")
            if task in resource:
                assert f.url == resource[task]
                assert f.known_hash == f"md5:{md5[task]}"
                checked += 1
    assert checked >= 2


def test_valid_manifest_loads_by_name_and_path(manifests: Path) -> None:
    path = _write(manifests, VALID)
    by_name = load_manifest("demo")
    assert by_name == load_manifest(path)
    assert by_name.files[0].filename == "demo.tar.gz"  # default: last part of the URL
    assert by_name.files[0].known_hash == "sha256:" + "ab" * 32
    assert by_name.modalities == ("MR",)
    assert list_manifests() == ["demo"]


def test_md5_is_accepted(manifests: Path) -> None:
    doc = copy.deepcopy(VALID)
    doc["files"][0] = {"url": "https://example.org/a.zip", "md5": "0F" * 16, "extract": "zip"}
    _write(manifests, doc)
    assert load_manifest("demo").files[0].known_hash == "md5:" + "0f" * 16


def _broken(mutate: Any) -> dict[str, Any]:
    doc = copy.deepcopy(VALID)
    mutate(doc)
    return doc


BROKEN = {
    "missing checksum": (lambda d: d["files"][0].pop("sha256"), "'files[0].sha256' is required"),
    "short sha256": (lambda d: d["files"][0].update(sha256="abc"), "'files[0].sha256' must be a quoted string of 64"),
    "two checksums": (lambda d: d["files"][0].update(md5="a" * 32), "'files[0].md5' conflicts with files[0].sha256"),
    "unknown key": (lambda d: d.update(licnce="x"), "unknown key(s) licnce"),
    "unknown file key": (lambda d: d["files"][0].update(sha1="x"), "'files[0]' has unknown key(s) sha1"),
    "bad extract": (lambda d: d["files"][0].update(extract="rar"), "'files[0].extract' must be one of"),
    "name mismatch": (lambda d: d.update(name="other"), "must match the file name 'demo.yaml'"),
    "missing title": (lambda d: d.pop("title"), "'title' is required"),
    "missing layout": (lambda d: d.pop("layout"), "'layout' is required"),
    "layout dotdot": (lambda d: d["layout"].update(images="../x/*.nii"), "'layout.images' must be a relative path"),
    "layout absolute": (lambda d: d["layout"].update(labels="/x/*.nii"), "'layout.labels' must be a relative path"),
    "filename folder": (lambda d: d["files"][0].update(filename="a/b.tar"), "'files[0].filename' must be a plain"),
    "ftp url": (lambda d: d["files"][0].update(url="ftp://h/a.tar"), "'files[0].url' must be an http(s) URL"),
    "no files": (lambda d: d.update(files=[]), "'files' must be a non-empty list"),
    "modalities string": (lambda d: d.update(modalities="CT"), "'modalities' must be a non-empty list"),
    "members on plain file": (lambda d: d["files"][0].update(extract="none", members=["a"]),
                              "'files[0].members' only applies to an archive"),
    "duplicate filename": (lambda d: d["files"].append(dict(d["files"][0])), "lists the filename(s) demo.tar.gz"),
    "size not int": (lambda d: d["files"][0].update(size_bytes="big"), "'files[0].size_bytes' must be a positive"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_invalid_manifest_names_file_and_field(case: str, manifests: Path) -> None:
    mutate, expected = BROKEN[case]
    path = _write(manifests, _broken(mutate))
    with pytest.raises(ConfigError) as err:
        load_manifest("demo")
    assert f"manifest {path}" in str(err.value)
    assert expected in str(err.value)


def test_unquoted_numeric_checksum_is_refused(manifests: Path) -> None:
    text = yaml.safe_dump(VALID).replace("ab" * 32, "1" * 64)  # unquoted digits: YAML reads an int
    assert yaml.safe_load(text)["files"][0]["sha256"] == int("1" * 64)
    _write(manifests, text)
    with pytest.raises(ConfigError, match="quoted string of 64 hex digits"):
        load_manifest("demo")


def test_invalid_yaml_and_unknown_names(manifests: Path) -> None:
    path = _write(manifests, "name: [unclosed\n")
    with pytest.raises(ConfigError, match=f"manifest {path}: not valid YAML"):
        load_manifest("demo")
    with pytest.raises(ConfigError, match=r"unknown dataset 'nope'.*available: demo"):
        load_manifest("nope")
    with pytest.raises(ConfigError, match="no such file"):
        load_manifest(manifests / "absent.yaml")
