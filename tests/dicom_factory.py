"""Write small DICOM, NIfTI and plain image files for tests, with known identifying values planted.

Shared by the ingest, predict and fault-suite tests. The DICOM header layout is the demo archive's
(`tasks.demo_data.dicom.build_dataset`), so tests see what the demo and a real archive carry.
"""

from __future__ import annotations

import gzip
from dataclasses import replace
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from PIL import Image
from pydicom.uid import UID, ExplicitVRLittleEndian

from tasks.demo_data.dicom import Identity, build_dataset, encode

# Planted values: long and unusual enough that finding one anywhere means it leaked.
PLANTED = Identity(
    patient_name="GRIMSWALD^OTTILIE",
    patient_id="PID77412093",
    birth_date="19480317",
    sex="F",
    accession="ACCN55501977",
    institution="HOLLOWBROOK MERIDIAN HOSPITAL",
    referring_physician="KESTERBAUM^LEOPOLD",
    study_date="20230415",
    study_uid="1.2.826.0.1.3680043.8.498.101",
    series_uid="1.2.826.0.1.3680043.8.498.102",
    sop_uid="1.2.826.0.1.3680043.8.498.103",
    private_text="Pt GRIMSWALD OTTILIE phone 5550147 MRN PID77412093",
)


def identity(**changes: str) -> Identity:
    """The planted identity with some fields changed (e.g. another patient_id or sop_uid)."""
    return replace(PLANTED, **changes)


def ramp(rows: int = 32, cols: int = 32, maximum: int = 4095, dtype: Any = np.uint16) -> np.ndarray:
    """A (rows, cols) horizontal ramp 0..maximum: easy to check orientation and inversion on."""
    return np.tile(np.linspace(0, maximum, cols), (rows, 1)).round().astype(dtype)


def write_dicom(
    path: Path,
    pixels: np.ndarray | None = None,
    *,
    transfer_syntax: UID = ExplicitVRLittleEndian,
    photometric: str = "MONOCHROME2",
    who: Identity = PLANTED,
    modality: str = "DX",
    bits_stored: int = 12,
    rescale: tuple[float, float] | None = None,
    burned_in: str | None = None,
    no_pixels: bool = False,
    **attributes: Any,
) -> Path:
    """Write a DICOM file holding `pixels` ((H, W), (F, H, W) or (H, W, 3) RGB; default: a 32x32 ramp).

    `no_pixels` leaves Pixel Data out while keeping the image header (SR objects never have pixels).
    `attributes` set further header keywords (e.g. WindowCenter=..., PatientAge="045Y").
    """
    ds = build_dataset(
        None if modality == "SR" else ramp() if pixels is None else pixels,
        who,
        modality=modality,
        photometric=photometric,
        bits_stored=bits_stored,
        rescale=rescale,
        burned_in=burned_in,
    )
    if no_pixels and "PixelData" in ds:
        del ds.PixelData
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(ds, transfer_syntax))
    return path


def write_nifti(path: Path, volume: np.ndarray, affine: np.ndarray | None = None) -> Path:
    """Write a NIfTI volume ((X, Y, Z[, T]) voxels) as .nii or .nii.gz (chosen by the suffix)."""
    image = nib.Nifti1Image(volume, np.eye(4) if affine is None else affine)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = image.to_bytes()
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)
    return path


def write_plain(path: Path, pixels: np.ndarray) -> Path:
    """Write a PNG/JPEG/TIFF with Pillow: (H, W) uint8/uint16 or (H, W, 3) uint8."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path
