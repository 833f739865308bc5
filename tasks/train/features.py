"""Linear probe: backbone features computed once per (data set, weights, architecture) and cached on disk.

With a frozen backbone every epoch would recompute the same features; caching them makes an epoch
cost only the head (a few matrix products), which is what makes linear probing cheap to iterate on.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from tasks.common.atomic import atomic_path


def backbone_digest(backbone: nn.Module, extra: dict[str, object]) -> str:
    """Hash of the backbone's initial weights and of what else shapes the features."""
    digest = hashlib.sha256(json.dumps(extra, sort_keys=True).encode())
    for name, tensor in backbone.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


@torch.no_grad()
def cached_features(
    backbone: nn.Module,
    images: torch.Tensor,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    cache_dir: Path,
    key: str,
    batch_size: int,
    keep: int,
) -> torch.Tensor:
    """(N, F) float32 features of every image (eval mode, no augmentation), from cache when present.

    The `keep` most recently used cache files stay; older ones go. Scheduled retraining on a growing
    archive makes a new data set, and so a new file, every run (10,000 images x 9,216 AlexNet features
    are 370 MB), while an experiment sweep switches between a few and should find them again.
    """
    path = cache_dir / f"features-{key}.safetensors"
    if path.is_file():
        os.utime(path)  # used now: the last to be dropped
        return load_file(str(path))["features"]
    backbone.eval()
    chunks = [backbone(prepare(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
    features = torch.cat(chunks).float().cpu().contiguous()  # (N, F)
    with atomic_path(path) as tmp:
        save_file({"features": features}, str(tmp))
    keep_recent(cache_dir, "features-*.safetensors", keep)
    return features


def keep_recent(cache_dir: Path, pattern: str, keep: int) -> None:
    """Delete all but the `keep` most recently used (modified) files matching `pattern`."""
    by_use = sorted(cache_dir.glob(pattern), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for stale in by_use[keep:]:
        stale.unlink(missing_ok=True)
