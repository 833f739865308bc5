"""The parts of the demo archive that are not ordinary radiographs: NIfTI volumes and broken files.

Broken files sit among real studies and are listed in labels.csv, as they would be in a real archive,
so ingest has to notice them by content, not by where they live.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.uid import ExplicitVRLittleEndian

from tasks.common.atomic import atomic_open
from tasks.demo_data.dicom import Identity, build_dataset, encode
from tasks.demo_data.synth import chest_image

# File name -> what is wrong with it; ingest must quarantine each one.
BROKEN_FILES = {
    "truncated.dcm": "a valid radiograph cut off after 40% of its bytes",
    "no_pixels.dcm": "a radiograph header without Pixel Data",
    "not_dicom.dcm": "a text file with a .dcm name",
    "short_pixels.dcm": "Pixel Data shorter than Rows x Columns says",
}
REPORT_FILE = "report.dcm"  # a structured report without pixels: ingest skips it (not an error)


def write_bytes(path: Path, data: bytes) -> None:
    """Write one archive file atomically (synced once at the end by write_demo_archive, not per file)."""
    with atomic_open(path, "wb", durable=False) as handle:
        handle.write(data)


def write_nifti_volume(path: Path, label: str, size: int, slices: int, rng: np.random.Generator) -> None:
    """A small labelled volume (size, size, slices) in RAS+ whose axial slices look like radiographs.

    Slices are stored so that the reader's display transform (transpose, then flip both axes) shows
    them upright; gzip runs with mtime=0 so the file bytes depend on the seed only.
    """
    stack = [chest_image(size, label, rng)[::-1, ::-1].T for _ in range(slices)]  # each (x, y)
    volume = np.stack(stack, axis=-1).astype(np.int16)  # (X, Y, Z)
    affine = np.diag([0.7, 0.7, 5.0, 1.0])
    image = nib.Nifti1Image(volume, affine)
    image.header.set_xyzt_units("mm")
    write_bytes(path, gzip.compress(image.to_bytes(), mtime=0))


def write_broken_files(folder: Path, identity: Identity, size: int, rng: np.random.Generator) -> list[Path]:
    """Write each of BROKEN_FILES into a real patient's study folder; returns their paths."""
    pixels = chest_image(size, "normal", rng)
    valid = encode(build_dataset(pixels, identity), ExplicitVRLittleEndian)
    short = build_dataset(pixels, identity)
    short.PixelData = short.PixelData[: len(short.PixelData) // 2]
    contents = {
        "truncated.dcm": valid[: int(len(valid) * 0.4)],
        "no_pixels.dcm": encode(build_dataset(None, identity), ExplicitVRLittleEndian),
        "not_dicom.dcm": b"Scanned requisition form - see paper chart.\n",
        "short_pixels.dcm": encode(short, ExplicitVRLittleEndian),
    }
    for name, data in contents.items():
        write_bytes(folder / name, data)
    return [folder / name for name in contents]


def write_report(folder: Path, identity: Identity) -> Path:
    """A Basic Text SR (no image): a real archive holds these next to the images."""
    report = build_dataset(None, identity, modality="SR")
    write_bytes(folder / REPORT_FILE, encode(report, ExplicitVRLittleEndian))
    return folder / REPORT_FILE
