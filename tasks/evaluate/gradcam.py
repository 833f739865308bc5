"""Grad-CAM overlays (MONAI's GradCAM) for evaluation samples and prediction outputs."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from monai.visualize import GradCAM

import models
from models.inference import fit_size
from tasks.common.atomic import atomic_path


def gradcam_map(model: torch.nn.Module, config: dict, image: np.ndarray, class_index: int) -> np.ndarray:
    """Heat map (S, S) in [0, 1] of where `image` (1, S, S) in [0, 1] drives the score of `class_index`."""
    cam = GradCAM(nn_module=model, target_layers=models.gradcam_layer(config))
    batch = fit_size(torch.from_numpy(np.asarray(image, dtype=np.float32))[None], int(config["image_size"]))
    inputs = models.to_model_input(batch, config).requires_grad_(True)  # (1, C, S, S); frozen nets too
    heat = cam(x=inputs, class_idx=class_index)  # (1, 1, S, S), normalised to [0, 1]
    return heat[0, 0].detach().cpu().numpy()


def save_overlay(target: Path, image: np.ndarray, heat: np.ndarray, title: str) -> None:
    """Grey image with the heat map blended on top, as a PNG."""
    figure, axes = plt.subplots(figsize=(3.2, 3.4))
    grey = np.asarray(image, dtype=np.float32)[0]  # (1, S, S) -> (S, S)
    if heat.shape != grey.shape:
        resized = fit_size(torch.from_numpy(heat)[None, None], int(grey.shape[1]))
        heat = resized[0, 0].numpy()
    axes.imshow(grey, cmap="gray", vmin=0, vmax=1)
    axes.imshow(heat, cmap="jet", alpha=0.35, vmin=0, vmax=1)
    axes.set_title(title, fontsize=8)
    axes.axis("off")
    with atomic_path(target) as tmp:
        figure.savefig(tmp, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)


def pick_cases(labels: np.ndarray, predicted: np.ndarray, n_classes: int, per_kind: int, seed: int) -> list:
    """Up to `per_kind` correct and `per_kind` wrong test positions per true class, drawn reproducibly."""
    rng = np.random.default_rng(seed)
    picked: list[tuple[int, str]] = []
    for k in range(n_classes):
        for kind, members in (("correct", predicted == k), ("wrong", predicted != k)):
            candidates = np.flatnonzero((labels == k) & members)
            chosen = rng.choice(candidates, size=min(per_kind, len(candidates)), replace=False)
            picked.extend((int(i), kind) for i in sorted(chosen))
    return picked
