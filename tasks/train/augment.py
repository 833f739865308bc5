"""Random augmentation of whole batches: a batched affine warp, an intensity shift and noise per image.

Per-sample MONAI pipelines cost more than the network on a small CPU; here each batch is warped in
one call (MONAI's batched AffineTransform) with a different random flip/rotation/zoom per image, then
each image gets its own intensity offset and Gaussian noise level in one fused pass. (MONAI's
channel-wise shift loops in Python, ~5x slower than the warp; its RandGaussianNoise draws one noise
level per call with numpy on the CPU, 2x slower here, and would copy the noise to a GPU every step.)
"""

from __future__ import annotations

import math

import torch
from monai.networks.layers import AffineTransform
from monai.utils import convert_to_tensor

from tasks.train.params import TrainParams


class BatchAugment:
    """(B, 1, S, S) float32 >= 0 on `device` -> augmented batch, same shape; seeded per epoch by
    `reseed`."""

    def __init__(self, params: TrainParams, device: torch.device) -> None:
        self.params = params
        self.generator = torch.Generator()  # per-image parameters: a few numbers each, drawn on the CPU
        self.pixel_generator = torch.Generator(device)  # per-pixel noise: drawn where the batch is
        self.warp = AffineTransform(
            normalized=True, mode="bilinear", padding_mode="zeros", align_corners=False
        )

    def reseed(self, seed: int) -> None:
        """Make the next epoch's augmentations a pure function of `seed` (so a resumed run repeats them)."""
        self.generator.manual_seed(seed)
        self.pixel_generator.manual_seed(seed)

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
        size, device = batch.shape[0], batch.device
        # A plain tensor: MONAI's MetaTensor would add its bookkeeping to every layer of the network.
        warped = convert_to_tensor(self.warp(batch, self.affine(size).to(device)), track_meta=False)
        # Per image: an offset in U(-shift, shift) and a noise std in U(0, noise_std), as (B, 1, 1, 1).
        offsets = (torch.rand(size, 1, 1, 1, generator=self.generator) * 2 - 1) * self.params.intensity_shift
        stds = torch.rand(size, 1, 1, 1, generator=self.generator) * self.params.noise_std
        noise = torch.randn(warped.shape, generator=self.pixel_generator, device=device)  # (B, 1, S, S)
        # Only the floor is clamped (the store's black): a top clamp at 1 would flatten again what
        # preprocess's soft top clip kept of a finding brighter than normal tissue.
        return torch.addcmul(offsets.to(device), noise, stds.to(device)).add_(warped).clamp_(min=0.0)
