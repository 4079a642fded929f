"""Download, verify and safely unpack a public dataset described by a manifest.

``fetch("msd_spleen")`` makes sure the dataset is in the cache and returns its
unpacked folder; ``dataset_files("msd_spleen")`` lists its image/label pairs as
a DataFrame, which is all a notebook needs to switch from the phantom to real
data. Cache layout::

    <cache_root>/datasets/<name>/
        <filename>                  downloaded files, each verified by its checksum
        extracted/                  unpacked content, complete when it holds
            .medbench-dataset.json  the stamp written last (which files, which hashes)

Guarantees:

* Checksummed and atomic: :func:`pooch.retrieve` streams each file to a
  temporary name in the same folder, checks the hash and only then renames it;
  a mismatch deletes the download and raises :class:`FetchError` with the
  expected and actual hash. A cached file with a wrong hash is downloaded again.
* Safe extraction: every member of an archive is checked before anything is
  written — absolute paths, ``..`` components, links that point outside the
  dataset, device files and FIFOs refuse the whole archive. Tar archives are
  then extracted with :mod:`tarfile`'s ``"data"`` filter as a second guard. The
  content is unpacked into a temporary folder renamed into place
  (:func:`medbench.data.cache.build_entry`), so ``extracted/`` is whole or absent.
* Offline (``offline=True`` or ``MEDBENCH_OFFLINE=1``): a complete cache entry
  is used as is, verified downloads are unpacked, and anything missing raises a
  :class:`FetchError` that says exactly which file to copy where.
* A complete entry whose stamp matches the manifest is a cache hit: no network
  request and no re-hashing of multi-gigabyte archives.
"""

from __future__ import annotations

import glob
import json
import os
import posixpath
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pooch
import requests

from medbench.data.cache import build_entry, cache_root
from medbench.data.manifests import Manifest, ManifestFile, load_manifest
from medbench.errors import DataError, FetchError

#: Environment variable that turns offline mode on (``1``, ``true``, ``yes``, ``on``).
OFFLINE_ENV = "MEDBENCH_OFFLINE"

#: Name of the unpacked folder inside a dataset's cache folder.
EXTRACTED = "extracted"

#: Stamp file written last into the unpacked folder; its presence marks the entry complete.
STAMP = ".medbench-dataset.json"

_CHUNK = 1 << 20  # download chunk size; pooch's default (1 KiB) is slow for gigabyte archives


def is_offline(offline: bool | None = None) -> bool:
    """``offline`` when given, else whether ``$MEDBENCH_OFFLINE`` is set to a true value."""
    if offline is not None:
        return offline
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def dataset_dir(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder of dataset ``name``: ``<data_dir or cache_root()>/datasets/<name>``."""
    return cache_root(data_dir) / "datasets" / name


def fetch(
    name: str | os.PathLike[str] | Manifest,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
    progress: bool = True,
) -> Path:
    """Make sure dataset ``name`` is downloaded, verified and unpacked; return the unpacked folder.

    ``name`` is a manifest name (see :func:`~medbench.data.manifests.list_manifests`),
    the path of a manifest file, or a loaded :class:`Manifest`. ``data_dir``
    replaces the cache root (the dataset goes to ``<data_dir>/datasets/<name>``).
    ``offline`` defaults to ``$MEDBENCH_OFFLINE``. ``progress`` shows a download
    progress bar.
    """
    manifest = name if isinstance(name, Manifest) else load_manifest(name)
    folder = dataset_dir(manifest.name, data_dir)
    extracted = folder / EXTRACTED
    stamp = _stamp(manifest)
    if _stamp_matches(extracted, stamp):
        return extracted
    if is_offline(offline):
        missing = [f for f in manifest.files if not _verified(folder / f.filename, f)]
        if missing:
            raise FetchError(offline_message(manifest, folder, missing))
    else:
        for file in manifest.files:
            _download(manifest, file, folder, progress)
    build_entry(extracted, lambda tmp: _unpack(manifest, folder, tmp, stamp), marker=STAMP,
                refresh=extracted.exists())
    return extracted


def offline_message(manifest: Manifest, folder: Path, missing: Iterable[ManifestFile]) -> str:
    """The exact error text for a dataset that offline mode cannot provide."""
    files = ", ".join(f"{f.filename} ({f.hash_alg} {f.hash_value})" for f in missing)
    return (f"{manifest.name} is not in the local cache ({folder}) and offline mode is on "
            f"(MEDBENCH_OFFLINE=1); fetch it once online with `medbench fetch {manifest.name}` "
            f"or copy {files} into {folder}")


def dataset_files(
    name: str | os.PathLike[str] | Manifest,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Image/label pairs of a dataset (fetched first if needed), one row per case.

    Columns: ``case`` (the part of the file name the layout's wildcards
    matched, e.g. ``spleen_10``), ``image`` and ``label`` (absolute paths as
    strings; missing (NA) where a case has no label, or no image). Files whose
    name starts with a dot (macOS ``._`` resource forks shipped in some
    archives) are ignored.
    """
    manifest = name if isinstance(name, Manifest) else load_manifest(name)
    root = fetch(manifest, data_dir=data_dir, offline=offline, progress=progress)
    images = _match_layout(root, manifest.layout.images)
    if not images:
        raise DataError(f"dataset {manifest.name}: layout.images {manifest.layout.images!r} matched no files "
                        f"in {root} (manifest {manifest.path})")
    labels = _match_layout(root, manifest.layout.labels) if manifest.layout.labels else {}
    rows = [{"case": case, "image": images.get(case), "label": labels.get(case)}
            for case in sorted(set(images) | set(labels))]
    return pd.DataFrame(rows, columns=["case", "image", "label"])


# --- download ---------------------------------------------------------------------------------


class _HashingDownloader:
    """Pooch downloader that remembers the hash of what it downloaded, for the mismatch message."""

    def __init__(self, alg: str, progress: bool) -> None:
        self.alg = alg
        self.inner = pooch.HTTPDownloader(progressbar=progress, chunk_size=_CHUNK)
        self.actual: str | None = None

    def __call__(self, url: str, output_file: str, pooch_obj: Any) -> None:
        self.inner(url, output_file, pooch_obj)
        self.actual = pooch.file_hash(output_file, alg=self.alg)


def _download(manifest: Manifest, file: ManifestFile, folder: Path, progress: bool) -> None:
    """Retrieve one file into ``folder`` (no request when a verified copy is there)."""
    downloader = _HashingDownloader(file.hash_alg, progress)
    try:
        pooch.retrieve(file.url, known_hash=file.known_hash, fname=file.filename, path=folder,
                       downloader=downloader)
    except requests.exceptions.RequestException as exc:
        raise FetchError(f"dataset {manifest.name}: could not download {file.url}: {_reason(exc)}") from exc
    except ValueError as exc:
        if downloader.actual is None or downloader.actual == file.hash_value:
            raise FetchError(f"dataset {manifest.name}: could not download {file.url}: {exc}") from exc
        raise FetchError(
            f"dataset {manifest.name}: checksum mismatch for {file.filename} downloaded from {file.url}: "
            f"expected {file.hash_alg} {file.hash_value}, got {downloader.actual}; the corrupt download "
            f"was deleted (if the file changed upstream, the manifest {manifest.path} needs its new checksum)"
        ) from exc
    except OSError as exc:
        raise FetchError(f"dataset {manifest.name}: could not save {file.filename} into {folder}: "
                         f"{exc.strerror or exc}") from exc


def _reason(exc: requests.exceptions.RequestException) -> str:
    response = exc.response
    if response is not None:
        return f"HTTP {response.status_code} {response.reason}".rstrip()
    return f"{type(exc).__name__}: {exc}"


def _verified(path: Path, file: ManifestFile) -> bool:
    return path.is_file() and pooch.file_hash(str(path), alg=file.hash_alg) == file.hash_value


# --- stamp ------------------------------------------------------------------------------------


def _stamp(manifest: Manifest) -> dict[str, Any]:
    """What the unpacked content was made from; a different manifest means unpack again."""
    return {"name": manifest.name,
            "files": [{"filename": f.filename, "hash": f.known_hash, "extract": f.extract,
                       "members": list(f.members) if f.members else None} for f in manifest.files]}


def _stamp_matches(extracted: Path, stamp: dict[str, Any]) -> bool:
    try:
        return json.loads((extracted / STAMP).read_text(encoding="utf-8")) == stamp
    except (OSError, ValueError):
        return False


# --- unpacking --------------------------------------------------------------------------------


def _unpack(manifest: Manifest, folder: Path, tmp: Path, stamp: dict[str, Any]) -> None:
    """Fill the temporary folder ``tmp`` with every file's content, then write the stamp."""
    for file in manifest.files:
        source = folder / file.filename
        if file.extract == "none":
            _link_or_copy(source, tmp / file.filename)
        elif file.extract == "zip":
            _extract_zip(source, tmp, file.members)
        else:
            _extract_tar(source, tmp, file.members)
    (tmp / STAMP).write_text(json.dumps(stamp, indent=1), encoding="utf-8")


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _name_problem(name: str) -> str | None:
    """Why an archive member name is unsafe, or None."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in re.split(r"[/\\]", name):
        return "'..' in path"
    return None


def _escapes(target: str) -> bool:
    """Whether a normalised archive-relative path leaves the archive root."""
    return target == ".." or target.startswith("../") or posixpath.isabs(target)


def _tar_problem(member: tarfile.TarInfo) -> str | None:
    problem = _name_problem(member.name)
    if problem:
        return problem
    if member.isreg() or member.isdir():
        return None
    if member.issym() or member.islnk():
        kind = "symbolic link" if member.issym() else "hard link"
        if _name_problem(member.linkname) == "absolute path":
            return f"{kind} to absolute path {member.linkname}"
        base = posixpath.dirname(member.name) if member.issym() else ""
        if _escapes(posixpath.normpath(posixpath.join(base, member.linkname))):
            return f"{kind} to {member.linkname} outside the dataset"
        return None
    return "device file, FIFO or other special file"


def _selected(name: str, members: tuple[str, ...] | None) -> bool:
    if members is None:
        return True
    norm = posixpath.normpath(name)
    return any(norm == m or norm.startswith(f"{m}/") for m in members)


def _check_members(archive: Path, problems: list[str], names: list[str], members: tuple[str, ...] | None) -> None:
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise FetchError(f"refusing to extract {archive}: unsafe member(s) {shown}; nothing was extracted")
    if members:
        absent = [m for m in members if not any(_selected(n, (m,)) for n in names)]
        if absent:
            raise FetchError(f"{archive}: member(s) {', '.join(absent)} listed in the manifest are not in the "
                             "archive; nothing was extracted")


def _extract_tar(archive: Path, dest: Path, members: tuple[str, ...] | None) -> None:
    """Check every member of a tar (any compression), then extract the selected ones."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            infos = tar.getmembers()
            problems = [f"{m.name} ({p})" for m in infos if (p := _tar_problem(m))]
            _check_members(archive, problems, [m.name for m in infos], members)
            chosen = [m for m in infos if _selected(m.name, members)]
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.10.12
                tar.extractall(dest, members=chosen, filter="data")
            else:
                tar.extractall(dest, members=chosen)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise FetchError(f"{archive}: cannot extract as a tar archive ({exc}); nothing was extracted") from exc


def _zip_problem(info: zipfile.ZipInfo) -> str | None:
    problem = _name_problem(info.filename)
    if problem:
        return problem
    mode = info.external_attr >> 16
    if info.create_system != 3 or stat.S_IFMT(mode) in (0, stat.S_IFREG, stat.S_IFDIR):
        return None  # not made on Unix, or a plain file / folder
    if stat.S_ISLNK(mode):
        return "symbolic link (links are not extracted from zip archives)"
    return "device file, FIFO or other special file"


def _extract_zip(archive: Path, dest: Path, members: tuple[str, ...] | None) -> None:
    """Check every member of a zip, then extract the selected ones."""
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            problems = [f"{i.filename} ({p})" for i in infos if (p := _zip_problem(i))]
            _check_members(archive, problems, [i.filename for i in infos], members)
            for info in infos:
                if _selected(info.filename, members):
                    zf.extract(info, dest)
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise FetchError(f"{archive}: cannot extract as a zip archive ({exc}); nothing was extracted") from exc


# --- layout -----------------------------------------------------------------------------------


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A regex for a glob pattern whose groups capture what each wildcard matched."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("((?:.*/)?)")
            i += 3
        elif pattern.startswith("**", i):
            out.append("(.*)")
            i += 2
        elif pattern[i] == "*":
            out.append("([^/]*)")
            i += 1
        elif pattern[i] == "?":
            out.append("([^/])")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1:end]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append(f"([{body.replace(chr(92), chr(92) * 2)}])")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def _match_layout(root: Path, pattern: str) -> dict[str, str]:
    """Files under ``root`` matching ``pattern``, keyed by what its wildcards matched."""
    regex = _glob_regex(pattern)
    found: dict[str, str] = {}
    for rel in glob.glob(pattern, root_dir=root, recursive=True):
        path = root / rel
        posix = Path(rel).as_posix()
        if not path.is_file() or any(part.startswith(".") for part in Path(rel).parts):
            continue
        match = regex.fullmatch(posix)
        key = "/".join(g.rstrip("/") for g in match.groups()) if match and match.groups() else posix
        found[key] = str(path)
    return found
