"""Random augmentation of whole batches: a batched affine warp, an intensity shift and noise per batch.

Per-sample MONAI pipelines cost more than the network on a small CPU; here each batch is warped in
one call (MONAI's batched AffineTransform) with a different random flip/rotation/zoom per image,
shifted by one random offset per image (one broadcast add: MONAI's channel-wise shift loops in
Python, ~5x slower than the warp) and given MONAI Gaussian noise over the whole batch at once.
"""

from __future__ import annotations

import math

import torch
from monai.networks.layers import AffineTransform
from monai.transforms import RandGaussianNoise
from monai.utils import convert_to_tensor

from tasks.train.params import TrainParams


class BatchAugment:
    """(B, 1, S, S) float32 in [0, 1] -> augmented batch, same shape; seeded per epoch by `reseed`."""

    def __init__(self, params: TrainParams) -> None:
        self.params = params
        self.generator = torch.Generator()
        self.warp = AffineTransform(
            normalized=True, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        self.noise = RandGaussianNoise(prob=1.0, std=params.noise_std)

    def reseed(self, seed: int) -> None:
        """Make the next epoch's augmentations a pure function of `seed` (so a resumed run repeats them)."""
        self.generator.manual_seed(seed)
        self.noise.set_random_state(seed)

    def affine(self, batch_size: int) -> torch.Tensor:
        """(B, 2, 3) normalised affine matrices: random flip, rotation and zoom per image."""
        p, g = self.params, self.generator
        angle = (torch.rand(batch_size, generator=g) * 2 - 1) * math.radians(p.rotate_degrees)
        scale = 1 + (torch.rand(batch_size, generator=g) * 2 - 1) * p.zoom
        flip = (
            torch.where(torch.rand(batch_size, generator=g) < 0.5, -1.0, 1.0)
            if p.flip
            else torch.ones(batch_size)
        )
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.zeros(batch_size, 2, 3)
        theta[:, 0, 0], theta[:, 0, 1] = cos * flip, -sin
        theta[:, 1, 0], theta[:, 1, 1] = sin * flip, cos
        return theta

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        size = batch.shape[0]
        warped = self.warp(batch, self.affine(size).to(batch.device))  # (B, 1, S, S)
        offsets = (torch.rand(size, 1, 1, 1, generator=self.generator) * 2 - 1) * self.params.intensity_shift
        noisy = self.noise(warped + offsets.to(batch.device))  # noise: whole batch at once
        # A plain tensor: MONAI's MetaTensor would add its bookkeeping to every layer of the network.
        return convert_to_tensor(noisy, track_meta=False).clamp_(0.0, 1.0)
