"""Build and encode DICOM datasets with realistic (fake) identifying headers.

Shared by the demo archive and the tests' DICOM factory, so both exercise the same header layout:
every attribute a hospital archive would carry that de-identification must remove is filled in.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

SOP_CLASSES = {
    "DX": UID("1.2.840.10008.5.1.4.1.1.1.1"),  # Digital X-Ray Image Storage - For Presentation
    "CR": UID("1.2.840.10008.5.1.4.1.1.1"),  # Computed Radiography Image Storage
    "CT": UID("1.2.840.10008.5.1.4.1.1.2"),  # CT Image Storage
    "MR": UID("1.2.840.10008.5.1.4.1.1.4"),  # MR Image Storage
    "OT": UID("1.2.840.10008.5.1.4.1.1.7"),  # Secondary Capture Image Storage
    "SR": UID("1.2.840.10008.5.1.4.1.1.88.11"),  # Basic Text SR Storage (no pixels)
}
NATIVE_SYNTAXES = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian)
COMPRESSED_SYNTAXES = (RLELossless, JPEG2000Lossless)  # the lossless encoders available here
PRIVATE_CREATOR = "RADFLOW DEMO"


@dataclass(frozen=True)
class Identity:
    """The identifying header values of one image: all of them must vanish during ingest."""

    patient_name: str
    patient_id: str
    birth_date: str  # YYYYMMDD
    sex: str  # M | F | O
    accession: str
    institution: str
    referring_physician: str
    study_date: str  # YYYYMMDD
    study_uid: str
    series_uid: str
    sop_uid: str
    private_text: str  # free text planted in a private tag, as some vendors do


def build_dataset(
    pixels: np.ndarray | None,
    identity: Identity,
    *,
    modality: str = "DX",
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
    view: str = "PA",
    rescale: tuple[float, float] | None = None,
    burned_in: str | None = None,
) -> Dataset:
    """A complete dataset for `pixels`: (H, W) or (F, H, W) integers, or (H, W, 3) uint8 RGB.

    `pixels=None` makes an object without Pixel Data (reports, or the broken demo file). `rescale` is
    (slope, intercept) for Rescale Slope/Intercept.
    """
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SOP_CLASSES[modality]
    ds.file_meta.MediaStorageSOPInstanceUID = UID(identity.sop_uid)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = SOP_CLASSES[modality]
    ds.SOPInstanceUID = identity.sop_uid
    ds.StudyInstanceUID = identity.study_uid
    ds.SeriesInstanceUID = identity.series_uid
    ds.Modality = modality
    ds.PatientName = identity.patient_name
    ds.PatientID = identity.patient_id
    ds.PatientBirthDate = identity.birth_date
    ds.PatientSex = identity.sex
    ds.AccessionNumber = identity.accession
    ds.InstitutionName = identity.institution
    ds.ReferringPhysicianName = identity.referring_physician
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = identity.study_date
    ds.StudyTime = "101500"
    ds.StudyDescription = "CHEST 2 VIEWS"
    ds.SeriesDescription = f"CHEST {view}"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = view
    ds.Manufacturer = "ACME Imaging"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    block = ds.private_block(0x0011, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "LO", identity.private_text)
    if burned_in is not None:
        ds.BurnedInAnnotation = burned_in
    if pixels is not None:
        _set_pixels(ds, pixels, photometric, bits_stored, rescale)
    return ds


def _set_pixels(
    ds: Dataset, pixels: np.ndarray, photometric: str, bits_stored: int, rescale: tuple[float, float] | None
) -> None:
    """Fill the Image Pixel module from an integer array."""
    rgb = pixels.ndim == 3 and pixels.shape[-1] == 3 and photometric in ("RGB", "YBR_FULL")
    frames = pixels.shape[0] if pixels.ndim == 3 and not rgb else 1
    ds.Rows, ds.Columns = pixels.shape[-3:-1] if rgb else pixels.shape[-2:]
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.PhotometricInterpretation = photometric
    if rgb:
        ds.PlanarConfiguration = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = int(np.issubdtype(pixels.dtype, np.signedinteger))
    ds.ImagerPixelSpacing = ds.PixelSpacing = [0.7, 0.7]
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
        ds.RescaleType = "US"
    ds.PixelData = np.ascontiguousarray(pixels).astype(pixels.dtype.newbyteorder("<")).tobytes()


def encode(ds: Dataset, transfer_syntax: UID) -> bytes:
    """Serialise `ds` as a DICOM Part 10 file in `transfer_syntax` (compressing pixels if needed)."""
    if transfer_syntax in COMPRESSED_SYNTAXES:
        ds.compress(transfer_syntax, generate_instance_uid=False)
    elif transfer_syntax in NATIVE_SYNTAXES:
        ds.file_meta.TransferSyntaxUID = transfer_syntax
    else:
        raise ValueError(
            f"cannot encode {transfer_syntax.name}; valid: {NATIVE_SYNTAXES + COMPRESSED_SYNTAXES}"
        )
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
