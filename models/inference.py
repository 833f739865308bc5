"""Run a trained network over preprocess's (N, 1, S, S) images: shared by evaluate, promote and predict."""

from __future__ import annotations

import numpy as np
import torch

from models.inputs import to_model_input


def fit_size(batch: torch.Tensor, size: int) -> torch.Tensor:
    """Resize (B, 1, S, S) to the model's input side when the store was built at another size."""
    if batch.shape[-1] == size:
        return batch
    return torch.nn.functional.interpolate(batch, size=(size, size), mode="bilinear", antialias=True)


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module, config: dict, images: np.ndarray, rows: np.ndarray, batch_size: int
) -> np.ndarray:
    """Logits (len(rows), K) float64 for images[rows]; images is (N, 1, S, S) in [0, 1].

    Logits, not probabilities, leave the network: every score downstream (tasks.common.operating) is
    computed from them at full precision.
    """
    model.eval()
    outputs = []
    for start in range(0, len(rows), batch_size):
        chunk = np.asarray(images[rows[start : start + batch_size]], dtype=np.float32)  # (B, 1, S, S)
        batch = fit_size(torch.from_numpy(chunk), int(config["image_size"]))
        logits = model(to_model_input(batch, config))  # (B, K)
        outputs.append(logits.double().numpy())
    if not outputs:
        return np.zeros((0, len(config["classes"])))
    return np.concatenate(outputs)
