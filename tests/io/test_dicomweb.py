"""medbench.io.dicomweb against a real Orthanc PACS with its DICOMweb plugin.

The server is started per module (tests/orthanc.py) and seeded through
``DicomWebSource.store``: two phantom CT series of two patients whose names
differ only in the character that Orthanc's QIDO does not decode
("PHANTOM^CASE000" vs "PHANTOM CASE000"), so a name search proves both that
the quirk is worked around and that the client-side refinement is exact.
Orthanc-dependent tests skip with ``orthanc_status()``'s reason when Orthanc
is not installed; the others need no server.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests

from medbench.errors import ConfigError, DataError
from medbench.image.volume import Volume
from medbench.io.dicom import load_series
from medbench.io.dicom.write import uid_from, write_series
from medbench.io.dicomweb import DicomWebSource, _plan_filter, flatten_dicom_json
from tests.orthanc import (  # noqa: F401 (orthanc_server is a fixture)
    OrthancServer,
    free_port,
    listening_addresses,
    non_loopback_ipv4,
    orthanc_server,
)

NAME_CARET = "PHANTOM^CASE000"
NAME_SPACE = "PHANTOM CASE000"
ID_CARET = "PHANTOM 000"  # a space in the ID as well
ID_SPACE = "PHANTOM-001"


def _phantom(seed: int) -> Volume:
    """A small oblique CT-like volume with integer HU values."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(-1000, 1500, size=(12, 10, 5)).astype(np.int16)
    c, s = np.cos(0.3), np.sin(0.3)
    direction = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return Volume.from_spacing(arr, (0.8, 0.9, 2.5), (-40.0, -35.5, 100.0), direction)


@pytest.fixture(scope="module")
def seeded(orthanc_server: OrthancServer, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Orthanc seeded by ``store`` with two series of two patients (plus one junk file)."""
    root = tmp_path_factory.mktemp("dicomweb-src")
    vol_a, vol_b = _phantom(1), _phantom(2)
    files_a = write_series(vol_a, root / "a", uid_seed="dw-a", patient={"PatientName": NAME_CARET, "PatientID": ID_CARET})
    files_b = write_series(vol_b, root / "b", uid_seed="dw-b", patient={"PatientName": NAME_SPACE, "PatientID": ID_SPACE})
    (root / "notes.txt").write_text("not DICOM")
    source = DicomWebSource(orthanc_server.dicomweb_url)
    stored = source.store(root)
    head = pydicom.dcmread(files_a[0])
    return {
        "source": source,
        "stored": stored,
        "root": root,
        "files_a": files_a,
        "files_b": files_b,
        "vol_a": vol_a,
        "study_a": str(head.StudyInstanceUID),
        "series_a": str(head.SeriesInstanceUID),
    }


# -- the server itself ----------------------------------------------------------------


@pytest.mark.orthanc
def test_orthanc_listens_only_on_its_http_port(orthanc_server: OrthancServer) -> None:
    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) is not installed, so listening sockets cannot be listed")
    listening = listening_addresses(orthanc_server.process.pid)
    # No DICOM port; the HTTP port is the only socket (Orthanc 1.10 binds all interfaces).
    assert [a.rsplit(":", 1)[1] for a in listening] == [str(orthanc_server.port)], listening


@pytest.mark.orthanc
def test_orthanc_refuses_clients_that_are_not_loopback(orthanc_server: OrthancServer) -> None:
    if shutil.which("ip") is None:
        pytest.skip("ip (iproute2) is not installed, so this machine's addresses cannot be listed")
    addresses = non_loopback_ipv4()
    if not addresses:
        pytest.skip("this machine has no non-loopback IPv4 address to connect from")
    for address in addresses:
        answer = requests.get(f"http://{address}:{orthanc_server.port}/system", timeout=5)
        assert answer.status_code in (401, 403), f"{address}: remote access was not refused ({answer.status_code})"


# -- STOW-RS --------------------------------------------------------------------------


@pytest.mark.orthanc
def test_store_reports_one_row_per_file(seeded: dict) -> None:
    stored = seeded["stored"]
    n = len(seeded["files_a"]) + len(seeded["files_b"])
    assert len(stored) == n + 1
    assert (stored.status == "stored").sum() == n
    junk = stored[stored.source.str.endswith("notes.txt")].iloc[0]
    assert junk.status == "unreadable" and "not a readable DICOM file" in junk.error
    uids = {str(pydicom.dcmread(p).SOPInstanceUID) for p in seeded["files_a"] + seeded["files_b"]}
    assert set(stored.SOPInstanceUID[stored.status == "stored"]) == uids


@pytest.mark.orthanc
def test_store_records_a_refused_instance_and_keeps_the_others(seeded: dict, tmp_path: Path) -> None:
    vol = _phantom(3)
    files = write_series(vol, tmp_path / "c", uid_seed="dw-refused", patient={"PatientID": "REFUSED-1"})
    broken = pydicom.dcmread(files[0])
    del broken.StudyInstanceUID
    good = [pydicom.dcmread(p) for p in files[1:]]
    result = seeded["source"].store([broken, *good])
    assert list(result.status) == ["failed"] + ["stored"] * len(good)
    assert seeded["source"].url in result.error[0]
    found = seeded["source"].search_series(PatientID="REFUSED-1")
    assert found.NumberOfSeriesRelatedInstances.tolist() == [len(good)]


# -- QIDO-RS --------------------------------------------------------------------------


@pytest.mark.orthanc
def test_search_studies_by_patient_id(seeded: dict) -> None:
    src = seeded["source"]
    plain = src.search_studies(PatientID=ID_SPACE)
    assert plain.PatientID.tolist() == [ID_SPACE]
    assert plain.PatientName.tolist() == [NAME_SPACE]
    assert plain.ModalitiesInStudy.tolist() == ["CT"]
    assert plain.NumberOfStudyRelatedInstances.tolist() == [len(seeded["files_b"])]
    spaced = src.search_studies(PatientID=ID_CARET)  # the space must not break the match
    assert spaced.StudyInstanceUID.tolist() == [seeded["study_a"]]


@pytest.mark.orthanc
def test_search_by_patient_name_with_caret_is_exact(seeded: dict) -> None:
    src = seeded["source"]
    caret = src.search_studies(PatientName=NAME_CARET)
    assert caret.PatientID.tolist() == [ID_CARET]
    space = src.search_series(PatientName=NAME_SPACE)
    assert space.PatientID.tolist() == [ID_SPACE]
    both = src.search_studies(PatientName="phantom*case000")  # wildcard, PN case-insensitive
    assert sorted(both.PatientID) == sorted([ID_CARET, ID_SPACE])
    assert src.search_studies(PatientName="PHANTOM^CASE001").empty


@pytest.mark.orthanc
def test_search_series_of_a_study(seeded: dict) -> None:
    series = seeded["source"].search_series(seeded["study_a"])
    row = series[series.SeriesInstanceUID == seeded["series_a"]].iloc[0]
    assert row.Modality == "CT"
    assert row.SeriesDescription == "CT phantom"
    assert row.NumberOfSeriesRelatedInstances == len(seeded["files_a"])
    assert row.PatientName == NAME_CARET


# -- WADO-RS --------------------------------------------------------------------------


@pytest.mark.orthanc
def test_retrieve_series_returns_the_stored_instances(seeded: dict) -> None:
    datasets = seeded["source"].retrieve_series(seeded["study_a"], seeded["series_a"])
    sources = {str(ds.SOPInstanceUID): ds for ds in map(pydicom.dcmread, seeded["files_a"])}
    assert [int(ds.InstanceNumber) for ds in datasets] == list(range(1, len(sources) + 1))
    for ds in datasets:
        src = sources[str(ds.SOPInstanceUID)]
        np.testing.assert_array_equal(ds.pixel_array, src.pixel_array)
        assert ds.ImagePositionPatient == src.ImagePositionPatient
        assert str(ds.PatientName) == NAME_CARET


@pytest.mark.orthanc
def test_load_series_volume_equals_loading_the_source_files(seeded: dict) -> None:
    remote = seeded["source"].load_series_volume(seeded["study_a"], seeded["series_a"])
    local = load_series(seeded["files_a"])
    np.testing.assert_allclose(remote.affine, local.affine, atol=1e-6)
    np.testing.assert_array_equal(remote.array, local.array)
    np.testing.assert_allclose(remote.affine, seeded["vol_a"].affine, atol=1e-4)
    np.testing.assert_array_equal(remote.array, seeded["vol_a"].array)


@pytest.mark.orthanc
def test_download_series_writes_whole_files(seeded: dict, tmp_path: Path) -> None:
    out = tmp_path / "download"
    paths = seeded["source"].download_series(seeded["study_a"], seeded["series_a"], out)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths)  # no temporary leftovers
    sources = {str(ds.SOPInstanceUID): ds for ds in map(pydicom.dcmread, seeded["files_a"])}
    assert {p.stem for p in paths} == set(sources)
    for path in paths:
        ds = pydicom.dcmread(path)
        np.testing.assert_array_equal(ds.pixel_array, sources[path.stem].pixel_array)


@pytest.mark.orthanc
def test_retrieve_of_an_unknown_series_names_url_and_status(seeded: dict) -> None:
    missing = uid_from("no such series")
    with pytest.raises(DataError, match=r"HTTP 404") as err:
        seeded["source"].retrieve_series(seeded["study_a"], missing)
    assert f"{seeded['source'].url}/studies/{seeded['study_a']}/series/{missing}" in str(err.value)


# -- a derived series goes back to the PACS -----------------------------------------------


@pytest.mark.orthanc
def test_store_a_derived_series_and_find_it(seeded: dict, tmp_path: Path) -> None:
    src = seeded["source"]
    original = seeded["vol_a"]
    mask = original.with_array(np.where(original.array > 300, 1000, -1000).astype(np.int16))
    files = write_series(
        mask,
        tmp_path / "derived",
        uid_seed="dw-derived",
        series_number=2,
        series_description="bone threshold",
        study_uid=seeded["study_a"],
        patient={"PatientName": NAME_CARET, "PatientID": ID_CARET},
    )
    stored = src.store(files)
    assert (stored.status == "stored").all()
    derived_uid = stored.SeriesInstanceUID[0]
    assert derived_uid != seeded["series_a"]
    found = src.search_series(seeded["study_a"], SeriesDescription="bone threshold")
    assert found.SeriesInstanceUID.tolist() == [derived_uid]
    assert set(src.search_series(seeded["study_a"]).SeriesInstanceUID) >= {seeded["series_a"], derived_uid}
    back = src.retrieve_series(seeded["study_a"], derived_uid)
    values = np.stack([ds.pixel_array.T * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in back], axis=2)
    np.testing.assert_array_equal(values, mask.array)


# -- no server needed -----------------------------------------------------------------


def test_server_down_gives_one_clear_message(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    src = DicomWebSource(url, timeout=5)
    expected = f"cannot reach DICOMweb server at {url}: connection refused"
    for call in (
        lambda: src.search_studies(PatientID="X"),
        lambda: src.search_series(),
        lambda: src.retrieve_series("1.2.3", "1.2.3.4"),
        lambda: src.download_series("1.2.3", "1.2.3.4", tmp_path / "never"),
        lambda: src.store(write_series(_phantom(4), tmp_path / "s", uid_seed="down")),
    ):
        with pytest.raises(DataError) as err:
            call()
        assert str(err.value) == expected
        assert err.value.__suppress_context__  # no chained requests/urllib3 traceback
    assert not (tmp_path / "never").exists()


def test_bad_url_and_unknown_filter_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="not an http"):
        DicomWebSource("127.0.0.1:8042/dicom-web")
    src = DicomWebSource(f"http://127.0.0.1:{free_port()}/dicom-web")
    with pytest.raises(ConfigError, match="PatientIdd"):
        src.search_studies(PatientIdd="X")


def test_query_values_needing_encoding_are_widened_then_refined() -> None:
    plain = _plan_filter("PatientID", "P-001")
    assert (plain.sent, plain.refine) == ("P-001", False)
    caret = _plan_filter("PatientName", NAME_CARET)
    assert (caret.sent, caret.refine) == ("PHANTOM?CASE000", True)
    assert caret.matches("phantom^case000") and not caret.matches(NAME_SPACE)
    wild = _plan_filter("00100020", "AB *")  # hex tag, wildcard kept, space widened
    assert (wild.keyword, wild.sent) == ("PatientID", "AB?*")
    assert wild.matches("AB 12") and not wild.matches("ABX12") and not wild.matches("ab 12")
    uids = _plan_filter("SeriesInstanceUID", ["1.2.3", "1.2.4"])  # a UID list: matched here only
    assert uids.sent is None and uids.matches("1.2.4") and not uids.matches("1.2.5")


def test_flatten_dicom_json_gives_readable_columns() -> None:
    results = [
        {
            "00100010": {"vr": "PN", "Value": [{"Alphabetic": NAME_CARET}]},
            "00080061": {"vr": "CS", "Value": ["CT", "PT"]},
            "00201206": {"vr": "IS", "Value": [2]},
            "00080005": {"vr": "CS", "Value": ["ISO_IR 100"]},
            "00080090": {"vr": "PN"},
        }
    ]
    df = flatten_dicom_json(results, first=("PatientID", "PatientName"))
    assert list(df.columns) == [
        "PatientID", "PatientName", "ModalitiesInStudy", "ReferringPhysicianName", "NumberOfStudyRelatedSeries"
    ]
    row = df.iloc[0]
    assert row.PatientName == NAME_CARET and row.ModalitiesInStudy == "CT\\PT" and row.NumberOfStudyRelatedSeries == 2
    assert list(flatten_dicom_json([], first=("PatientID",)).columns) == ["PatientID"]
