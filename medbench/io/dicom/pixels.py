"""Decode DICOM pixel data into physical values.

:func:`read_pixels` is the one place medbench turns stored pixel values into
numbers a scientist can use:

* the Modality LUT is applied: Rescale Slope / Intercept (HU for CT), a
  Modality LUT Sequence, RT Dose Grid Scaling (to DoseUnits), and for Enhanced
  multi-frame objects the per-frame (or shared) Pixel Value Transformation;
* MONOCHROME1 images are inverted so that a higher value is always brighter;
* compressed transfer syntaxes go through pydicom's pixel decoders, which use
  pylibjpeg (+ pylibjpeg-libjpeg / -openjpeg / -rle), Pillow or GDCM when
  installed. A syntax that nothing installed can decode raises
  :class:`~medbench.errors.DecodeError` naming the file, the syntax and the
  package to install.

The returned array keeps DICOM's natural layout (not the ``[i, j, k]`` of
:class:`~medbench.image.volume.Volume`): ``(rows, columns)`` for one frame,
``(frames, rows, columns)`` for several, with a trailing RGB axis of 3 for
colour images.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import UID

from medbench.errors import DecodeError

_JPEG = "pylibjpeg and pylibjpeg-libjpeg"
_J2K = "pylibjpeg and pylibjpeg-openjpeg"

#: What to install for each compressed transfer syntax pydicom knows.
PACKAGE_FOR_SYNTAX: dict[str, str] = {
    "1.2.840.10008.1.2.4.50": _JPEG,  # JPEG Baseline (Process 1)
    "1.2.840.10008.1.2.4.51": _JPEG,  # JPEG Extended (Process 2 and 4)
    "1.2.840.10008.1.2.4.57": _JPEG,  # JPEG Lossless (Process 14)
    "1.2.840.10008.1.2.4.70": _JPEG,  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80": _JPEG,  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81": _JPEG,  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90": _J2K,  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91": _J2K,  # JPEG 2000
    "1.2.840.10008.1.2.4.201": _J2K,  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202": _J2K,  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203": _J2K,  # HTJ2K
    "1.2.840.10008.1.2.5": "pylibjpeg and pylibjpeg-rle (or numpy for pydicom's own RLE decoder)",
}


def _source_name(ds: Dataset) -> str:
    """The file a dataset came from, or its SOP Instance UID when it has no file."""
    name = getattr(ds, "filename", None)
    if isinstance(name, str) and name:
        return name
    return f"dataset {ds.get('SOPInstanceUID', '<no SOPInstanceUID>')}"


def syntax_label(uid: str) -> str:
    """``"<name> (<uid>)"`` for a transfer syntax, e.g. ``"RLE Lossless (1.2.840.10008.1.2.5)"``."""
    name = UID(uid).name
    return f"{name} ({uid})" if name != uid else f"unknown transfer syntax ({uid})"


def _transfer_syntax(ds: Dataset) -> UID:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if not uid or not isinstance(uid, str):
        raise DecodeError(
            f"cannot decode {_source_name(ds)}: its file meta has no Transfer Syntax UID (0002,0010), "
            "so the pixel encoding is unknown"
        )
    return UID(uid)


def _check_decoder(ds: Dataset, uid: UID) -> None:
    """Raise DecodeError with the package to install when no plugin can decode ``uid``."""
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise DecodeError(
            f"cannot decode {_source_name(ds)}: {syntax_label(uid)}: install a pydicom release that implements "
            f"this transfer syntax (pydicom {pydicom.__version__} has no decoder for it)"
        ) from None
    if not decoder.is_available:
        package = PACKAGE_FOR_SYNTAX.get(str(uid), "a pydicom pixel data plugin for it (pylibjpeg or python-gdcm)")
        raise DecodeError(f"cannot decode {_source_name(ds)}: {syntax_label(uid)}: install {package}")


def n_frames(ds: Dataset) -> int:
    """Number of frames (1 when Number of Frames is absent or empty)."""
    value = ds.get("NumberOfFrames")
    try:
        return max(int(value or 1), 1)
    except (TypeError, ValueError):
        raise DecodeError(f"{_source_name(ds)}: invalid Number of Frames {value!r}") from None


def _decode(ds: Dataset, uid: UID) -> np.ndarray:
    """Stored values as pydicom decodes them (YBR converted to RGB)."""
    try:
        return np.asarray(ds.pixel_array)
    except (MemoryError, KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # decoders raise RuntimeError, ValueError, OSError, and Rust panics (BaseException)
        reason = " ".join(str(exc).split())[:400] or type(exc).__name__
        raise DecodeError(
            f"cannot decode {_source_name(ds)}: {syntax_label(uid)}: the pixel data is corrupt, truncated or "
            f"inconsistent with its header ({reason})"
        ) from exc


def _item(seq_owner: Dataset | None, keyword: str) -> Dataset | None:
    """First item of a sequence attribute, or None."""
    if seq_owner is None:
        return None
    seq = seq_owner.get(keyword)
    return seq[0] if seq else None


def functional_group(ds: Dataset, frame: int, keyword: str) -> Dataset | None:
    """The ``keyword`` macro item for ``frame`` of an Enhanced multi-frame object.

    Looks in the Per-Frame Functional Groups first, then in the Shared ones, as
    the standard prescribes; None when neither has it.
    """
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and frame < len(per_frame):
        found = _item(per_frame[frame], keyword)
        if found is not None:
            return found
    return _item(_item(ds, "SharedFunctionalGroupsSequence"), keyword)


def _frame_rescale(ds: Dataset, frame: int) -> tuple[float, float] | None:
    """(slope, intercept) of one frame: functional groups first, then the top level."""
    item = functional_group(ds, frame, "PixelValueTransformationSequence") if _is_enhanced(ds) else None
    for source in (item, ds):
        if source is not None and "RescaleSlope" in source and "RescaleIntercept" in source:
            return float(source.RescaleSlope), float(source.RescaleIntercept)
    return None


def _is_enhanced(ds: Dataset) -> bool:
    return "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds


def _physical(ds: Dataset, stored: np.ndarray, frames: int) -> np.ndarray:
    """Apply the Modality LUT stage; ``stored`` has ``frames`` frames on its first axis when > 1."""
    if _is_enhanced(ds):
        per_frame = stored.reshape((frames, -1)).astype(np.float64)
        for f in range(frames):
            rescale = _frame_rescale(ds, f)
            if rescale is not None:
                per_frame[f] = per_frame[f] * rescale[0] + rescale[1]
        return per_frame.reshape(stored.shape)
    if "DoseGridScaling" in ds and str(ds.get("Modality", "")).upper() == "RTDOSE":
        return stored.astype(np.float64) * float(ds.DoseGridScaling)
    return np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)


def _stored_range(ds: Dataset) -> np.ndarray:
    bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 16)
    if int(ds.get("PixelRepresentation") or 0) == 1:
        return np.array([-(2 ** (bits - 1)), 2 ** (bits - 1) - 1])
    return np.array([0, 2**bits - 1])


def _invert_monochrome1(ds: Dataset, values: np.ndarray) -> np.ndarray:
    """Mirror MONOCHROME1 values within their physical range so higher = brighter.

    The range is that of the stored bit depth passed through the same Modality
    LUT stage (of the first frame), so inverted values stay in the original
    value range.
    """
    limits = _physical(ds, _stored_range(ds), 1)
    return (float(limits.min()) + float(limits.max())) - values


def read_pixels(ds: Dataset) -> np.ndarray:
    """Physical pixel values of ``ds`` as float32.

    ``ds`` must hold its Pixel Data (read without ``stop_before_pixels``).
    Monochrome images get the Modality LUT stage and MONOCHROME1 inversion;
    colour images come back as RGB (YBR and palette colour converted) with no
    rescaling. Raises :class:`DecodeError` naming the file when the pixels
    cannot be decoded.
    """
    if "PixelData" not in ds:
        raise DecodeError(f"cannot decode {_source_name(ds)}: it has no Pixel Data (7FE0,0010)")
    uid = _transfer_syntax(ds)
    _check_decoder(ds, uid)
    frames = n_frames(ds)
    stored = _decode(ds, uid)
    try:
        return _values(ds, stored, frames)
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # pydicom's LUT code on malformed slopes, LUT descriptors, samples...
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise DecodeError(
            f"cannot convert {_source_name(ds)} to physical values: its Modality LUT / rescale or colour attributes "
            f"are malformed ({type(exc).__name__}: {reason})"
        ) from exc


def _values(ds: Dataset, stored: np.ndarray, frames: int) -> np.ndarray:
    """Decoded stored values to physical values (see :func:`read_pixels`)."""
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    if photometric == "PALETTE COLOR":
        return np.asarray(apply_color_lut(stored, ds), dtype=np.float32)
    if int(ds.get("SamplesPerPixel") or 1) > 1:
        return stored.astype(np.float32)
    values = _physical(ds, stored, frames)
    if photometric == "MONOCHROME1":
        values = _invert_monochrome1(ds, values)
    return values.astype(np.float32)


def read_frames(ds: Dataset) -> np.ndarray:
    """Physical values frame by frame: ``(frames, rows, columns)`` (plus an RGB axis for colour).

    A single-frame image is one frame; a Siemens MOSAIC is unpacked into its
    slices (:mod:`medbench.io.dicom.mosaic`; :class:`~medbench.io.dicom.mosaic.MosaicError`
    when it cannot be), never returned as one tiled frame.
    """
    from medbench.io.dicom.mosaic import is_mosaic, mosaic_layout, unpack

    values = read_pixels(ds)
    if is_mosaic(ds):
        return unpack(values, mosaic_layout(ds))
    return values if n_frames(ds) > 1 else values[None]


def pixel_units(ds: Dataset) -> str:
    """Units of :func:`read_pixels` output: "HU" for CT, else what the header states, else ""."""
    modality = str(ds.get("Modality", "")).upper()
    if modality == "CT":
        return "HU"
    if modality == "RTDOSE":
        return str(ds.get("DoseUnits", ""))
    rescale_type = ds.get("RescaleType") or _header_value(ds, "PixelValueTransformationSequence", "RescaleType")
    if rescale_type:
        return str(rescale_type)
    return str(ds.get("Units", ""))  # PET (e.g. BQML)


def _header_value(ds: Dataset, sequence: str, keyword: str) -> Any:
    item = functional_group(ds, 0, sequence) if _is_enhanced(ds) else None
    return item.get(keyword) if item is not None else None


def window(ds: Dataset) -> tuple[float, float] | None:
    """First (center, width) display window of ``ds`` (or its first frame), if any."""
    source: Dataset | None = ds
    if "WindowCenter" not in ds and _is_enhanced(ds):
        source = functional_group(ds, 0, "FrameVOILUTSequence")
    if source is None or "WindowCenter" not in source or "WindowWidth" not in source:
        return None
    center, width = _first_float(source.get("WindowCenter")), _first_float(source.get("WindowWidth"))
    return None if center is None or width is None else (center, width)


def _first_float(value: Any) -> float | None:
    """A DS value that may be multi-valued (several windows): its first number (None when empty or malformed)."""
    try:
        return float(value[0]) if isinstance(value, MultiValue) else float(value)
    except (TypeError, ValueError, IndexError):
        return None
