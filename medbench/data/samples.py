"""Real sample files that ship inside installed packages (found on disk, never downloaded).

* pydicom's bundled ``data/test_files``: real CT / MR / US / NM / RT objects in
  many transfer syntaxes, DICOMDIR media indexes, and deliberately broken
  files. (pydicom's ``get_testdata_file`` is never used: it may download.)
* nilearn's MNI152 2009a template and grey / white matter maps
  (``nilearn/datasets/data``).
* nibabel's small test images (``nibabel/tests/data`` and
  ``nibabel/nicom/tests/data``).

A missing package raises :class:`SampleUnavailable` naming what to install; a
missing file inside an installed package raises :class:`~medbench.errors.DataError`.
"""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path

from medbench.errors import DataError

#: nilearn's bundled MNI152 (ICBM 2009a symmetric) files, relative to nilearn/datasets/data.
MNI152_T1 = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
MNI152_MASKS = {
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}

#: Python files and caches live beside the data; they are not samples.
_NOT_SAMPLES = {".py", ".pyc"}


class SampleUnavailable(DataError):
    """The package that ships a sample is not installed (the message says which to install)."""


def _package_dir(module: str, pip_name: str) -> Path:
    """Folder of an installed top-level package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SampleUnavailable(
            f"sample files of {module} are unavailable: the package is not installed (pip install {pip_name})"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _data_dir(module: str, pip_name: str, *parts: str) -> Path:
    folder = _package_dir(module, pip_name).joinpath(*parts)
    if not folder.is_dir():
        raise DataError(f"{module} is installed but has no sample folder {folder} (a build without its data files?)")
    return folder


def _files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix not in _NOT_SAMPLES and "__pycache__" not in p.parts
    )


def pydicom_test_dir() -> Path:
    """pydicom's bundled ``data/test_files`` folder."""
    return _data_dir("pydicom", "pydicom", "data", "test_files")


def pydicom_test_files() -> list[Path]:
    """Every file in pydicom's bundled test folder, recursively (DICOM and the rest), sorted."""
    return _files(pydicom_test_dir())


def pydicom_sample(name: str) -> Path:
    """One bundled pydicom test file by relative path (``"CT_small.dcm"``, ``"dicomdirtests/DICOMDIR"``).

    A bare file name is also found in sub-folders when it is unique there.
    """
    root = pydicom_test_dir()
    path = root / name
    if path.is_file():
        return path
    files = pydicom_test_files()
    same_name = [p for p in files if p.name == name]
    if len(same_name) == 1:
        return same_name[0]
    rel = [str(p.relative_to(root)) for p in files]
    close = difflib.get_close_matches(name, rel, n=5, cutoff=0.5)
    hint = f"; similar names: {', '.join(close)}" if close else ""
    if len(same_name) > 1:
        hint = f"; several files have that name, give the path: {', '.join(str(p.relative_to(root)) for p in same_name)}"
    raise DataError(f"pydicom sample {name!r} is not in {root} (pydicom {_version('pydicom')} ships {len(files)} files){hint}")


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return "?"


def _nilearn_file(name: str) -> Path:
    path = _data_dir("nilearn", "nilearn", "datasets", "data") / name
    if not path.is_file():
        raise DataError(f"nilearn {_version('nilearn')} does not ship {path.name} in {path.parent}")
    return path


def mni152_t1() -> Path:
    """nilearn's bundled MNI152 T1 template (1 mm ICBM 2009a symmetric, NIfTI)."""
    return _nilearn_file(MNI152_T1)


def mni152_masks() -> dict[str, Path]:
    """nilearn's bundled MNI152 tissue probability maps: ``{"gm": ..., "wm": ...}``."""
    return {tissue: _nilearn_file(name) for tissue, name in MNI152_MASKS.items()}


def nibabel_test_files() -> list[Path]:
    """nibabel's bundled test images: ``nibabel/tests/data`` and ``nibabel/nicom/tests/data``, sorted."""
    files = _files(_data_dir("nibabel", "nibabel", "tests", "data"))
    nicom = _package_dir("nibabel", "nibabel") / "nicom" / "tests" / "data"
    return files + (_files(nicom) if nicom.is_dir() else [])
