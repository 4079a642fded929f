"""Auditing a real PACS (Orthanc over DICOMweb) gives the same findings as auditing the source folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from medbench.audit.pacs import audit_pacs, download_pacs
from medbench.audit.report import run_audit
from medbench.errors import DataError
from medbench.image.volume import Volume
from medbench.io.dicom.write import write_series
from medbench.io.dicomweb import DicomWebSource
from tests.orthanc import orthanc_server  # noqa: F401 (fixture)


def _series(tmp: Path) -> Path:
    import numpy as np

    src = tmp / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    for n in range(2):
        vol = Volume.from_spacing(rng.integers(-100, 200, (16, 16, 6)).astype(float), (1.0, 1.0, 2.0))
        write_series(vol, src / f"s{n}", uid_seed=f"pacs-test/{n}", series_number=n + 1,
                     patient={"PatientID": f"PACS-{n}", "PatientName": f"PACS^{n}"})
    return src


def test_pacs_audit_matches_folder_audit(orthanc_server, tmp_path: Path) -> None:
    src = _series(tmp_path)
    stored = DicomWebSource(orthanc_server.dicomweb_url).store(src)
    assert (stored["status"] == "stored").all()
    result = audit_pacs(orthanc_server.dicomweb_url, tmp_path / "pacs")
    reference = run_audit(src, tmp_path / "ref")
    for key in ("files_found", "readable", "series_valid", "series_invalid"):
        assert result.counts[key] == reference.counts[key], key
    assert result.counts["files_found"] >= 12 and result.counts["series_valid"] >= 2


def test_download_is_bounded(orthanc_server, tmp_path: Path) -> None:
    DicomWebSource(orthanc_server.dicomweb_url).store(_series(tmp_path))
    table = download_pacs(orthanc_server.dicomweb_url, tmp_path / "one", max_series=1)
    assert len(table) == 1 and len(list((tmp_path / "one").rglob("*.dcm"))) == table["n_files"].iloc[0]


def test_unreachable_server_is_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    from tests.orthanc import free_port

    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    with pytest.raises(DataError, match="cannot reach DICOMweb server"):
        download_pacs(url, tmp_path / "out")
    assert not (tmp_path / "out").exists()
