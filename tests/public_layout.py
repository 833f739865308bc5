"""A generated archive in the Kaggle chest X-ray pneumonia layout, as a new user downloads it.

`<split>/<CLASS>/<file>.jpeg` with splits train/val/test and classes NORMAL/PNEUMONIA; patient ids only
in the file names (`person12_bacteria_45.jpeg`, `IM-0115-0001.jpeg`, `NORMAL2-IM-0003-0001.jpeg`);
several images per patient, every patient in one split folder; 8-bit JPEGs, some saved as RGB, of
varied sizes and aspect ratios; a val folder far too small to choose a threshold on (Kaggle's holds 16
images). The pictures are the demo's synthetic radiographs: PNEUMONIA shows opacities, NORMAL does not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tasks.demo_data.synth import MAX_STORED, chest_image

PATIENTS = {"train": 16, "val": 1, "test": 6}  # per class
RGB_EVERY = 4  # every 4th image is an RGB JPEG, as some of Kaggle's are


def write_kaggle_archive(root: Path, seed: int = 0) -> dict[str, list[str]]:
    """Write the archive under `root`; returns the patient keys the file names carry, per split."""
    rng = np.random.default_rng(seed)
    patients: dict[str, list[str]] = {split: [] for split in PATIENTS}
    count = 0
    for split, per_class in PATIENTS.items():
        for _ in range(per_class):
            for label in ("NORMAL", "PNEUMONIA"):
                number = sum(map(len, patients.values())) + 1
                key, names = _names(label, number, int(rng.integers(2, 5)), rng)
                patients[split].append(key)
                for name in names:
                    pixels = _radiograph(label, rng)
                    _save(root / split / label / name, pixels, rng, rgb=count % RGB_EVERY == 0)
                    count += 1
    return patients


def _names(label: str, number: int, images: int, rng: np.random.Generator) -> tuple[str, list[str]]:
    """The patient key and the file names of one patient's images, in Kaggle's conventions."""
    if label == "PNEUMONIA":
        kind = ("bacteria", "virus")[number % 2]
        first = int(rng.integers(1, 500))
        return f"person{number}", [f"person{number}_{kind}_{first + i}.jpeg" for i in range(images)]
    prefix = "NORMAL2-IM" if number % 3 == 0 else "IM"
    return f"{prefix}-{number:04d}", [f"{prefix}-{number:04d}-{i + 1:04d}.jpeg" for i in range(images)]


def _radiograph(label: str, rng: np.random.Generator) -> np.ndarray:
    """(128, 128) 12-bit: the demo's chest radiograph; PNEUMONIA adds a lobar consolidation, a broad
    bright patch over one lung, on top of the demo's small opacities (a pipeline test needs a signal a
    few epochs on ~100 images can learn)."""
    pixels = chest_image(128, "opacity" if label == "PNEUMONIA" else "normal", rng).astype(np.float32)
    if label == "PNEUMONIA":
        yy, xx = np.mgrid[0:128, 0:128] / 128
        cy, cx = rng.uniform(0.35, 0.6), (0.3, 0.7)[int(rng.integers(0, 2))]
        pixels += 0.25 * MAX_STORED * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 0.1**2))
    return pixels.clip(0, MAX_STORED)


def _save(path: Path, pixels: np.ndarray, rng: np.random.Generator, rgb: bool) -> None:
    """(S, S) 12-bit radiograph -> an 8-bit JPEG of a random size and aspect ratio (some RGB)."""
    image = Image.fromarray((pixels.astype(np.float32) * (255 / MAX_STORED)).astype(np.uint8))
    image = image.resize((int(rng.integers(96, 160)), int(rng.integers(96, 160))), Image.Resampling.BILINEAR)
    path.parent.mkdir(parents=True, exist_ok=True)
    (image.convert("RGB") if rgb else image).save(path, quality=90)


def ct_like_slice(size: int = 256) -> np.ndarray:
    """(size, size) uint8: an axial slice as a CT viewer exports it: a body outline full of soft tissue
    with two dark lungs, on black air. What a chest X-ray model must not silently classify."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    body = ((yy - 0.5) / 0.35) ** 2 + ((xx - 0.5) / 0.45) ** 2 < 1
    image = np.where(body, 110 + 20 * np.random.default_rng(0).standard_normal((size, size)), 0)
    for side in (0.32, 0.68):
        image[((yy - 0.45) / 0.2) ** 2 + ((xx - side) / 0.1) ** 2 < 1] = 10
    return image.clip(0, 255).astype(np.uint8)
