"""What a training run cost, recorded in config.json (`cost`) so that runs of different recipes (a
study's variants) can be compared on price as well as on accuracy."""

from __future__ import annotations

import resource
import sys
from typing import Any

import torch
from torch import nn


def peak_memory_mb(device: torch.device) -> float:
    """Peak resident memory of this process so far in MB (the GPU's peak allocation added on CUDA)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux, bytes on macOS
    host = peak / (1024 * 1024 if sys.platform == "darwin" else 1024)
    gpu = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0
    return host + gpu


def training_cost(model: nn.Module, seconds: float, images_seen: int, device: torch.device) -> dict[str, Any]:
    """config.json `cost`: parameters (all / trained), wall seconds of training (building the network,
    feature caching and every epoch; a resumed run counts only its own part, so its per-image figure is
    low) and per training image seen, and the peak memory of this process (rank 0 under DDP)."""
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "train_seconds": seconds,
        "train_seconds_per_image": seconds / max(images_seen, 1),
        "peak_memory_mb": peak_memory_mb(device),
    }
