"""The training loop: epochs over the store's rows, validation AUC, early stopping, resumable checkpoints.

Under DDP every rank runs this loop on its own rows (tasks.train.distributed); rank 0 alone writes the
checkpoints, DVCLive and the progress display.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from dvclive import Live
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sklearn.metrics import roc_auc_score
from torch import nn

from tasks.common.errors import RadflowError
from tasks.train import distributed as ddp
from tasks.train.checkpoint import BEST, LAST, load_checkpoint, save_checkpoint
from tasks.train.data import Rows, class_weights

Prepare = Callable[[torch.Tensor], torch.Tensor]
console = Console(stderr=True)


@dataclass
class Job:
    """What the loop trains: `net` maps prepared `inputs` rows to logits; `model` is what gets saved."""

    net: nn.Module  # the whole model, or only its head in linear-probe mode
    model: nn.Module
    inputs: Rows  # (N, 1, S, S) float16 images, or (N, F) cached features
    labels: torch.Tensor  # (N,) int64
    train_rows: torch.Tensor
    val_rows: torch.Tensor
    prepare_train: Prepare  # raw rows -> network input, with augmentation
    prepare_eval: Prepare
    loss: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    set_train_mode: Callable[[], None]
    reseed: Callable[[int], None]  # seeds augmentation for one epoch
    autocast: torch.autocast
    train_net: nn.Module | None = None  # what a training step calls: `net`, or DDP(net) across ranks


@dataclass(frozen=True)
class LoopSettings:
    epochs: int
    batch_size: int  # images per optimiser step, over all ranks
    patience: int  # epochs without a better val AUC before stopping; 0 = never stop early
    balanced_sampling: bool
    seed: int
    checkpoints: Path
    live_dir: Path
    identity: dict[str, Any]  # what a checkpoint must match to be resumed
    restore_best: bool  # end on the best epoch's weights (by val AUC); False: keep the last epoch's
    dist: ddp.Dist = field(default=ddp.SINGLE)


def macro_auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """One-vs-rest macro ROC-AUC over the classes that have both positives and negatives here."""
    onehot = np.eye(probabilities.shape[1])[labels]  # (n, C)
    present = [c for c in range(onehot.shape[1]) if 0 < onehot[:, c].sum() < len(labels)]
    if not present:
        return float("nan")
    return float(roc_auc_score(onehot[:, present], probabilities[:, present], average="macro"))


@torch.no_grad()
def predict(job: Job, rows: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(n, C) float32 class probabilities for `rows`, network in eval mode."""
    job.net.eval()
    out = []
    for start in range(0, len(rows), batch_size):
        with job.autocast:
            logits = job.net(job.prepare_eval(job.inputs[rows[start : start + batch_size]]))
        out.append(torch.softmax(logits.float(), dim=1).cpu())
    return torch.cat(out)


def train_one_epoch(job: Job, order: torch.Tensor, batch_size: int, advance: Callable[[int], None]) -> float:
    """One pass in `order` (positions into train_rows, `batch_size` per step on this rank); returns the
    mean training loss."""
    job.set_train_mode()
    net = job.train_net or job.net
    # Summed where the loss is (float64, as Python's float would): `.item()` per step would make every
    # CUDA step wait for the GPU; the one read is at the end of the epoch.
    total: float | torch.Tensor = 0.0
    seen = 0
    for start in range(0, len(order), batch_size):
        rows = job.train_rows[order[start : start + batch_size]]
        if len(rows) < 2:  # batch norm cannot train on a single image
            continue
        labels = job.labels[rows]
        with job.autocast:
            loss = job.loss(net(job.prepare_train(job.inputs[rows])), labels)
        job.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        job.optimizer.step()
        total = total + loss.detach().double() * len(rows)
        seen += len(rows)
        advance(len(rows))
    return float(total) / max(seen, 1)


def log_epoch(live: Live, metrics: dict[str, float]) -> None:
    for name, value in metrics.items():
        live.log_metric(name, value)
    live.next_step()


def resume_state(job: Job, settings: LoopSettings) -> dict[str, Any]:
    """Restore the last checkpoint of this run identity into the job, or a fresh loop state.

    Every rank reads it (safely: tensors and plain values only), so with several nodes
    `paths.checkpoints` must be storage they share; ranks that disagree stop the run.
    """
    path = settings.checkpoints / LAST
    state = load_checkpoint(path, settings.identity)
    fresh = {"epoch": 0, "best_auc": -1.0, "best_epoch": -1, "stale": 0, "stopped": False, "history": []}
    loop: dict[str, Any] = fresh if state is None else dict(state["loop"])
    epochs = ddp.agree(settings.dist, loop["epoch"])
    if len(set(epochs)) > 1:
        raise RadflowError(
            f"the training ranks found different checkpoints at {path} (epochs {epochs}); "
            "put paths.checkpoints on storage every node shares"
        )
    if state is not None:
        job.model.load_state_dict(state["model"])
        job.optimizer.load_state_dict(state["optimizer"])
        job.scheduler.load_state_dict(state["scheduler"])
    return loop


def save_epoch(job: Job, settings: LoopSettings, loop: dict[str, Any], improved: bool) -> None:
    """best.pt when the epoch improved on the best, and last.pt: what a rerun resumes from."""
    if improved:
        save_checkpoint(settings.checkpoints / BEST, {"model": job.model.state_dict(), "loop": dict(loop)})
    save_checkpoint(
        settings.checkpoints / LAST,
        {
            "identity": settings.identity,
            "model": job.model.state_dict(),
            "optimizer": job.optimizer.state_dict(),
            "scheduler": job.scheduler.state_dict(),
            "loop": dict(loop),
        },
    )


def validate(job: Job, settings: LoopSettings, labels: np.ndarray) -> float:
    """Macro val AUC, each val image scored once: every rank scores its shard and all gather the scores."""
    dist = settings.dist
    ddp.broadcast_buffers(dist, job.model)  # all ranks validate rank 0's network
    positions = ddp.shard(torch.arange(len(job.val_rows)), dist)
    probabilities = predict(job, job.val_rows[positions], settings.batch_size * 2).numpy()
    return macro_auc(labels, ddp.gather_rows(dist, positions, probabilities, len(job.val_rows)))


def fit(job: Job, settings: LoopSettings) -> dict[str, Any]:
    """Train until `epochs` or early stop, resuming from `last.pt`; leaves the best weights in the model
    (`restore_best`), else the last epoch's."""
    dist = settings.dist
    loop = resume_state(job, settings)
    if loop["epoch"] and dist.leader:
        console.print(f"train: resuming from {settings.checkpoints / LAST} after epoch {loop['epoch']}")
    val_labels = job.labels[job.val_rows].cpu().numpy()
    train_labels = job.labels[job.train_rows].cpu()
    # Class-balanced draws: each image weighted by its class's inverse frequency.
    draw_weights = (
        class_weights(train_labels, int(train_labels.max()) + 1)[train_labels].tolist()
        if settings.balanced_sampling
        else None
    )
    columns = (
        TextColumn("epoch {task.fields[epoch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    rate = TextColumn("{task.fields[rate]:.0f} img/s  val AUC {task.fields[auc]:.3f}")
    live_context: AbstractContextManager[Live | None] = (
        Live(str(settings.live_dir), dvcyaml=None, save_dvc_exp=False) if dist.leader else nullcontext()
    )
    with live_context as live, Progress(*columns, rate, disable=not dist.leader) as progress:
        if live is not None:  # rank 0; a resumed run rewrites the curves DVC cleared before the stage
            for past in loop["history"]:
                log_epoch(live, past)
        task = progress.add_task("train", total=len(job.train_rows), epoch=0, rate=0.0, auc=float("nan"))
        for epoch in range(loop["epoch"], settings.epochs):
            if loop["stopped"]:
                break
            # Every random draw of an epoch derives from (seed, epoch, rank): a resumed run repeats it.
            epoch_seed = settings.seed * 10_007 + epoch
            torch.manual_seed(epoch_seed + ddp.RANK_STRIDE * dist.rank)
            job.reseed(epoch_seed + ddp.RANK_STRIDE * dist.rank)
            order = ddp.train_positions(
                len(job.train_rows), draw_weights, dist, settings.seed * 10_007, epoch
            )
            progress.reset(task, total=len(order), epoch=epoch + 1, rate=0.0, auc=loop["best_auc"])
            started = time.perf_counter()
            per_rank = settings.batch_size // dist.world_size
            loss = train_one_epoch(job, order, per_rank, lambda n: progress.advance(task, n))
            images_per_s = len(order) * dist.world_size / (time.perf_counter() - started)
            loss = ddp.mean(dist, loss)
            auc = validate(job, settings, val_labels)
            lr = job.optimizer.param_groups[0]["lr"]
            job.scheduler.step()
            progress.update(task, rate=images_per_s, auc=auc)
            loop["epoch"] = epoch + 1
            improved = loop["best_epoch"] < 0 or auc > loop["best_auc"]  # the first epoch is the first best
            if improved:
                loop.update(best_auc=auc, best_epoch=epoch + 1, stale=0)
            else:
                loop["stale"] += 1
                loop["stopped"] = 0 < settings.patience <= loop["stale"]
            loop["history"].append({"train_loss": loss, "val_auc": auc, "learning_rate": lr})
            if live is not None:
                log_epoch(live, loop["history"][-1])
                save_epoch(job, settings, loop, improved)
    if dist.active:
        digest = ddp.check_identical(dist, job.model)
        if dist.leader:
            console.print(
                f"train: all {dist.world_size} ranks ended with identical weights (sha256 {digest[:16]})"
            )
    if dist.leader and settings.restore_best:
        best = torch.load(settings.checkpoints / BEST, map_location="cpu", weights_only=True)
        job.model.load_state_dict(best["model"])
    return loop
