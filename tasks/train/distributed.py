"""Data-parallel training on torch's own engine (DDP): who this process is, which rows it reads, and the
few collectives the loop needs.

One process is a world of size 1 in which every collective returns at once, so the loop has one code
path. Which rows each rank reads:
- training: torch's `DistributedSampler` over the train split (MONAI's `DistributedWeightedRandomSampler`
  for `class_balance: sampler`), reshuffled every epoch from (seed, epoch). Every rank draws the same
  number of images (a split that does not divide repeats its first few), so all ranks take the same
  number of optimiser steps; rank r's k-th batch of B / W images is the r-th slice of global batch k.
- validation: MONAI's `DistributedSampler(even_divisible=False)`, disjoint shards that cover the rows
  exactly once, gathered back in row order (no padded duplicates counted);
- feature extraction (linear probe): equal shares (torch's sampler, unshuffled), so that every rank
  runs the same number of gathers; a repeated row is written twice with the same values.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as torch_dist
from monai.data import DistributedSampler as ExactSampler
from monai.data import DistributedWeightedRandomSampler
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from tasks.common.errors import RadflowError

RANK_STRIDE = 1_000_003  # seed offset between ranks: each rank draws its own augmentation and dropout


@dataclass(frozen=True)
class Dist:
    """This process's place in the training job (rank 0 of 1 when training alone)."""

    rank: int
    world_size: int
    local_rank: int  # index on this node: the GPU it drives
    device: torch.device  # where collectives take their tensors: the GPU under nccl, the CPU under gloo

    @property
    def leader(self) -> bool:
        """Rank 0: the only writer of checkpoints, DVCLive, the model and log lines."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


SINGLE = Dist(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def start(device_type: str) -> Dist:
    """Join the process group the elastic launcher prepared (env://): nccl on CUDA, gloo on the CPU."""
    if not torch_dist.is_torchelastic_launched():
        return SINGLE
    rank, world, local = (int(os.environ[name]) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    device = torch.device("cuda", local) if device_type == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch_dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank=rank, world_size=world, local_rank=local, device=device)


def stop() -> None:
    """Leave the process group, if this process joined one."""
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()


# Collectives move tensors only (no pickled objects: peers on a network are not trusted with pickle).


def barrier(dist: Dist) -> None:
    if dist.active:
        torch_dist.barrier()


def broadcast_tensor(dist: Dist, tensor: torch.Tensor) -> torch.Tensor:
    """Rank 0's `tensor` on every rank (all pass one of the same shape and dtype)."""
    if not dist.active:
        return tensor
    moved = tensor.to(dist.device)
    torch_dist.broadcast(moved, src=0)
    return moved.to(tensor.device)


def broadcast_flag(dist: Dist, flag: bool) -> bool:
    return bool(broadcast_tensor(dist, torch.tensor([flag])).item())


def broadcast_text(dist: Dist, text: str, length: int) -> str:
    """Rank 0's ASCII `text` of `length` characters (a hex digest) on every rank."""
    data = torch.tensor(list(text.encode().ljust(length)[:length]), dtype=torch.uint8)
    return bytes(broadcast_tensor(dist, data).tolist()).decode().strip()


def all_gather_tensor(dist: Dist, tensor: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's `tensor` (same shape on all), in rank order, on every rank (on `tensor`'s device)."""
    if not dist.active:
        return [tensor]
    moved = tensor.to(dist.device)
    parts = [torch.empty_like(moved) for _ in range(dist.world_size)]
    torch_dist.all_gather(parts, moved)
    return [part.to(tensor.device) for part in parts]


def agree(dist: Dist, value: int) -> list[int]:
    """Every rank's integer, in rank order: for checks that all ranks stand at the same place."""
    return [int(part.item()) for part in all_gather_tensor(dist, torch.tensor([value]))]


def mean(dist: Dist, value: float) -> float:
    """The mean of a number over the ranks (e.g. the training loss, each rank's over its own images)."""
    return float(torch.cat(all_gather_tensor(dist, torch.tensor([value], dtype=torch.float64))).mean())


def wrap(dist: Dist, net: nn.Module, device: torch.device) -> nn.Module:
    """`net` as the training step calls it: DDP across ranks (gradients averaged in backward)."""
    if not dist.active:
        return net
    return DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)


def broadcast_buffers(dist: Dist, module: nn.Module) -> None:
    """Rank 0's batch-norm running statistics on every rank (DDP's own rule before each forward), so all
    ranks validate, and save, the same network."""
    if dist.active:
        for buffer in module.buffers():
            torch_dist.broadcast(buffer, src=0)


def state_digest(module: nn.Module) -> str:
    """SHA-256 of a module's parameters and buffers, bit for bit."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def check_identical(dist: Dist, module: nn.Module) -> str:
    """Fail if the ranks ended with different weights (they must: same start, same averaged gradients)."""
    digest = state_digest(module)
    ours = torch.tensor(list(bytes.fromhex(digest)), dtype=torch.uint8)
    if any(not torch.equal(theirs, ours) for theirs in all_gather_tensor(dist, ours)):
        raise RadflowError("training ranks ended with different weights; the run is not usable")
    return digest


def indices(count: int) -> Any:
    """range(count) as the `dataset` of a sampler, which only takes its length."""
    return range(count)


def train_positions(
    count: int, weights: list[float] | None, dist: Dist, seed: int, epoch: int
) -> torch.Tensor:
    """Positions into the train split this rank trains on in `epoch` (all ranks: the same length).

    `weights` (one per image) switch to class-balanced draws with replacement from this rank's shard.
    """
    common: dict[str, Any] = {"num_replicas": dist.world_size, "rank": dist.rank, "seed": seed}
    sampler: DistributedSampler[int]
    if weights is None:
        sampler = DistributedSampler(indices(count), shuffle=True, drop_last=False, **common)
    else:
        generator = torch.Generator().manual_seed(seed + epoch + RANK_STRIDE * dist.rank)
        sampler = DistributedWeightedRandomSampler(indices(count), weights, generator=generator, **common)
    sampler.set_epoch(epoch)
    return torch.tensor(list(sampler), dtype=torch.long)


def shard(rows: torch.Tensor, dist: Dist) -> torch.Tensor:
    """This rank's disjoint share of `rows` (rows[rank::world_size]): together the ranks cover each once."""
    if not dist.active:
        return rows
    if len(rows) < dist.world_size:
        raise RadflowError(
            f"{len(rows)} images cannot be shared among {dist.world_size} training processes; "
            "lower train.processes or give the split more images"
        )
    positions = ExactSampler(
        indices(len(rows)), even_divisible=False, shuffle=False, num_replicas=dist.world_size, rank=dist.rank
    )
    return rows[list(positions)]


def padded_shard(count: int, dist: Dist) -> torch.Tensor:
    """This rank's share of range(count), all shares of one length (the first rows repeated to pad)."""
    sampler: DistributedSampler[int] = DistributedSampler(
        indices(count),
        num_replicas=dist.world_size,
        rank=dist.rank,
        shuffle=False,
        drop_last=False,
    )
    return torch.tensor(list(sampler), dtype=torch.long)


def gather_rows(dist: Dist, positions: torch.Tensor, values: np.ndarray, total: int) -> np.ndarray:
    """Each rank's (n, ...) `values` for its `positions` (of `total`) -> all values in position order,
    on every rank. Shards differ by at most one row: each is padded to ceil(total / W) rows to travel.

    Raises if a position is missing or counted twice: validation must see each image exactly once.
    """
    width = -(-total // dist.world_size)
    padded_positions = torch.full((width,), -1, dtype=torch.long)
    padded_positions[: len(positions)] = positions
    padded_values = torch.zeros((width, *values.shape[1:]), dtype=torch.from_numpy(values).dtype)
    padded_values[: len(values)] = torch.from_numpy(values)
    gathered_positions = torch.cat(all_gather_tensor(dist, padded_positions))
    real = gathered_positions >= 0
    gathered = torch.cat(all_gather_tensor(dist, padded_values))[real].numpy()
    order = gathered_positions[real].numpy()
    if len(order) != total or not np.array_equal(np.sort(order), np.arange(total)):
        raise RadflowError(f"sharded rows do not cover the {total} rows exactly once (got {len(order)})")
    result = np.empty_like(gathered)
    result[order] = gathered
    return result
