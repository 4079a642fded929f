"""One datalist contract for every source: ``[{"image": ..., "label": ..., "case_id": ...}, ...]``.

``image`` is a NIfTI path, or a list of paths on one grid (stacked as
channels by MONAI's ``LoadImaged``); ``label`` a NIfTI label map on that grid
(absent for inference-only data). Every entry also carries ``case_id``. This
is what MONAI's datasets and :mod:`medbench.data.transforms` consume,
whatever the data came from:

* :func:`phantom_datalist`: the synthetic cohort, any modalities, each
  resampled onto the CT grid once and cached (MR through the known CT->MR
  transform, so images and labels align exactly);
* :func:`msd_datalist`: a Medical Segmentation Decathlon folder through its
  ``dataset.json``;
* :func:`folder_datalist`: a folder of NIfTI images (and labels) matched by name;
* :func:`dicom_datalist`: the user's DICOM series through :mod:`medbench.io.dicom`
  (every image series loaded with its geometry checked, converted to NIfTI once);
* :func:`manifest_datalist`: a public dataset from ``data_manifests/`` (fetched,
  verified; offline and uncached it fails with the exact ``medbench fetch`` command).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from medbench.atomic import atomic_dir
from medbench.data.cache import cache_root
from medbench.data.fetch import dataset_files, fetch
from medbench.data.manifests import load_manifest
from medbench.errors import ConfigError, DataError
from medbench.hashing import hash_path
from medbench.image.volume import Volume

Datalist = list[dict[str, Any]]


def derived_root(cohort: Any) -> Path:
    """Where data derived from a cohort goes: beside the cohort's cache folder, never inside it
    (the cohort's digest in run records covers exactly what the generator wrote)."""
    root = Path(cohort.root)
    return root.parent.parent / "phantom-derived" / root.name


def _on_ct_grid(cohort: Any, index: int, modality: str) -> Path:
    """The modality resampled onto the case's CT grid (written once, atomically, in :func:`derived_root`)."""
    paths = cohort.paths(index)
    target = derived_root(cohort) / cohort.case_ids[index] / f"{modality}_on_ct.nii.gz"
    if target.is_file():
        return target
    case = cohort.case(index)
    ct = case.ct
    vol = getattr(case, modality)
    if vol.same_grid(ct) and modality not in ("t1", "t2", "labels_mr"):
        return paths[modality]
    transform = None
    if modality in ("t1", "t2", "labels_mr"):  # MR is in another position: the ground-truth rigid motion aligns it
        transform = case.rigid.to_sitk()
    resampled = vol.resample_to(ct, transform)
    resampled.to_nifti(target)
    return target


def phantom_datalist(
    cohort: Any,
    modalities: Sequence[str] = ("ct",),
    *,
    label: str = "labels",
    cases: Iterable[int | str] | None = None,
) -> Datalist:
    """Entries for cases of a phantom cohort: ``image`` = the modalities on the CT grid, ``label`` = ``label``."""
    ids = list(cohort.case_ids)
    chosen = [ids.index(c) if isinstance(c, str) else int(c) for c in (cases if cases is not None else range(len(ids)))]
    out: Datalist = []
    for i in chosen:
        paths = cohort.paths(i)
        if label not in paths:
            raise ConfigError(f"phantom cases have no label map {label!r}; available: {sorted(paths)}")
        images = [str(_on_ct_grid(cohort, i, m)) for m in modalities]
        out.append({"image": images if len(images) > 1 else images[0], "label": str(paths[label]),
                    "case_id": ids[i], "modalities": list(modalities)})
    return out


def msd_datalist(root: str | os.PathLike[str], section: str = "training") -> Datalist:
    """Entries from a Medical Segmentation Decathlon folder's ``dataset.json`` (``training`` or ``test``)."""
    root = Path(root)
    meta_path = root / "dataset.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{root} is not an MSD dataset folder: {meta_path} is missing") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{meta_path}: not valid JSON ({exc})") from None
    if section not in meta:
        raise DataError(f"{meta_path} has no {section!r} list (keys: {sorted(meta)})")
    out: Datalist = []
    for n, item in enumerate(meta[section]):
        entry = {"image": item} if isinstance(item, str) else dict(item)
        for key in ("image", "label"):
            if key in entry:
                path = (root / str(entry[key])).resolve()
                if not path.is_file():
                    raise DataError(f"{meta_path}: {section}[{n}].{key} points to {path}, which does not exist")
                if root.resolve() not in path.parents:
                    raise DataError(f"{meta_path}: {section}[{n}].{key} points outside the dataset ({path})")
                entry[key] = str(path)
        entry["case_id"] = Path(entry["image"]).name.split(".")[0]
        out.append(entry)
    return out


def msd_label_names(root: str | os.PathLike[str]) -> dict[int, str]:
    """``{id: name}`` from an MSD ``dataset.json``'s ``labels``."""
    meta = json.loads((Path(root) / "dataset.json").read_text(encoding="utf-8"))
    return {int(k): str(v) for k, v in meta.get("labels", {}).items()}


def folder_datalist(
    images: str | os.PathLike[str], labels: str | os.PathLike[str] | None = None, pattern: str = "*.nii*"
) -> Datalist:
    """NIfTI images in a folder, paired with the label of the same file name in ``labels`` (if given)."""
    img_dir = Path(images)
    files = sorted(p for p in img_dir.glob(pattern) if p.is_file() and not p.name.startswith("."))
    if not files:
        raise DataError(f"no files matching {pattern!r} in {img_dir}")
    out: Datalist = []
    for f in files:
        entry: dict[str, Any] = {"image": str(f), "case_id": f.name.split(".")[0]}
        if labels is not None:
            lab = Path(labels) / f.name
            if not lab.is_file():
                raise DataError(f"image {f} has no label {lab}")
            entry["label"] = str(lab)
        out.append(entry)
    return out


def dicom_datalist(src: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> Datalist:
    """Every image series under ``src`` (geometry checked by :func:`medbench.io.dicom.load_all_series`) as NIfTI.

    Converted once into ``<cache>/dicom/<digest of src>/`` (atomically);
    series refused for their geometry are left out with their reason in the
    error if nothing is left.
    """
    from medbench.io.dicom import load_all_series

    digest = hash_path(src)[:16]
    folder = cache_root(cache_dir) / "dicom" / digest
    if not (folder / "datalist.json").is_file():
        volumes, table = load_all_series(src)
        if not volumes:
            reasons = "; ".join(f"{r.series}: {r.message}" for r in table.itertuples())
            raise DataError(f"no loadable image series under {src}" + (f" ({reasons})" if reasons else ""))
        with atomic_dir(folder) as tmp:
            entries = []
            for n, (name, vol) in enumerate(sorted(volumes.items())):
                Volume(vol.array, vol.affine, {}).to_nifti(tmp / f"series{n:03d}.nii.gz")
                entries.append({"image": f"series{n:03d}.nii.gz", "case_id": name})
            (tmp / "datalist.json").write_text(json.dumps(entries, indent=1), encoding="utf-8")
    entries = json.loads((folder / "datalist.json").read_text(encoding="utf-8"))
    return [{**e, "image": str(folder / e["image"])} for e in entries]


def manifest_datalist(
    data_id: str, *, data_dir: str | os.PathLike[str] | None = None, offline: bool | None = None
) -> Datalist:
    """A public dataset by manifest name: fetched (or found in the cache) and listed.

    An MSD-layout dataset (a ``dataset.json`` beside its images) is listed through
    it; otherwise through the manifest's layout globs.
    """
    manifest = load_manifest(data_id)
    root = fetch(manifest, data_dir=data_dir, offline=offline, progress=False)
    candidates = sorted(root.glob("*/dataset.json")) + sorted(root.glob("dataset.json"))
    if candidates:
        return msd_datalist(candidates[0].parent)
    table = dataset_files(manifest, data_dir=data_dir, offline=offline, progress=False)
    return [{"image": r.image, **({"label": r.label} if isinstance(r.label, str) else {}), "case_id": r.case}
            for r in table.itertuples() if isinstance(r.image, str)]
