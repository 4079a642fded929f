"""read_pixels(): physical values, MONOCHROME1, every compressed sample pydicom ships, clear decode errors."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels.common import CoderBase
from pydicom.uid import UID

from medbench.data.samples import pydicom_sample, pydicom_test_files
from medbench.errors import DecodeError
from medbench.image.volume import Volume
from medbench.io.dicom import read_header, read_pixels
from medbench.io.dicom.write import write_series

DEFLATED = "1.2.840.10008.1.2.1.99"

#: Deliberately damaged samples (pydicom's README): their pixel data must fail with a clear DecodeError.
BROKEN = {"JPEG-lossy.dcm", "JPEG2000-embedded-sequence-delimiter.dcm"}


def _compressed_samples() -> list[Path]:
    found = []
    for path in pydicom_test_files():
        ds, _ = read_header(path)
        syntax = str(ds.file_meta.get("TransferSyntaxUID", "")) if ds is not None and hasattr(ds, "file_meta") else ""
        if ds is not None and "Rows" in ds and syntax and (UID(syntax).is_compressed or syntax == DEFLATED):
            found.append(path)
    return found


COMPRESSED = _compressed_samples()


def _read(name: str) -> np.ndarray:
    return read_pixels(pydicom.dcmread(pydicom_sample(name)))


def test_the_samples_cover_every_codec_family() -> None:
    syntaxes = {str(pydicom.dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID) for p in COMPRESSED}
    expected = {
        "1.2.840.10008.1.2.4.50",  # JPEG baseline
        "1.2.840.10008.1.2.4.51",  # JPEG extended
        "1.2.840.10008.1.2.4.70",  # JPEG lossless SV1
        "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
        "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
        "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
        "1.2.840.10008.1.2.4.91",  # JPEG 2000
        "1.2.840.10008.1.2.5",  # RLE
        DEFLATED,
    }
    assert expected <= syntaxes


@pytest.mark.parametrize("path", COMPRESSED, ids=lambda p: p.name)
def test_every_compressed_sample_decodes(path: Path) -> None:
    ds = pydicom.dcmread(path)
    if path.name in BROKEN:
        with pytest.raises(DecodeError, match=f"cannot decode .*{path.name}.*corrupt"):
            read_pixels(ds)
        return
    values = read_pixels(ds)
    frames = int(ds.get("NumberOfFrames") or 1)
    shape = ((frames,) if frames > 1 else ()) + (ds.Rows, ds.Columns) + ((3,) if ds.SamplesPerPixel == 3 else ())
    assert values.shape == shape and values.dtype == np.float32
    assert np.all(np.isfinite(values)) and values.std() > 0


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("MR_small_RLE.dcm", "MR_small.dcm"),
        ("MR_small_jp2klossless.dcm", "MR_small.dcm"),
        ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),
        ("MR_small_bigendian.dcm", "MR_small.dcm"),
        ("MR_small_implicit.dcm", "MR_small.dcm"),
        ("SC_rgb_jpeg_gdcm.dcm", "SC_rgb_rle.dcm"),  # JPEG lossless vs RLE
        ("SC_rgb_gdcm_KY.dcm", "SC_rgb_rle.dcm"),  # JPEG 2000 (lossless content) vs RLE
        ("SC_rgb_small_odd_big_endian.dcm", "SC_rgb_small_odd.dcm"),
        ("rtdose_rle.dcm", "rtdose.dcm"),
        ("rtdose_expb.dcm", "rtdose.dcm"),
    ],
)
def test_lossless_syntaxes_match_their_uncompressed_reference(name: str, reference: str) -> None:
    np.testing.assert_array_equal(_read(name), _read(reference))


@pytest.mark.parametrize(
    ("name", "reference", "max_abs", "max_mean"),
    [
        ("SC_rgb_dcmtk_+eb+cr.dcm", "SC_rgb_rle.dcm", 2, 0.5),  # JPEG baseline, RGB
        ("SC_rgb_dcmtk_+eb+cy+s2.dcm", "SC_rgb_rle.dcm", 8, 1.0),  # JPEG baseline, YBR 4:2:2
        ("SC_rgb_dcmtk_+eb+cy+n1.dcm", "SC_rgb_rle.dcm", 90, 4.0),  # JPEG baseline, stronger quantisation
        ("SC_rgb_jls_lossy_line.dcm", "SC_rgb_rle.dcm", 2, 1.0),  # JPEG-LS near-lossless (NEAR=2)
        ("SC_rgb_jls_lossy_sample.dcm", "SC_rgb_rle.dcm", 2, 1.0),
        ("SC_rgb_jpeg.dcm", "SC_rgb_jpeg_dcmd.dcm", 1, 0.01),  # dcmd: the same image decompressed
        ("SC_rgb_small_odd_jpeg.dcm", "SC_rgb_small_odd.dcm", 8, 4.0),
    ],
)
def test_lossy_syntaxes_stay_close_to_their_reference(name: str, reference: str, max_abs: float, max_mean: float) -> None:
    diff = np.abs(_read(name) - _read(reference))
    assert diff.max() <= max_abs and diff.mean() <= max_mean


def test_multi_bit_depth_rle_is_scaled_consistently() -> None:
    eight = _read("SC_rgb_rle.dcm")
    np.testing.assert_array_equal(_read("SC_rgb_rle_16bit.dcm"), eight * 257)
    two = _read("SC_rgb_rle_2frame.dcm")
    np.testing.assert_array_equal(two[0], eight)
    np.testing.assert_array_equal(two[1], 255 - eight)


def _inflate_native_pixels(path: Path) -> bytes:
    """The Pixel Data value of a deflated file, found without pydicom: skip the file meta group
    (its length is in (0002,0000)), raw-inflate the rest, locate (7FE0,0010) explicit-VR LE."""
    raw = path.read_bytes()
    assert raw[128:132] == b"DICM" and raw[132:136] == b"\x02\x00\x00\x00"  # (0002,0000) UL
    meta_end = 132 + 12 + struct.unpack("<I", raw[140:144])[0]
    dataset = zlib.decompressobj(-zlib.MAX_WBITS).decompress(raw[meta_end:])
    at = dataset.rfind(b"\xe0\x7f\x10\x00")
    assert dataset[at + 4:at + 6] in (b"OB", b"OW")
    (length,) = struct.unpack("<I", dataset[at + 8:at + 12])
    return dataset[at + 12:at + 12 + length]


def test_deflated_sample_decodes_to_its_stored_values() -> None:
    """Checked against an independent inflate of the file (zlib + the element layout), not pydicom."""
    path = pydicom_sample("image_dfl.dcm")
    ds = pydicom.dcmread(path)
    assert (ds.Rows, ds.Columns, ds.BitsAllocated, ds.SamplesPerPixel) == (512, 512, 8, 1)
    expected = np.frombuffer(_inflate_native_pixels(path), np.uint8)[: 512 * 512].reshape(512, 512)
    np.testing.assert_array_equal(read_pixels(ds), expected.astype(np.float32))


def test_rescale_gives_exact_hu(tmp_path: Path, dicom_series_dir: Path, dicom_volume: Volume) -> None:
    ds = pydicom.dcmread(sorted(dicom_series_dir.iterdir())[3])
    assert float(ds.RescaleIntercept) == -1024.0  # stored values differ from HU
    values = read_pixels(ds)
    np.testing.assert_array_equal(values, dicom_volume.array[:, :, 3].T)


def test_rtdose_grid_scaling_gives_gray() -> None:
    ds = pydicom.dcmread(pydicom_sample("rtdose.dcm"))
    np.testing.assert_allclose(read_pixels(ds), ds.pixel_array * float(ds.DoseGridScaling), rtol=1e-6)


def test_monochrome1_is_inverted_so_higher_is_brighter(tmp_path: Path, dicom_edit) -> None:
    volume = Volume.from_spacing(np.arange(32 * 32 * 2, dtype=np.float32).reshape(32, 32, 2) % 500, (1, 1, 1))
    paths = write_series(volume, tmp_path / "s", modality="MR")
    mono2 = read_pixels(pydicom.dcmread(paths[0]))
    dicom_edit(paths[0], PhotometricInterpretation="MONOCHROME1", BitsStored=12, HighBit=11)
    mono1 = read_pixels(pydicom.dcmread(paths[0]))
    ds = pydicom.dcmread(paths[0])
    lo, hi = float(ds.RescaleIntercept), float(ds.RescaleIntercept) + 4095 * float(ds.RescaleSlope)
    np.testing.assert_allclose(mono1, (lo + hi) - mono2, atol=1e-3)
    assert np.corrcoef(mono1.ravel(), mono2.ravel())[0, 1] == pytest.approx(-1.0)


def test_real_monochrome1_radiograph() -> None:
    ds = pydicom.dcmread(pydicom_sample("6154"))  # CR, MONOCHROME1, 12 bits, slope 0.684 intercept 200
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    stored = ds.pixel_array.astype(np.float64)
    physical = stored * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    expected = 2 * float(ds.RescaleIntercept) + 4095 * float(ds.RescaleSlope) - physical
    np.testing.assert_allclose(read_pixels(ds), expected, rtol=1e-6)


def test_enhanced_per_frame_rescale(tmp_path: Path, dicom_volume: Volume, dicom_enhanced) -> None:
    slopes = [1.0, 2.0, 0.5, 1.0, 4.0, 1.0, 1.0, 2.0, 1.0, 0.25]
    path = dicom_enhanced(dicom_volume, tmp_path / "e.dcm", slopes=slopes)
    values = read_pixels(pydicom.dcmread(path))
    assert values.shape == (10, 32, 32)
    for k, slope in enumerate(slopes):
        expected = np.round((dicom_volume.array[:, :, k] + 1024) / slope) * slope - 1024
        np.testing.assert_allclose(values[k], expected.T, atol=1e-4)


def test_missing_decoder_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CoderBase, "is_available", property(lambda self: False))
    path = pydicom_sample("MR_small_jp2klossless.dcm")
    with pytest.raises(DecodeError) as err:
        read_pixels(pydicom.dcmread(path))
    message = str(err.value)
    assert message.startswith(f"cannot decode {path}: JPEG 2000 Image Compression (Lossless Only) (1.2.840.10008.1.2.4.90)")
    assert message.endswith("install pylibjpeg and pylibjpeg-openjpeg")


def test_unimplemented_syntax_and_missing_syntax_are_clear() -> None:
    ds = pydicom.dcmread(pydicom_sample("MR_small.dcm"))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.110"  # JPEG XL Lossless (in memory only)
    with pytest.raises(DecodeError, match=r"MR_small.dcm: unknown transfer syntax \(1.2.840.10008.1.2.4.110\): install"):
        read_pixels(ds)
    with pytest.raises(DecodeError, match="no Transfer Syntax UID"):
        read_pixels(pydicom.dcmread(pydicom_sample("meta_missing_tsyntax.dcm")))


def test_truncated_pixel_data_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="MR_truncated.dcm.*(truncated|less than expected)"):
        read_pixels(pydicom.dcmread(pydicom_sample("MR_truncated.dcm")))


def test_header_only_dataset_is_refused(dicom_series_dir: Path) -> None:
    ds = pydicom.dcmread(sorted(dicom_series_dir.iterdir())[0], stop_before_pixels=True)
    with pytest.raises(DecodeError, match="no Pixel Data"):
        read_pixels(ds)
