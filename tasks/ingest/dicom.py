"""DICOM decoding: any transfer syntax pydicom and its plugins read, to images in modality units.

Order of operations follows the standard's pixel pipeline: decode (pydicom converts YBR to RGB),
palette lookup, Modality LUT (Rescale Slope/Intercept), optional VOI LUT / windowing, then MONOCHROME1
inversion so bright always means dense. Objects without images are skipped, broken ones quarantined.
Stored integers that no step changes stay in their native dtype (exact, and half the bytes of float32).
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zlib
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom import uid
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, pixel_array
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from tasks.ingest.records import DecodedImage, ImageMeta, SourceKeys, UnusableFile, failure_reason
from tasks.ingest.settings import IngestSettings
from tasks.ingest.slices import select_slices

MEDIA_DIRECTORY = UID("1.2.840.10008.1.3.10")  # DICOMDIR
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
UNDEFINED_LENGTH = 0xFFFFFFFF  # encapsulated (compressed) Pixel Data has no fixed length
DICOM_DATE = re.compile(r"\d{8}")
CODE_STRING = re.compile(r"^[A-Z0-9 _]{1,16}$")  # DICOM CS values: safe to keep (no free text)
CODECS = {  # transfer syntax -> the codec a failure reason names
    uid.RLELossless: "RLE",
    uid.JPEGBaseline8Bit: "JPEG baseline",
    uid.JPEGExtended12Bit: "JPEG extended",
    uid.JPEGLossless: "JPEG lossless",
    uid.JPEGLosslessSV1: "JPEG lossless",
    uid.JPEGLSLossless: "JPEG-LS",
    uid.JPEGLSNearLossless: "JPEG-LS",
    uid.JPEG2000Lossless: "JPEG 2000",
    uid.JPEG2000: "JPEG 2000",
    uid.HTJ2KLossless: "HTJ2K",
    uid.HTJ2KLosslessRPCL: "HTJ2K",
    uid.HTJ2K: "HTJ2K",
}


def decode_dicom(source: Path | bytes, settings: IngestSettings) -> list[DecodedImage]:
    """Decode one DICOM file (its path, or its bytes already read) into 2D images, or raise UnusableFile."""
    ds = _read(source)
    sop_class = UID(str(_get(ds, "SOPClassUID", "") or ds.file_meta.get("MediaStorageSOPClassUID", "")))
    if sop_class == MEDIA_DIRECTORY or "DirectoryRecordSequence" in ds:
        raise UnusableFile("skipped", "no image: DICOMDIR (media directory)")
    if not any(keyword in ds for keyword in PIXEL_KEYWORDS):
        if "Image" in sop_class.name or "Rows" in ds:
            raise UnusableFile(
                "quarantined", f"no pixel data: image object ({_class_name(sop_class)}) lacks Pixel Data"
            )
        raise UnusableFile(
            "skipped", f"no image: {_class_name(sop_class) or _get(ds, 'Modality', 'unknown object')}"
        )
    if settings.burned_in == "quarantine" and str(_get(ds, "BurnedInAnnotation", "")).upper() == "YES":
        raise UnusableFile(
            "quarantined", "burned-in annotation: Burned In Annotation = YES (text may identify)"
        )
    _check_size(ds, settings.max_pixels)
    _check_complete(ds)
    stack = _pixels(ds, settings.voi_lut)  # (N, H, W) or (N, H, W, 3), native integers or float32
    meta, keys = _meta(ds), _keys(ds)
    return [
        DecodedImage(image, frame, meta, keys)
        for frame, image in select_slices(stack, settings.slice_strategy, settings.slices)
    ]


def _read(source: Path | bytes) -> Dataset:
    """Read a Part 10 file, or a bare dataset without preamble/file meta (older archives write those)."""

    def read(force: bool) -> Dataset:
        return pydicom.dcmread(io.BytesIO(source) if isinstance(source, bytes) else source, force=force)

    try:
        ds = read(force=False)
    except zlib.error as error:  # Deflated Explicit VR Little Endian with a damaged deflate stream
        raise UnusableFile("quarantined", failure_reason("deflate decoder", error), "zlib.error") from None
    except InvalidDicomError:
        try:
            ds = read(force=True)
            recognisable = any(key in ds for key in ("SOPClassUID", "Rows", *PIXEL_KEYWORDS))
        except Exception:  # any parse failure of a forced read means: not DICOM
            recognisable = False
        if not recognisable:
            raise UnusableFile(
                "quarantined",
                "not DICOM: no DICM prefix and no recognisable DICOM elements",
                "InvalidDicomError",
            ) from None
    if "TransferSyntaxUID" not in ds.file_meta:
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        )
    return ds


def _get(ds: Dataset, keyword: str, default: Any = None) -> Any:
    """`ds.get(keyword, default)` by tag, skipping Dataset.__getattr__'s keyword lookup.

    A file takes some 25 reads, and the detour about doubles the cost of each (BENCHMARKS.md, code
    choices).
    """
    tag = _tag(keyword)
    return ds[tag].value if tag in ds else default


@cache
def _tag(keyword: str) -> BaseTag:
    """The tag of a data element keyword (looked up once per keyword)."""
    return Tag(keyword)


def _class_name(sop_class: UID) -> str:
    """The SOP class's registered name, or its UID when unknown (UIDs of classes are not identifying)."""
    return sop_class.name if sop_class else ""


def _check_size(ds: Dataset, max_pixels: int) -> None:
    """Refuse images whose declared size exceeds the configured bound before decoding them."""
    frames = int(_get(ds, "NumberOfFrames", 1) or 1)
    pixels = (
        int(_get(ds, "Rows", 0)) * int(_get(ds, "Columns", 0)) * frames * int(_get(ds, "SamplesPerPixel", 1))
    )
    if pixels > max_pixels:
        raise UnusableFile(
            "quarantined", f"too large: {pixels} pixel values exceed ingest.max_pixels={max_pixels}"
        )
    if pixels == 0:
        raise UnusableFile("quarantined", "empty image: Rows, Columns or Number of Frames is zero")


def _check_complete(ds: Dataset) -> None:
    """A file cut off inside Pixel Data reads as a shorter value than its declared length."""
    raw = ds.get_item("PixelData")
    declared = getattr(raw, "length", UNDEFINED_LENGTH)
    if isinstance(raw, RawDataElement) and declared != UNDEFINED_LENGTH and len(raw.value or b"") < declared:
        raise UnusableFile(
            "quarantined",
            f"truncated file: Pixel Data holds {len(raw.value or b'')} of {declared} declared bytes",
        )


def _pixels(ds: Dataset, voi_lut: bool) -> np.ndarray:
    """Decoded pixels as (N, H, W) or (N, H, W, 3) in modality units, bright = dense.

    Native integers when no step changes the stored values (identity rescale, no VOI, MONOCHROME2),
    else float32.
    """
    try:
        # The same array as ds.pixel_array, minus that property's cache check (two scans of 12 elements).
        array = pixel_array(ds)
    except (KeyboardInterrupt, MemoryError):  # Ctrl-C; the worker's memory limit (reported as such)
        raise
    except BaseException as error:  # a decoder's failure of any kind, a Rust panic included
        if isinstance(error, ValueError) and "bytes of pixel data" in str(error):
            raise UnusableFile("quarantined", f"pixel data length mismatch: {error}", "ValueError") from None
        codec = CODECS.get(ds.file_meta.TransferSyntaxUID, "DICOM")
        raise UnusableFile(
            "quarantined", failure_reason(f"{codec} decoder", error), type(error).__name__
        ) from None
    photometric = str(_get(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    frames = int(_get(ds, "NumberOfFrames", 1) or 1)
    if photometric == "PALETTE COLOR":
        array = apply_color_lut(array, ds)
    color = array.ndim == (4 if frames > 1 else 3)
    if not color:
        if _rescales(ds):
            array = apply_modality_lut(array, ds)
        if voi_lut:
            array = apply_voi_lut(array, ds)
        if photometric == "MONOCHROME1":
            low, high = _mirror_range(ds, voi_lut)
            array = (high + low) - array
    stack = array if array.dtype.kind in "iu" else np.asarray(array, dtype=np.float32)
    if frames == 1:
        stack = stack[np.newaxis]
    if array.dtype.kind == "f" and not np.isfinite(stack).all():  # only float data can hold NaN/inf
        raise UnusableFile("quarantined", "non-finite pixels: image holds NaN or infinite values")
    return stack


def _rescales(ds: Dataset) -> bool:
    """Whether the Modality LUT changes values: a LUT, or Rescale Slope/Intercept other than 1/0."""
    if "ModalityLUTSequence" in ds:
        return True
    return _rescale(ds) != (1.0, 0.0)


def _rescale(ds: Dataset) -> tuple[float, float]:
    """(Rescale Slope, Rescale Intercept), 1 and 0 when absent."""
    return float(_get(ds, "RescaleSlope", 1) or 1), float(_get(ds, "RescaleIntercept", 0) or 0)


def _mirror_range(ds: Dataset, voi_lut: bool) -> tuple[float, float]:
    """The value range MONOCHROME1 is flipped within: where the last step put the values.

    A VOI LUT table (pydicom prefers it to a window) outputs 0 .. 2^(its bits) - 1; a window, or no VOI
    step at all, leaves them in the range Bits Stored allows after the modality rescale.
    """
    if voi_lut and "VOILUTSequence" in ds:
        descriptor = ds.VOILUTSequence[0].LUTDescriptor
        return 0.0, float(2 ** int(descriptor[2]) - 1)
    bits = int(_get(ds, "BitsStored", 16))
    signed = int(_get(ds, "PixelRepresentation", 0)) == 1
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    slope, intercept = _rescale(ds)
    low, high = sorted((low * slope + intercept, high * slope + intercept))
    return float(low), float(high)


def _meta(ds: Dataset) -> ImageMeta:
    """The non-identifying attributes kept (coded values only; no free text, names or dates)."""
    spacing = _get(ds, "PixelSpacing") or _get(ds, "ImagerPixelSpacing")
    try:
        row, col = (float(spacing[0]), float(spacing[1])) if spacing else (None, None)
    except (TypeError, ValueError, IndexError):
        row, col = None, None
    return ImageMeta(
        modality=_code(_get(ds, "Modality")),
        view=_code(_get(ds, "ViewPosition")),
        body_part=_code(_get(ds, "BodyPartExamined")),
        photometric=_code(_get(ds, "PhotometricInterpretation")),
        sex=_code(_get(ds, "PatientSex")) if str(_get(ds, "PatientSex", "")) in ("M", "F", "O") else "",
        age_band=_age_band(ds),
        manufacturer=re.sub(r"[^A-Za-z0-9 .,&()-]", "", str(_get(ds, "Manufacturer", "") or ""))[:64].strip(),
        spacing_row=row,
        spacing_col=col,
        slice_position=_slice_position(ds),
    )


def _slice_position(ds: Dataset) -> float | None:
    """Position along the slice normal (Image Position . (row x col)), else the Instance Number."""
    try:
        orientation = np.asarray(ds.ImageOrientationPatient, dtype=float)  # (6,) row then column cosines
        normal = np.cross(orientation[:3], orientation[3:])
        return float(np.dot(np.asarray(ds.ImagePositionPatient, dtype=float), normal))
    except (AttributeError, TypeError, ValueError):
        number = _get(ds, "InstanceNumber")
        return float(number) if isinstance(number, int | float) else None


def _code(value: object) -> str:
    """A DICOM code string if it looks like one, else empty (never free text)."""
    text = str(value or "").strip().upper()
    return text if CODE_STRING.match(text) else ""


def _age_band(ds: Dataset) -> str:
    """Ten-year band from Patient Age, else from birth and study dates; '90+' caps the top."""
    age = str(_get(ds, "PatientAge", "") or "")
    if re.fullmatch(r"\d{3}[DWMY]", age):
        years = int(age[:3]) if age[3] == "Y" else 0
    else:
        birth, study = _date(_get(ds, "PatientBirthDate", "")), _date(_get(ds, "StudyDate", ""))
        if birth is None or study is None:
            return ""
        years = (study - birth).days // 365
    if years < 0:
        return ""
    return "90+" if years >= 90 else f"{years // 10 * 10}-{years // 10 * 10 + 9}"


def _date(value: object) -> dt.date | None:
    """A DICOM DA value (YYYYMMDD) as a date, None when it is not one (int slices: strptime is several
    times slower; BENCHMARKS.md, code choices)."""
    text = str(value or "")
    if not DICOM_DATE.fullmatch(text):
        return None
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def _keys(ds: Dataset) -> SourceKeys:
    """Raw identifiers, only to be pseudonymised."""
    return SourceKeys(
        patient=str(_get(ds, "PatientID", "") or ""),
        study=str(_get(ds, "StudyInstanceUID", "") or ""),
        series=str(_get(ds, "SeriesInstanceUID", "") or ""),
        instance=str(_get(ds, "SOPInstanceUID", "") or ""),
        accession=str(_get(ds, "AccessionNumber", "") or ""),
    )
