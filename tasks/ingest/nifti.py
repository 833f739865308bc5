"""NIfTI volumes (.nii, .nii.gz) to 2D axial images, in canonical RAS+ orientation."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from tasks.ingest.records import DecodedImage, ImageMeta, SourceKeys, UnusableFile
from tasks.ingest.settings import IngestSettings
from tasks.ingest.slices import select_slices


def decode_nifti(path: Path, settings: IngestSettings) -> list[DecodedImage]:
    """Reorient to RAS+, replace non-finite voxels, and pick axial slices by the slice strategy."""
    image = nib.as_closest_canonical(nib.load(path))
    shape = image.shape
    if int(np.prod(shape)) > settings.max_pixels:
        raise UnusableFile(
            "quarantined",
            f"too large: {int(np.prod(shape))} voxels exceed ingest.max_pixels={settings.max_pixels}",
        )
    if len(shape) < 2 or 0 in shape:
        raise UnusableFile("quarantined", f"empty volume: shape {tuple(shape)}")
    volume = image.get_fdata(dtype=np.float32)  # (X, Y[, Z[, T...]]) RAS+, scaled by scl_slope/inter
    volume = volume.reshape(*volume.shape[:2], -1)  # extra dims (time, echoes) become more slices
    volume = _finite(volume)
    # Axial slice (X, Y) -> displayed (rows, cols): anterior at the top, patient's right on the left.
    stack = volume.transpose(2, 1, 0)[:, ::-1, ::-1]  # (Z, Y, X)
    zooms = image.header.get_zooms()
    meta = ImageMeta(spacing_row=float(zooms[1]), spacing_col=float(zooms[0]))
    slices = select_slices(np.ascontiguousarray(stack), settings.slice_strategy, settings.slices)
    return [DecodedImage(pixels, frame, meta, SourceKeys()) for frame, pixels in slices]


def _finite(volume: np.ndarray) -> np.ndarray:
    """NaN becomes the lowest finite value, +/-inf the highest/lowest: they must not reach training."""
    finite = np.isfinite(volume)
    if finite.all():
        return volume
    if not finite.any():
        raise UnusableFile("quarantined", "no finite voxels: the volume is all NaN/inf")
    low, high = float(volume[finite].min()), float(volume[finite].max())
    return np.nan_to_num(volume, nan=low, posinf=high, neginf=low)
