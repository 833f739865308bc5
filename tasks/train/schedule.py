"""Learning-rate schedules: one warm-up + cosine, per epoch in training and per step in pretraining."""

from __future__ import annotations

import math

import torch

from tasks.train.params import TrainParams


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """Multiplier of the peak learning rate at `step` (0-based) of `total`: linear warm-up, then cosine to 0.

    Warm-up: steps 0..W-1 run at 1/(W+1)..W/(W+1) of the peak (never 0: no step is wasted), so Adam's
    moment estimates settle before full-size steps reach the wide fully connected layers (see README,
    small data sets); then half a cosine from the peak down to zero at `total`.
    """
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))


def lr_factor(epoch: int, params: TrainParams) -> float:
    """Multiplier of the peak learning rate in training `epoch` (0-based): warm-up, then cosine or step."""
    warmup = params.warmup_epochs
    if params.schedule == "step" and epoch >= warmup:
        return float(params.step_gamma ** ((epoch - warmup) // params.step_epochs))
    return warmup_cosine(epoch, warmup, params.epochs)


def make_scheduler(
    optimizer: torch.optim.Optimizer, params: TrainParams
) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch schedule: `warmup_epochs` of linear warm-up, then cosine to zero or step decay."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: lr_factor(epoch, params))
