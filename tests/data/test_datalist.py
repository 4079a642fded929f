"""medbench.data.datalist and transforms: one contract from every source, and the MONAI pipeline on it."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

from medbench.data import datalist as dl
from medbench.data.phantom import PhantomSpec, cohort_hash, load_cohort
from medbench.data.transforms import NormaliseChannelsd, cached_dataset, segmentation_transforms
from medbench.errors import DataError, FetchError
from medbench.image import Volume
from medbench.io.dicom import load_series
from medbench.io.dicom.write import write_series
from tests.data.test_fetch import _Server


def _nifti(value: np.ndarray) -> bytes:
    return nib.Nifti1Image(value, np.diag([2.0, 2.0, 3.0, 1.0])).to_bytes()


def _msd_tar(path: Path) -> Path:
    rng = np.random.default_rng(0)
    members = {"Task99_Tiny/dataset.json": json.dumps({
        "name": "Tiny", "labels": {"0": "background", "1": "organ"}, "modality": {"0": "CT"},
        "training": [{"image": f"./imagesTr/t{i}.nii.gz", "label": f"./labelsTr/t{i}.nii.gz"} for i in range(2)],
        "test": ["./imagesTs/t9.nii.gz"]}).encode()}
    for i in range(2):
        members[f"Task99_Tiny/imagesTr/t{i}.nii.gz"] = _nifti(rng.normal(size=(8, 8, 4)).astype(np.float32))
        members[f"Task99_Tiny/labelsTr/t{i}.nii.gz"] = _nifti((rng.random((8, 8, 4)) > 0.5).astype(np.uint8))
    members["Task99_Tiny/imagesTs/t9.nii.gz"] = _nifti(np.zeros((8, 8, 4), np.float32))
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def msd_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Server]:
    served = tmp_path / "served"
    served.mkdir()
    archive = _msd_tar(served / "Task99_Tiny.tar")
    server = _Server(served)
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "tiny_msd.yaml").write_text(yaml.safe_dump({
        "name": "tiny_msd", "title": "Tiny MSD", "description": "test", "homepage": "http://127.0.0.1/",
        "licence": "CC0", "citation": "none", "modalities": ["CT"],
        "files": [{"url": server.url("Task99_Tiny.tar"), "sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
                   "extract": "tar"}],
        "layout": {"images": "Task99_Tiny/imagesTr/*.nii.gz", "labels": "Task99_Tiny/labelsTr/*.nii.gz"}}))
    monkeypatch.setenv("MEDBENCH_MANIFESTS", str(manifests))
    monkeypatch.setenv("MEDBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    yield server
    server.close()


def test_manifest_datalist_goes_through_dataset_json(msd_manifest: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDBENCH_OFFLINE", "1")
    with pytest.raises(FetchError, match="`medbench fetch tiny_msd`"):
        dl.manifest_datalist("tiny_msd")
    assert msd_manifest.requests == [], "offline means no request"
    monkeypatch.delenv("MEDBENCH_OFFLINE")
    entries = dl.manifest_datalist("tiny_msd")
    assert [e["case_id"] for e in entries] == ["t0", "t1"]
    assert all(Path(e["image"]).is_file() and Path(e["label"]).is_file() for e in entries)
    assert dl.msd_label_names(Path(entries[0]["image"]).parents[1]) == {0: "background", 1: "organ"}
    monkeypatch.setenv("MEDBENCH_OFFLINE", "1")  # now cached: works offline
    assert dl.manifest_datalist("tiny_msd") == entries


def test_msd_datalist_refuses_missing_and_escaping_paths(tmp_path: Path) -> None:
    root = tmp_path / "Task"
    root.mkdir()
    with pytest.raises(DataError, match="dataset.json is missing"):
        dl.msd_datalist(root)
    (root / "dataset.json").write_text(json.dumps({"training": [{"image": "./imagesTr/x.nii.gz"}]}))
    with pytest.raises(DataError, match=r"training\[0\].image points to .* which does not exist"):
        dl.msd_datalist(root)
    (tmp_path / "outside.nii.gz").write_bytes(b"x")
    (root / "dataset.json").write_text(json.dumps({"training": [{"image": "../outside.nii.gz"}]}))
    with pytest.raises(DataError, match="points outside the dataset"):
        dl.msd_datalist(root)


def test_folder_datalist_pairs_by_name(tmp_path: Path) -> None:
    for sub in ("img", "lab"):
        (tmp_path / sub).mkdir()
        for n in ("a", "b"):
            (tmp_path / sub / f"{n}.nii.gz").write_bytes(_nifti(np.zeros((2, 2, 2), np.uint8)))
    entries = dl.folder_datalist(tmp_path / "img", tmp_path / "lab")
    assert [(e["case_id"], Path(e["label"]).parent.name) for e in entries] == [("a", "lab"), ("b", "lab")]
    (tmp_path / "lab" / "b.nii.gz").unlink()
    with pytest.raises(DataError, match="has no label"):
        dl.folder_datalist(tmp_path / "img", tmp_path / "lab")


def test_dicom_datalist_converts_each_series_once_with_its_geometry(tmp_path: Path) -> None:
    vol = Volume.from_spacing(np.arange(8 * 6 * 4, dtype=np.float32).reshape(8, 6, 4), (0.7, 0.8, 2.5), (1, 2, 3))
    write_series(vol, tmp_path / "dicom" / "s1", uid_seed="dl")
    entries = dl.dicom_datalist(tmp_path / "dicom", cache_dir=tmp_path / "cache")
    assert len(entries) == 1
    back = Volume.from_nifti(entries[0]["image"])
    ref = load_series(tmp_path / "dicom" / "s1")
    np.testing.assert_allclose(back.affine, ref.affine, atol=1e-4)
    np.testing.assert_allclose(back.array, ref.array)
    assert dl.dicom_datalist(tmp_path / "dicom", cache_dir=tmp_path / "cache") == entries
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images")
    with pytest.raises(DataError, match="no loadable image series"):
        dl.dicom_datalist(tmp_path / "empty", cache_dir=tmp_path / "cache")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory):
    # a coarse grid over a realistic field of view (the anatomy is in millimetres)
    return load_cohort(PhantomSpec(n_cases=2, shape=(32, 32, 16), spacing=(12.5, 12.5, 16.0)),
                       cache_dir=tmp_path_factory.mktemp("c"))


def test_phantom_datalist_aligns_every_modality_on_the_ct_grid(cohort) -> None:
    digest = cohort_hash(cohort)
    entries = dl.phantom_datalist(cohort, ["ct", "pet", "t2"], cases=[1])
    assert entries[0]["case_id"] == cohort.case_ids[1] and len(entries[0]["image"]) == 3
    case = cohort.case(1)
    vols = [Volume.from_nifti(p) for p in entries[0]["image"]]
    assert all(v.same_grid(case.ct) for v in vols)
    # T2 was moved by the known rigid transform: on the CT grid its labels now match the CT labels
    labels_mr = Volume.from_nifti(dl._on_ct_grid(cohort, 1, "labels_mr"), role="label")
    aligned = (labels_mr.array == case.labels.array).mean()
    as_acquired = (case.labels_mr.resample_to(case.ct).array == case.labels.array).mean()
    wrong_way = (case.labels_mr.resample_to(case.ct, case.rigid.to_sitk().GetInverse()).array
                 == case.labels.array).mean()
    # nearest-neighbour resampling between two coarse grids (12.5 and 15.6 mm) loses boundary voxels, not more
    assert aligned > 0.85 and aligned > as_acquired + 0.05 and aligned > wrong_way + 0.1, (aligned, as_acquired)
    assert cohort_hash(cohort) == digest, "derived files live outside the cohort folder"


def test_normalisation_per_modality_known_answers() -> None:
    img = torch.stack([torch.tensor([-1000.0, -160.0, 40.0, 240.0, 3000.0]),
                       torch.tensor([0.0, 5.0, 10.0, 20.0, 2.5]),
                       torch.arange(5, dtype=torch.float32) * 100])
    out = NormaliseChannelsd(["image"], ["ct", "pet", "t1"])({"image": img})["image"]
    np.testing.assert_allclose(out[0], [0.0, 0.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(out[1], [0.0, 0.5, 1.0, 1.0, 0.25])
    assert float(out[2].min()) == 0.0 and float(out[2].max()) == 1.0


def test_training_pipeline_crops_label_balanced_patches_reproducibly(cohort) -> None:
    entries = dl.phantom_datalist(cohort, ["ct", "pet"])
    n_classes = int(max(int(Volume.from_nifti(e["label"]).array.max()) for e in entries)) + 1
    ratios = [0.0] * n_classes
    ratios[3] = 1.0  # every patch centred on liver
    tf = segmentation_transforms(["ct", "pet"], (16, 16, 8), train=True, n_classes=n_classes, class_ratios=ratios,
                                 samples_per_volume=3, augment={"flip_prob": 0.5})
    ds = cached_dataset(entries, tf, seed=4)
    first = ds[0]
    assert len(first) == 3 and tuple(first[0]["image"].shape) == (2, 16, 16, 8)
    # every crop is centred on a liver voxel (MONAI moves centres near the border inward, so the liver is inside)
    assert all(int((p["label"] == 3).sum()) > 0 for p in first)
    tf.set_random_state(seed=4)
    again = ds[0]
    assert all(torch.equal(a["image"], b["image"]) for a, b in zip(first, again))


def _labelled_nifti(path: Path, shape: tuple[int, int, int], box: tuple[slice, slice, slice], value: int,
                    affine: np.ndarray) -> str:
    lab = np.zeros(shape, np.uint8)
    lab[box] = value
    nib.save(nib.Nifti1Image(lab, affine), str(path))
    return str(path)


def test_label_box_is_the_union_over_cases_in_world_mm(tmp_path: Path) -> None:
    from medbench.data.transforms import label_box_mm

    affine = np.diag([2.0, 3.0, 4.0, 1.0])  # RAS, voxel (i, j, k) at (2i, 3j, 4k) mm
    a = _labelled_nifti(tmp_path / "a.nii.gz", (20, 20, 10), (slice(2, 5), slice(4, 6), slice(1, 3)), 7, affine)
    b = _labelled_nifti(tmp_path / "b.nii.gz", (20, 20, 10), (slice(8, 10), slice(3, 5), slice(2, 6)), 7, affine)
    other = _labelled_nifti(tmp_path / "c.nii.gz", (20, 20, 10), (slice(15, 19), slice(15, 19), slice(8, 9)), 3,
                            affine)
    lo, hi = label_box_mm([{"label": a}, {"label": b}, {"label": other}], [7], margin_mm=1.0)
    # voxels 2..9 along i -> edges 1.5..9.5 voxels = 3..19 mm; j 3..5 -> 7.5..16.5 mm; k 1..5 -> 2..22 mm
    np.testing.assert_allclose(lo, [3.0 - 1, 7.5 - 1, 2.0 - 1])
    np.testing.assert_allclose(hi, [19.0 + 1, 16.5 + 1, 22.0 + 1])
    with pytest.raises(Exception, match="no case"):
        label_box_mm([{"label": other}], [7])


def test_world_box_crop_keeps_the_affine_and_is_the_same_for_every_case(tmp_path: Path) -> None:
    from monai import transforms as mt

    from medbench.data.transforms import CropWorldBoxd, label_box_mm

    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    train = _labelled_nifti(tmp_path / "train.nii.gz", (20, 20, 10), (slice(4, 8), slice(5, 9), slice(2, 5)), 1,
                            affine)
    shifted = affine.copy()
    shifted[:3, 3] = [-6.0, 0.0, 0.0]  # another scan: the same world box is 3 voxels further along i
    test = _labelled_nifti(tmp_path / "test.nii.gz", (20, 20, 10), (slice(0, 2), slice(0, 2), slice(0, 2)), 1, shifted)
    box = label_box_mm([{"label": train}], [1])
    load = mt.Compose([mt.LoadImaged(["label"], ensure_channel_first=True, image_only=True),
                       mt.Orientationd(["label"], axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S"))),
                       CropWorldBoxd(["label"], *box)])
    a, b = load({"label": train})["label"], load({"label": test})["label"]
    assert tuple(a.shape[1:]) == (4, 4, 3) == tuple(b.shape[1:])
    assert bool((a == 1).all()), "the training case's structure fills its own box exactly"
    np.testing.assert_allclose(np.asarray(a.affine)[:3, 3], [8.0, 15.0, 8.0])  # the crop's first voxel, in mm
    np.testing.assert_allclose(np.asarray(b.affine)[:3, 3], [8.0, 15.0, 8.0])  # the same world place
    assert int(b.sum()) == 0, "the test case's own label plays no part in where it is cropped"
    with pytest.raises(Exception, match="outside the volume"):
        CropWorldBoxd(["label"], [500.0, 500.0, 500.0], [510.0, 510.0, 510.0])(
            {"label": mt.LoadImage(ensure_channel_first=True, image_only=True)(train)})
    with pytest.raises(Exception, match="lower and 3 higher"):
        CropWorldBoxd(["label"], [0.0, 0.0, 0.0], [0.0, 1.0, 1.0])
