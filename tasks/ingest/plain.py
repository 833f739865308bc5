"""Plain PNG, JPEG and TIFF images, as public data sets ship them (8/16-bit grayscale or RGB)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from tasks.ingest.records import DecodedImage, ImageMeta, SourceKeys, UnusableFile
from tasks.ingest.settings import IngestSettings
from tasks.ingest.slices import select_slices

TIFF_SUFFIXES = (".tif", ".tiff")


def decode_plain(path: Path, settings: IngestSettings) -> list[DecodedImage]:
    """Decode to float32 (H, W) or (H, W, 3); multi-page TIFFs go through the slice strategy."""
    array = (
        _read_tiff(path, settings) if path.suffix.lower() in TIFF_SUFFIXES else _read_pillow(path, settings)
    )
    if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4)):
        array = array[np.newaxis]  # (1, H, W[, C])
    if array.shape[-1] == 4:
        array = array[..., :3]  # drop alpha
    if array.ndim not in (3, 4) or 0 in array.shape:
        raise UnusableFile("quarantined", f"unsupported image layout: shape {array.shape}")
    stack = array.astype(np.float32)
    slices = select_slices(stack, settings.slice_strategy, settings.slices)
    meta = ImageMeta(photometric="RGB" if stack.ndim == 4 else "MONOCHROME2")
    return [DecodedImage(pixels, frame, meta, SourceKeys()) for frame, pixels in slices]


def _read_pillow(path: Path, settings: IngestSettings) -> np.ndarray:
    """PNG/JPEG via Pillow; palette and odd modes become RGB or grayscale."""
    Image.MAX_IMAGE_PIXELS = settings.max_pixels  # Pillow's own decompression-bomb guard
    with Image.open(path) as opened:
        image: Image.Image = opened
        if image.mode in ("P", "PA", "CMYK", "YCbCr", "RGBA", "LAB", "HSV"):
            image = image.convert("RGB")
        elif image.mode in ("1", "LA"):
            image = image.convert("L")
        return np.asarray(image)


def _read_tiff(path: Path, settings: IngestSettings) -> np.ndarray:
    """TIFF via tifffile (keeps 16-bit and multi-page data that Pillow would mangle)."""
    with tifffile.TiffFile(path) as tiff:
        series = tiff.series[0]
        if int(np.prod(series.shape)) > settings.max_pixels:
            raise UnusableFile(
                "quarantined", f"too large: {int(np.prod(series.shape))} values exceed ingest.max_pixels"
            )
        return np.asarray(series.asarray())
