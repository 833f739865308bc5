"""The per-image deterministic transform (MONAI): channel handling, intensity scaling, resize to S x S.

Used for the whole store by the preprocess stage and, one image at a time, by predict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from monai.transforms import Compose, Resize, ScaleIntensityRangePercentiles, SpatialPad, Transform

from tasks.common.errors import RadflowError

# ITU-R BT.601 luma weights: an RGB photograph of a film becomes one grayscale channel.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
OTSU_BINS = 256  # histogram bins of the foreground threshold
Window = Literal["image", "foreground"]
TopClip = Literal["hard", "soft"]


@dataclass(frozen=True)
class TransformSettings:
    """What image_to_tensor needs: the output side and the intensity window (params.yaml `preprocess`)."""

    image_size: int
    lower_percentile: float
    upper_percentile: float
    window: Window
    top_clip: TopClip
    headroom: float

    @property
    def ceiling(self) -> float:
        """The largest value a stored image can hold: 1, or 1 + headroom with the soft top clip."""
        return 1.0 + self.headroom if self.top_clip == "soft" else 1.0


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold of a 1-D array: the cut that maximises the between-class variance."""
    counts, edges = np.histogram(values, bins=OTSU_BINS)
    centres = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(counts, dtype=np.float64)
    above = below[-1] - below
    sums = np.cumsum(counts * centres, dtype=np.float64)
    mean_below = sums / np.maximum(below, 1)
    mean_above = (sums[-1] - sums) / np.maximum(above, 1)
    between = below * above * (mean_below - mean_above) ** 2
    return float(centres[int(np.argmax(between))])


class IntensityWindow(Transform):
    """(1, H, W) float32 -> the same, the window's low end at 0 and its high end at 1, as a numpy array.

    `window: foreground` takes the high end's percentile among the pixels above the image's Otsu
    threshold (the body, not the air or padding), so the share of background in the frame does not set
    the scale. The low end stays a percentile of the whole image: in a radiograph the lungs are dark
    foreground, and a low end taken inside the body would black them out.

    `top_clip: soft` keeps what lies above the high end instead of clipping it to 1: a value 1 + d
    becomes 1 + headroom * tanh(d / headroom) (slope 1 at the window's top, at most 1 + headroom), so a
    lesion brighter than the brightest normal tissue keeps its contrast while burnt-in text cannot
    stretch the scale. Values below the low end are clipped to 0 either way.
    """

    def __init__(self, settings: TransformSettings) -> None:
        self.settings = settings

    def __call__(self, img: np.ndarray) -> np.ndarray:
        s = self.settings
        image = np.asarray(img, dtype=np.float32)
        low = float(np.percentile(image, s.lower_percentile))
        top_values = image.ravel()
        if s.window == "foreground":
            body = top_values[top_values > otsu_threshold(top_values)]
            top_values = body if body.size else top_values  # a constant image has no foreground
        high = float(np.percentile(top_values, s.upper_percentile))
        if high <= low:  # a flat image: all black, as MONAI's window leaves a constant image
            return np.zeros_like(image)
        scaled = np.maximum((image - low) / (high - low), 0.0)
        if s.top_clip == "hard":
            return np.minimum(scaled, 1.0)
        over = scaled > 1.0
        scaled[over] = 1.0 + s.headroom * np.tanh((scaled[over] - 1.0) / s.headroom)
        return scaled


def window_transform(settings: TransformSettings) -> Transform:
    """The intensity window: MONAI's percentile window (image, hard: the classic choice, and what the
    exported MONAI bundle spells out), else radflow's IntensityWindow."""
    if settings.window == "image" and settings.top_clip == "hard":
        # Robust window: outliers (burnt-in text, collimator edges) do not set the scale.
        return ScaleIntensityRangePercentiles(
            lower=settings.lower_percentile,
            upper=settings.upper_percentile,
            b_min=0.0,
            b_max=1.0,
            clip=True,
        )
    return IntensityWindow(settings)


def build_transform(settings: TransformSettings) -> Compose:
    """(1, H, W) float32 numpy -> (1, S, S) in [0, ceiling]: window, then aspect-preserving resize and pad.

    The input stays a numpy array (no EnsureChannelFirst/MetaTensor): MONAI then takes percentiles
    with numpy, much faster than torch.quantile on a radiograph (BENCHMARKS.md, code choices).
    """
    size = settings.image_size
    return Compose(
        [
            window_transform(settings),
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
    """One decoded image -> (1, S, S) float16 in [0, ceiling], exactly as stored for training."""
    transform = transform or build_transform(settings)
    out = transform(to_grayscale(pixels)[None])  # (1, H, W) -> (1, S, S)
    return np.asarray(out, dtype=np.float32).astype(np.float16)
