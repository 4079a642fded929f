"""Tests for medbench.data.fetch: downloads come from a local HTTP server, never the internet."""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import io
import socket
import tarfile
import threading
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

from medbench.data import cli as fetch_cli
from medbench.data.fetch import dataset_files, fetch
from medbench.errors import FetchError

ROOT = "tiny"


class _Server:
    """A ThreadingHTTPServer on 127.0.0.1 serving ``folder``, counting the requests it gets."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:
                pass

        handler = functools.partial(Handler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def url(self, filename: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{filename}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[_Server]:
    folder = tmp_path / "served"
    folder.mkdir()
    srv = _Server(folder)
    yield srv
    srv.close()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Manifests, cache and network settings confined to this test."""
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    monkeypatch.setenv("MEDBENCH_MANIFESTS", str(manifests))
    monkeypatch.setenv("MEDBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MEDBENCH_OFFLINE", raising=False)
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return manifests


def _nifti_bytes(value: int) -> bytes:
    img = nib.Nifti1Image(np.full((4, 3, 2), value, dtype=np.int16), np.diag([1.5, 1.5, 3.0, 1.0]))
    return img.to_bytes()


def _dataset_members() -> dict[str, bytes]:
    """Two cases (one with a label) plus a macOS resource fork that the layout must ignore."""
    return {
        f"{ROOT}/imagesTr/case_1.nii": _nifti_bytes(1),
        f"{ROOT}/imagesTr/case_2.nii": _nifti_bytes(2),
        f"{ROOT}/labelsTr/case_1.nii": _nifti_bytes(0),
        f"{ROOT}/imagesTr/._case_1.nii": b"\x00\x05\x16\x07 resource fork",
    }


def _make_tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_manifest(folder: Path, name: str, files: list[dict], labels: bool = True) -> Path:
    layout = {"images": f"{ROOT}/imagesTr/*.nii"}
    if labels:
        layout["labels"] = f"{ROOT}/labelsTr/*.nii"
    doc = {"name": name, "title": "Tiny test set", "description": "Two NIfTI cases.",
           "homepage": "https://example.org/tiny", "licence": "CC0-1.0", "citation": "None.",
           "modalities": ["CT"], "files": files, "layout": layout}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def _publish(server: _Server, manifests: Path, archive: Path, extract: str, name: str = "tiny",
             sha256: str | None = None, **extra: object) -> str:
    """Serve ``archive`` and write a manifest for it; return the dataset name."""
    served = server.folder / archive.name
    if archive != served:
        served.write_bytes(archive.read_bytes())
    entry = {"url": server.url(archive.name), "sha256": sha256 or _sha256(served), "extract": extract, **extra}
    _write_manifest(manifests, name, [entry])
    return name


def _dataset_folder(tmp_path: Path, name: str = "tiny") -> Path:
    return tmp_path / "cache" / "datasets" / name


def test_fetch_tar_gz_extracts_and_lists_pairs(server: _Server, isolated: Path, tmp_path: Path) -> None:
    archive = _make_tar(server.folder / "tiny.tar.gz", _dataset_members())
    name = _publish(server, isolated, archive, "tar.gz")

    root = fetch(name, progress=False)

    assert root == _dataset_folder(tmp_path) / "extracted"
    assert (root / ROOT / "imagesTr" / "case_2.nii").read_bytes() == _nifti_bytes(2)
    assert server.requests == ["/tiny.tar.gz"]
    assert (_dataset_folder(tmp_path) / "tiny.tar.gz").read_bytes() == archive.read_bytes()
    leftovers = [p.name for p in _dataset_folder(tmp_path).iterdir() if p.name not in ("tiny.tar.gz", "extracted")]
    assert leftovers == []

    table = dataset_files(name, progress=False)
    assert list(table["case"]) == ["case_1", "case_2"]
    assert table.loc[0, "label"] == str(root / ROOT / "labelsTr" / "case_1.nii")
    assert pd.isna(table.loc[1, "label"])
    assert nib.load(table.loc[1, "image"]).get_fdata().max() == 2


def test_fetch_zip_and_plain_file(server: _Server, isolated: Path) -> None:
    archive = _make_zip(server.folder / "tiny.zip", _dataset_members())
    plain = server.folder / "notes.txt"
    plain.write_text("readme", encoding="utf-8")
    files = [{"url": server.url("tiny.zip"), "sha256": _sha256(archive), "extract": "zip"},
             {"url": server.url("notes.txt"), "sha256": _sha256(plain), "extract": "none"}]
    _write_manifest(isolated, "tiny", files)

    root = fetch("tiny", progress=False)

    assert (root / "notes.txt").read_text(encoding="utf-8") == "readme"
    table = dataset_files("tiny", progress=False)
    assert list(table["case"]) == ["case_1", "case_2"]
    assert sorted(server.requests) == ["/notes.txt", "/tiny.zip"]


def test_second_fetch_is_a_cache_hit(server: _Server, isolated: Path) -> None:
    name = _publish(server, isolated, _make_tar(server.folder / "tiny.tar", _dataset_members(), "w"), "tar")
    first = fetch(name, progress=False)
    assert len(server.requests) == 1

    assert fetch(name, progress=False) == first
    dataset_files(name, progress=False)
    assert len(server.requests) == 1


def test_checksum_mismatch_keeps_nothing(server: _Server, isolated: Path, tmp_path: Path) -> None:
    archive = _make_tar(server.folder / "tiny.tar.gz", _dataset_members())
    wrong = "0" * 64
    name = _publish(server, isolated, archive, "tar.gz", sha256=wrong)

    with pytest.raises(FetchError) as err:
        fetch(name, progress=False)

    message = str(err.value)
    assert "tiny.tar.gz" in message and wrong in message and _sha256(archive) in message
    folder = _dataset_folder(tmp_path)
    assert not folder.exists() or list(folder.iterdir()) == []


def test_corrupt_cached_file_is_downloaded_again(server: _Server, isolated: Path, tmp_path: Path) -> None:
    name = _publish(server, isolated, _make_tar(server.folder / "tiny.tar.gz", _dataset_members()), "tar.gz")
    folder = _dataset_folder(tmp_path)
    folder.mkdir(parents=True)
    (folder / "tiny.tar.gz").write_bytes(b"truncated")

    root = fetch(name, progress=False)

    assert server.requests == ["/tiny.tar.gz"]
    assert (root / ROOT / "imagesTr" / "case_1.nii").is_file()


def test_changed_manifest_unpacks_again(server: _Server, isolated: Path) -> None:
    name = _publish(server, isolated, _make_tar(server.folder / "v1.tar.gz", _dataset_members()), "tar.gz")
    root = fetch(name, progress=False)
    assert (root / ROOT / "imagesTr" / "case_2.nii").is_file()

    members = {k: v for k, v in _dataset_members().items() if "case_2" not in k}
    _publish(server, isolated, _make_tar(server.folder / "v2.tar.gz", members), "tar.gz")
    root = fetch(name, progress=False)

    assert not (root / ROOT / "imagesTr" / "case_2.nii").exists()
    assert list(dataset_files(name, progress=False)["case"]) == ["case_1"]


def test_members_selects_part_of_an_archive(server: _Server, isolated: Path) -> None:
    archive = _make_tar(server.folder / "tiny.tar.gz", _dataset_members())
    name = _publish(server, isolated, archive, "tar.gz", members=[f"{ROOT}/labelsTr"])
    root = fetch(name, progress=False)
    assert (root / ROOT / "labelsTr" / "case_1.nii").is_file()
    assert not (root / ROOT / "imagesTr").exists()

    _publish(server, isolated, archive, "tar.gz", members=[f"{ROOT}/missing"])
    with pytest.raises(FetchError, match=f"{ROOT}/missing listed in the manifest are not in the archive"):
        fetch(name, progress=False)


def _offline_message(tmp_path: Path, sha: str) -> str:
    folder = _dataset_folder(tmp_path)
    return (f"tiny is not in the local cache ({folder}) and offline mode is on (MEDBENCH_OFFLINE=1); "
            f"fetch it once online with `medbench fetch tiny` or copy tiny.tar.gz (sha256 {sha}) into {folder}")


def test_offline_with_empty_cache_gives_the_exact_message(
        server: _Server, isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _make_tar(server.folder / "tiny.tar.gz", _dataset_members())
    name = _publish(server, isolated, archive, "tar.gz")
    expected = _offline_message(tmp_path, _sha256(archive))

    with pytest.raises(FetchError) as err:
        fetch(name, offline=True, progress=False)
    assert str(err.value) == expected

    monkeypatch.setenv("MEDBENCH_OFFLINE", "1")
    with pytest.raises(FetchError) as err:
        fetch(name, progress=False)
    assert str(err.value) == expected
    assert server.requests == []


def test_offline_with_warm_cache_makes_no_request(
        server: _Server, isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _make_tar(server.folder / "tiny.tar.gz", _dataset_members())
    name = _publish(server, isolated, archive, "tar.gz")
    root = fetch(name, progress=False)
    assert len(server.requests) == 1

    (_dataset_folder(tmp_path) / "tiny.tar.gz").unlink()  # the unpacked entry alone is enough

    monkeypatch.setenv("MEDBENCH_OFFLINE", "1")
    assert fetch(name, progress=False) == root
    assert len(dataset_files(name, progress=False)) == 2
    assert len(server.requests) == 1


def test_offline_unpacks_a_copied_archive(server: _Server, isolated: Path, tmp_path: Path) -> None:
    archive = _make_tar(server.folder / "tiny.tar.gz", _dataset_members())
    name = _publish(server, isolated, archive, "tar.gz")
    folder = _dataset_folder(tmp_path)
    folder.mkdir(parents=True)
    (folder / "tiny.tar.gz").write_bytes(archive.read_bytes())

    root = fetch(name, offline=True, progress=False)

    assert (root / ROOT / "labelsTr" / "case_1.nii").is_file()
    assert server.requests == []


def _tar_with(path: Path, info: tarfile.TarInfo, data: bytes = b"") -> Path:
    members = {f"{ROOT}/imagesTr/case_1.nii": _nifti_bytes(1)}
    _make_tar(path, members)
    with tarfile.open(path, "r:gz") as src:
        entries = [(m, src.extractfile(m).read()) for m in src.getmembers()]  # type: ignore[union-attr]
    with tarfile.open(path, "w:gz") as tar:
        for member, content in entries:
            tar.addfile(member, io.BytesIO(content))
        info.size = len(data) if info.isreg() else 0
        tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def _symlink(name: str, target: str, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info


def _device(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    return info


ABSOLUTE = f"/tmp/medbench-test-{uuid.uuid4().hex}"

UNSAFE_TARS = {
    "dotdot": (tarfile.TarInfo("../evil"), "'..' in path"),
    "absolute": (tarfile.TarInfo(ABSOLUTE), "absolute path"),
    "symlink_absolute": (_symlink(f"{ROOT}/passwd", "/etc/passwd"), "symbolic link to absolute path"),
    "symlink_outside": (_symlink(f"{ROOT}/up", "../../outside"), "outside the dataset"),
    "hardlink_outside": (_symlink(f"{ROOT}/hard", "../outside", hard=True), "hard link"),
    "device": (_device(f"{ROOT}/null"), "device file"),
}


@pytest.mark.parametrize("kind", sorted(UNSAFE_TARS))
def test_unsafe_tar_is_refused_and_nothing_extracted(
        kind: str, server: _Server, isolated: Path, tmp_path: Path) -> None:
    info, reason = UNSAFE_TARS[kind]
    archive = _tar_with(server.folder / "bad.tar.gz", info, b"evil")
    with tarfile.open(archive) as tar:  # the archive really holds the unsafe name as written
        assert info.name in tar.getnames()
    name = _publish(server, isolated, archive, "tar.gz")

    with pytest.raises(FetchError) as err:
        fetch(name, progress=False)

    message = str(err.value)
    assert "refusing to extract" in message and reason in message and "nothing was extracted" in message
    folder = _dataset_folder(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["bad.tar.gz"]
    assert not (tmp_path / "cache" / "datasets" / "evil").exists()
    assert not Path(ABSOLUTE).exists()


@pytest.mark.parametrize("member, reason", [("../evil", "'..' in path"), ("/abs/evil", "absolute path")])
def test_unsafe_zip_is_refused(member: str, reason: str, server: _Server, isolated: Path, tmp_path: Path) -> None:
    archive = server.folder / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"{ROOT}/imagesTr/case_1.nii", _nifti_bytes(1))
        zf.writestr(zipfile.ZipInfo(member), b"evil")
    name = _publish(server, isolated, archive, "zip")

    with pytest.raises(FetchError, match=reason):
        fetch(name, progress=False)

    assert sorted(p.name for p in _dataset_folder(tmp_path).iterdir()) == ["bad.zip"]


def test_zip_symlink_is_refused(server: _Server, isolated: Path, tmp_path: Path) -> None:
    archive = server.folder / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo(f"{ROOT}/passwd")
        info.create_system = 3
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    name = _publish(server, isolated, archive, "zip")

    with pytest.raises(FetchError, match="symbolic link"):
        fetch(name, progress=False)
    assert not (_dataset_folder(tmp_path) / "extracted").exists()


def test_http_404_names_the_url(server: _Server, isolated: Path, tmp_path: Path) -> None:
    url = server.url("missing.tar.gz")
    _write_manifest(isolated, "tiny", [{"url": url, "sha256": "a" * 64, "extract": "tar.gz"}])

    with pytest.raises(FetchError) as err:
        fetch("tiny", progress=False)

    assert url in str(err.value) and "404" in str(err.value)
    folder = _dataset_folder(tmp_path)
    assert not folder.exists() or list(folder.iterdir()) == []


def test_unreachable_server_names_the_url(isolated: Path) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/tiny.tar.gz"
    _write_manifest(isolated, "tiny", [{"url": url, "sha256": "a" * 64, "extract": "tar.gz"}])

    with pytest.raises(FetchError, match=f"could not download {url}: ConnectionError"):
        fetch("tiny", progress=False)


def test_cli_fetch_list_and_errors(server: _Server, isolated: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="medbench fetch")
    fetch_cli.configure(parser)
    archive = _make_tar(server.folder / "tiny.tar.gz", _dataset_members())
    name = _publish(server, isolated, archive, "tar.gz")
    other = tmp_path / "elsewhere"

    args = parser.parse_args([name, "--offline", "--data-dir", str(other)])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "offline mode is on" in err and str(other) in err

    args = parser.parse_args([name, "--data-dir", str(other), "-q"])
    assert args.func(args) == 0
    assert capsys.readouterr().out.strip() == str(other / "datasets" / name / "extracted")

    assert fetch_cli.run(parser.parse_args(["--list"])) == 0
    assert capsys.readouterr().out.startswith("tiny ")
    assert fetch_cli.run(parser.parse_args([])) == 2
    assert fetch_cli.run(parser.parse_args(["no_such_set"])) == 2
    assert "unknown dataset 'no_such_set'" in capsys.readouterr().err
