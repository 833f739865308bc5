"""Self-supervised pretraining of the backbone (`train.weights: self_supervised`), cached per data set.

Offline there are no ImageNet weights, and a few hundred labelled studies are little to learn features
from. Every image of the store (the label is not used) can still teach the backbone what varies in this
archive: SimCLR (Chen et al. 2020) trains it to map two random views of one image close together and
views of different images apart (NT-Xent loss through a small projection head, dropped afterwards).
AlexNet's conv layers are pretrained (its dropout-laden fully connected layers start fresh).
The views come from the train stage's batched MONAI augmentation (affine warp, intensity shift,
Gaussian noise), widened to at least `VIEW_*` (contrastive learning needs views that differ more than
training augmentation does) and given a random contrast.

The result is cached in `paths.checkpoints/pretrain/` under a key of the images' content, the
architecture, the pretraining settings and the seed, so a retrain on the same images (other labels,
other fine-tuning settings) reuses it instead of pretraining again.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import torch
import xxhash
from rich.console import Console
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional

from models import build_model, input_spec, to_model_input
from models.zoo import pretrain_encoder
from tasks.common.atomic import atomic_path
from tasks.train.augment import BatchAugment
from tasks.train.data import Rows
from tasks.train.features import keep_recent
from tasks.train.params import TrainParams
from tasks.train.schedule import warmup_cosine

VIEW_ROTATE_DEGREES, VIEW_ZOOM, VIEW_SHIFT, VIEW_NOISE = 15.0, 0.25, 0.1, 0.03
VIEW_CONTRAST = 0.3  # each view's contrast scaled by 1 +- this around its mean
PROJECTION = 128  # projection head output width (SimCLR: 128)
console = Console(stderr=True)


def pretrain_key(pixels: str, params: TrainParams, seed: int) -> str:
    """Content key: the store's pixels (`TrainData.pixels`), the architecture and the pretraining settings."""
    digest = xxhash.xxh3_128(pixels.encode())
    settings = {
        "architecture": params.model_config(num_classes=2).to_dict(),
        "pretrain": {k: v for k, v in params.to_dict().items() if k.startswith("pretrain_")},
        "seed": seed,
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()[:24]


def nt_xent(first: torch.Tensor, second: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss for (B, D) projections of two views: each view must pick its partner among 2B - 1."""
    z = functional.normalize(torch.cat([first, second]), dim=1)  # (2B, D) on the unit sphere
    similarity = z @ z.T / temperature  # (2B, 2B)
    similarity.fill_diagonal_(float("-inf"))  # an image is not its own partner
    n = len(first)
    partners = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return functional.cross_entropy(similarity, partners)


class Views:
    """(B, 1, S, S) >= 0 -> a random view of each image, same shape (no top clamp: see BatchAugment)."""

    def __init__(self, params: TrainParams, device: torch.device) -> None:
        widened = replace(
            params,
            flip=True,
            rotate_degrees=max(params.rotate_degrees, VIEW_ROTATE_DEGREES),
            zoom=max(params.zoom, VIEW_ZOOM),
            intensity_shift=max(params.intensity_shift, VIEW_SHIFT),
            noise_std=max(params.noise_std, VIEW_NOISE),
        )
        self.augment = BatchAugment(widened, device)
        self.generator = torch.Generator()

    def reseed(self, seed: int) -> None:
        self.augment.reseed(seed)
        self.generator.manual_seed(seed)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        contrast = 1 + (torch.rand(len(batch), 1, 1, 1, generator=self.generator) * 2 - 1) * VIEW_CONTRAST
        mean = batch.mean(dim=(1, 2, 3), keepdim=True)
        return self.augment(((batch - mean) * contrast.to(batch.device) + mean).clamp(min=0))


def pretrain_backbone(
    images: Rows, pixels: str, params: TrainParams, seed: int, cache_dir: Path, device: torch.device
) -> Path:
    """The cached self-supervised weights for `images` (N, 1, S, S), whose content hash is `pixels`;
    pretrains them first if absent.

    Returns a safetensors file of the encoder's part of the state dict (AlexNet: the conv layers);
    `models.weights.load_matching` leaves the rest freshly initialised.
    """
    path = cache_dir / f"pretrain-{pretrain_key(pixels, params, seed)}.safetensors"
    if path.is_file():
        console.print(f"self-supervised backbone: reusing {path.name} (same images and settings)")
        path.touch()  # used now: the last to be dropped
        return path
    with torch.random.fork_rng():  # the caller's random stream (its network init) stays as it was
        torch.manual_seed(seed)
        model = build_model(params.model_config(num_classes=2)).to(device)
        backbone, keep = pretrain_encoder(model)
        width = backbone(torch.zeros(2, params.in_channels, *images.shape[-2:], device=device)).shape[1]
        projector = nn.Sequential(
            nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, PROJECTION)
        ).to(device)
        _train(images, params, seed, backbone, projector, device)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if keep(k)}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))
    keep_recent(cache_dir, "pretrain-*.safetensors", max(params.feature_cache_keep, 1))
    return path


def _train(
    images: Rows,
    params: TrainParams,
    seed: int,
    backbone: nn.Module,
    projector: nn.Module,
    device: torch.device,
) -> None:
    """`pretrain_epochs` of SimCLR over every image; one warm-up epoch, then cosine decay per step."""
    spec = {"input": input_spec(params.in_channels)}
    views = Views(params, device)
    parameters = [*backbone.parameters(), *projector.parameters()]
    optimizer = torch.optim.AdamW(
        parameters, lr=params.pretrain_learning_rate, weight_decay=params.weight_decay
    )
    batch_size = min(params.pretrain_batch_size, len(images))
    steps_per_epoch = len(images) // batch_size  # whole batches only: NT-Xent needs negatives
    total = max(params.pretrain_epochs * steps_per_epoch, 1)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, steps_per_epoch, total)
    )
    backbone.train()
    projector.train()
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(params.pretrain_epochs):
        views.reseed(seed * 10_007 + epoch)
        order = torch.randperm(len(images), generator=generator)
        losses = []
        for step in range(steps_per_epoch):
            batch = images[order[step * batch_size : (step + 1) * batch_size]].to(device).float()

            def embed(view: torch.Tensor) -> torch.Tensor:
                return projector(backbone(to_model_input(view, spec)))  # (B, PROJECTION)

            loss = nt_xent(embed(views(batch)), embed(views(batch)), params.pretrain_temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        console.print(
            f"self-supervised pretraining: epoch {epoch + 1}/{params.pretrain_epochs}, "
            f"NT-Xent {sum(losses) / max(len(losses), 1):.3f} (chance {math.log(2 * batch_size - 1):.3f})"
        )
