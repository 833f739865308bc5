"""The per-image deterministic transform (MONAI): channel handling, intensity scaling, resize to S x S.

Used for the whole store by the preprocess stage and, one image at a time, by predict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from monai.transforms import Compose, Resize, ScaleIntensityRangePercentiles, SpatialPad

from tasks.common.errors import RadflowError

# ITU-R BT.601 luma weights: an RGB photograph of a film becomes one grayscale channel.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class TransformSettings:
    """What image_to_tensor needs: the output side and the percentile window."""

    image_size: int
    lower_percentile: float
    upper_percentile: float


def build_transform(settings: TransformSettings) -> Compose:
    """(1, H, W) float32 numpy -> (1, S, S) in [0, 1]: window, then aspect-preserving resize and pad.

    The input stays a numpy array (no EnsureChannelFirst/MetaTensor): MONAI then takes percentiles
    with numpy, much faster than torch.quantile on a radiograph (BENCHMARKS.md, code choices).
    """
    size = settings.image_size
    return Compose(
        [
            # Robust window: outliers (burnt-in text, collimator edges) do not set the scale.
            ScaleIntensityRangePercentiles(
                lower=settings.lower_percentile,
                upper=settings.upper_percentile,
                b_min=0.0,
                b_max=1.0,
                clip=True,
            ),
            Resize(spatial_size=size, size_mode="longest", mode="area"),  # longest side -> S
            SpatialPad(spatial_size=(size, size)),  # centre pad the short side with 0 (black)
        ]
    )


def to_grayscale(pixels: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 3) -> (H, W) float32."""
    if pixels.ndim == 2:
        return pixels.astype(np.float32, copy=False)
    if pixels.ndim == 3 and pixels.shape[-1] in (3, 4):
        return pixels[..., :3].astype(np.float32) @ LUMA  # drop alpha, luma-weight RGB
    raise RadflowError(f"expected a 2D grayscale or (H, W, 3) RGB image, got shape {pixels.shape}")


def image_to_tensor(
    pixels: np.ndarray, settings: TransformSettings, transform: Compose | None = None
) -> np.ndarray:
    """One decoded image -> (1, S, S) float16 in [0, 1], exactly as stored for training."""
    transform = transform or build_transform(settings)
    out = transform(to_grayscale(pixels)[None])  # (1, H, W) -> (1, S, S)
    return np.asarray(out, dtype=np.float32).astype(np.float16)
