"""Synthetic chest radiographs with a learnable, not trivial, per-class signal.

Anatomy: a bright body ellipse, two darker lung fields, a bright heart shadow and faint ribs. Classes:
`normal` (nothing added), `opacity` (soft bright blobs inside one lung, like a consolidation) and
`effusion` (a bright fluid level with a meniscus blunting the lower corner of one lung). Position, size,
contrast, exposure and noise vary per image so a classifier has to learn the shapes, not a constant.
"""

from __future__ import annotations

import numpy as np

CLASSES = ("effusion", "normal", "opacity")
MAX_STORED = 4095  # 12-bit detector: stored values 0..4095 in 16-bit words


def _soft_ellipse(
    yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float, edge: float
) -> np.ndarray:
    """1 inside the ellipse, 0 outside, with a smooth edge `edge` wide (in normalised units)."""
    distance = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)  # (S, S), 1 on the border
    return 1.0 / (1.0 + np.exp((distance - 1.0) / edge))


def chest_image(size: int, label: str, rng: np.random.Generator) -> np.ndarray:
    """One radiograph as (size, size) uint16 stored values in 0..4095, bright = dense (MONOCHROME2)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size  # normalised row/column in [0, 1)
    shift_y, shift_x = rng.normal(0.0, 0.025, 2)
    scale = rng.uniform(0.9, 1.08)
    body = _soft_ellipse(yy, xx, 0.55 + shift_y, 0.5 + shift_x, 0.47 * scale, 0.42 * scale, 0.03)
    image = 0.08 + 0.62 * body  # soft tissue over air
    lung_ry, lung_rx = 0.27 * scale * rng.uniform(0.92, 1.08), 0.13 * scale * rng.uniform(0.9, 1.1)
    lung_centres = [(0.47 + shift_y, 0.5 + shift_x + side * 0.19 * scale) for side in (-1, 1)]
    lungs = [_soft_ellipse(yy, xx, cy, cx, lung_ry, lung_rx, 0.04) for cy, cx in lung_centres]
    lung_depth = rng.uniform(0.3, 0.42)  # how much darker aerated lung is than soft tissue
    ribs = 0.04 * np.sin(2 * np.pi * (yy * rng.uniform(9, 12) + rng.uniform(0, 1))) ** 2
    for lung in lungs:
        image -= lung * (lung_depth - ribs)
    heart = _soft_ellipse(yy, xx, 0.6 + shift_y, 0.54 + shift_x, 0.14 * scale, 0.11 * scale, 0.05)
    image += 0.25 * heart * (lungs[0] + lungs[1]).clip(0, 1)

    side = int(rng.integers(0, 2))
    cy, cx = lung_centres[side]
    if label == "opacity":
        for _ in range(int(rng.integers(1, 4))):
            by = cy + rng.uniform(-0.5, 0.5) * lung_ry
            bx = cx + rng.uniform(-0.45, 0.45) * lung_rx
            sigma = rng.uniform(0.035, 0.07)
            blob = np.exp(-(((yy - by) ** 2 + (xx - bx) ** 2) / (2 * sigma**2)))
            image += lungs[side] * blob * lung_depth * rng.uniform(0.65, 0.95)
    elif label == "effusion":
        lateral = np.abs(xx - cx) / lung_rx  # 0 at the lung's midline, 1 at its lateral edge
        level = cy + lung_ry * (rng.uniform(0.25, 0.55) - 0.35 * lateral**2)  # meniscus rises laterally
        fluid = 1.0 / (1.0 + np.exp(-(yy - level) / 0.01))
        image += lungs[side] * fluid * lung_depth * rng.uniform(0.8, 1.0)
    elif label != "normal":
        raise ValueError(f"unknown demo class {label!r}; valid: {CLASSES}")

    exposure = rng.uniform(0.8, 1.15)
    image = image * exposure + rng.normal(0.0, rng.uniform(0.01, 0.03), image.shape).astype(np.float32)
    return (image.clip(0.0, 1.0) * MAX_STORED).astype(np.uint16)
