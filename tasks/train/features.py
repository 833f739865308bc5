"""Linear probe: backbone features computed once per (data set, weights, architecture) and cached on disk.

With a frozen backbone every epoch would recompute the same features; caching them makes an epoch
cost only the head (a few matrix products), which is what makes linear probing cheap to iterate on.
The cache is a memory-mappable (N, F) float32 .npy, so training can stream it like the image store.
Across ranks each computes its share of the rows and rank 0 alone writes the file; the ranks then read
it, so with several nodes the cache folder (`paths.checkpoints`) must be on storage they share.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tasks.common.atomic import atomic_path
from tasks.train import distributed as ddp
from tasks.train.data import Rows


def backbone_digest(backbone: nn.Module, extra: dict[str, object]) -> str:
    """Hash of the backbone's initial weights and of what else shapes the features."""
    digest = hashlib.sha256(json.dumps(extra, sort_keys=True).encode())
    for name, tensor in backbone.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


@torch.no_grad()
def compute_features(
    backbone: nn.Module,
    images: Rows,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    target: np.ndarray | None,
    batch_size: int,
    dist: ddp.Dist,
) -> None:
    """Each rank computes its share of the rows; rank 0 writes all of them into `target` (N, F).

    Equal shares (the last few rows repeated, written twice with the same values) give every rank the
    same number of batches, so each batch is one gather: no two processes write one file.
    """
    rows = ddp.padded_shard(len(images), dist)
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        features = backbone(prepare(images[batch])).float()  # (b, F)
        positions = ddp.all_gather_tensor(dist, batch)
        values = ddp.all_gather_tensor(dist, features)
        if target is not None:
            for where, what in zip(positions, values, strict=True):
                target[where.numpy()] = what.cpu().numpy()


@torch.no_grad()
def cached_features(
    backbone: nn.Module,
    images: Rows,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    cache_dir: Path,
    key: str,
    batch_size: int,
    keep: int,
    dist: ddp.Dist = ddp.SINGLE,
) -> np.ndarray:
    """(N, F) float32 features of every image (eval mode, no augmentation), memory-mapped from the cache.

    The `keep` most recently used cache files stay; older ones go. Scheduled retraining on a growing
    archive makes a new data set, and so a new file, every run (10,000 images x 9,216 AlexNet features
    are 370 MB), while an experiment sweep switches between a few and should find them again.
    """
    path = cache_dir / f"features-{key}.npy"
    backbone.eval()
    if not ddp.broadcast_flag(dist, path.is_file()):
        if dist.leader:
            width = backbone(prepare(images[torch.arange(1)])).shape[1]  # F
            with atomic_path(path) as tmp:
                target = np.lib.format.open_memmap(
                    tmp, mode="w+", dtype=np.float32, shape=(len(images), width)
                )
                compute_features(backbone, images, prepare, target, batch_size, dist)
                target.flush()
                del target
        else:
            compute_features(backbone, images, prepare, None, batch_size, dist)
    ddp.barrier(dist)  # the file is in place
    features = np.load(path, mmap_mode="r")  # the mapping outlives an unlink below
    ddp.barrier(dist)
    if dist.leader:
        os.utime(path)  # used now: the last to be dropped
        keep_recent(cache_dir, "features-*.npy", keep)
    return features


def keep_recent(cache_dir: Path, pattern: str, keep: int) -> None:
    """Delete all but the `keep` most recently used (modified) files matching `pattern`."""
    by_use = sorted(cache_dir.glob(pattern), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for stale in by_use[keep:]:
        stale.unlink(missing_ok=True)
