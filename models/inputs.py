"""Turning preprocess's (B, 1, S, S) [0, 1] tensors into what a network was trained on."""

from __future__ import annotations

from typing import Any

import torch

# ImageNet channel statistics (RGB); a grayscale network uses their mean so both paths share one scale.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def input_spec(channels: int) -> dict[str, Any]:
    """config.json's `input`: channel count and per-channel normalisation."""
    if channels == 3:
        return {"channels": 3, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    mean, std = sum(IMAGENET_MEAN) / 3, sum(IMAGENET_STD) / 3
    return {"channels": channels, "mean": [mean] * channels, "std": [std] * channels}


def to_model_input(
    batch: torch.Tensor, config: dict[str, Any], memory_format: torch.memory_format = torch.contiguous_format
) -> torch.Tensor:
    """(B, 1, S, S) in [0, 1] -> (B, C, S, S) float32: grayscale repeated to C channels, then normalised.

    Written straight into a tensor of `memory_format` (training feeds channels_last): two passes over
    the output, not four (cast, subtract, divide, re-layout); the values are the same.
    """
    spec = config["input"]
    channels = int(spec["channels"])
    mean = torch.tensor(spec["mean"], dtype=torch.float32, device=batch.device).view(1, channels, 1, 1)
    std = torch.tensor(spec["std"], dtype=torch.float32, device=batch.device).view(1, channels, 1, 1)
    size, _, height, width = batch.shape
    out = torch.empty(
        (size, channels, height, width), dtype=torch.float32, device=batch.device, memory_format=memory_format
    )
    torch.sub(batch.expand(-1, channels, -1, -1), mean, out=out)  # float16 in: computed in float32
    return out.div_(std)
