"""Several training processes: `radflow stage train` launches itself through torch's elastic launcher.

With `train.processes` x `train.nodes` > 1 the stage process becomes this node's elastic agent
(`elastic_launch`, what torchrun runs, in-process): it starts `train.processes` workers, each calling
the stage's `main` on the params the stage resolved, and waits for all of them. If one fails or is
killed, the launcher stops the others and the stage fails with one line naming the rank; the next run
resumes from the last checkpoint (no restarts inside a run: a crash is rare, and a rerun by DVC or
Prefect is the one recovery path). What each node runs is what these command lines would set up:

    torchrun --standalone --nnodes 1 --nproc-per-node P --max-restarts 0 ...           # one node
    torchrun --nnodes N --nproc-per-node P --max-restarts 0 --node-rank R \
        --master-addr HOST --master-port PORT ...                # node R of N, train.rendezvous HOST:PORT
"""

from __future__ import annotations

import os
import tempfile
import traceback
import uuid
from collections.abc import Callable
from typing import Any

from rich.console import Console
from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

from tasks.common.errors import RadflowError
from tasks.train.params import TrainParams

RUN_ID = "radflow-train"  # the job's name at a static (multi-node) rendezvous: the same on every node
Stage = Callable[[dict[str, Any]], None]  # the train stage's main(params)
console = Console(stderr=True)


def world_size(params: TrainParams) -> int:
    return params.processes * params.nodes


def check_launch(params: TrainParams, gpus: int | None) -> None:
    """Reject settings no launch could run, naming the valid values (`gpus`: on this node, None on CPU)."""
    if gpus is not None and params.processes > gpus:
        raise RadflowError(
            f"train.processes={params.processes} but this node has {gpus} GPU(s): one process per GPU, "
            f"so 1..{gpus} (or train.device=cpu)"
        )


def rendezvous_address(params: TrainParams) -> tuple[str, str] | None:
    """(host, port) from `train.rendezvous`, or None when unset."""
    if params.rendezvous is None:
        return None
    host, _, port = params.rendezvous.rpartition(":")  # TrainParams checked the form
    return host, port


def launch_config(params: TrainParams, log_dir: str) -> LaunchConfig:
    """This node's share of the job, as torchrun would set it up from the command line in the docstring."""
    common: dict[str, Any] = {
        "min_nodes": params.nodes,
        "max_nodes": params.nodes,
        "nproc_per_node": params.processes,
        "max_restarts": 0,
        "logs_specs": DefaultLogsSpecs(log_dir=log_dir),
    }
    address = rendezvous_address(params)
    if address is None:  # torchrun --standalone: a free local port, so two projects can train side by side
        return LaunchConfig(
            **common, run_id=str(uuid.uuid4()), rdzv_backend="c10d", rdzv_endpoint="localhost:0"
        )
    host, port = address  # torchrun --node-rank R --master-addr HOST --master-port PORT (static rendezvous)
    return LaunchConfig(
        **common,
        run_id=RUN_ID,
        rdzv_backend="static",
        rdzv_endpoint=f"{host}:{port}",
        rdzv_configs={"rank": params.node_rank},
    )


def describe(rank: int, failure: ProcessFailure) -> str:
    """One line on a failed worker: which rank, and how it ended."""
    how = (
        f"was killed by {failure.signal_name()}"
        if failure.exitcode < 0
        else f"failed (exit code {failure.exitcode}; its error is printed above)"
    )
    return (
        f"training process rank {rank} {how}, so the launcher stopped the other ranks; "
        "rerun the stage (dvc repro) to resume from the last checkpoint"
    )


def launch(main: Stage, params: dict[str, Any], settings: TrainParams) -> None:
    """Run this node's `settings.processes` workers of `main(params)` and wait for them."""
    # The launcher gives each worker 1 thread unless told otherwise: share this node's cores out instead.
    cores = len(os.sched_getaffinity(0))
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cores // settings.processes)))
    # The launcher otherwise leaves an empty torchelastic_* folder in /tmp per run, even a successful one.
    with tempfile.TemporaryDirectory(prefix="radflow-torchrun-") as log_dir:
        config = launch_config(settings, log_dir)
        console.print(
            f"train: {world_size(settings)} processes, {settings.processes} on this node "
            f"(torch elastic launcher, {config.rdzv_backend} rendezvous)"
        )
        try:
            elastic_launch(config, worker)(main, params)
        except ChildFailedError as error:
            raise RadflowError(describe(*error.get_first_failure())) from None


def worker(main: Stage, params: dict[str, Any]) -> None:
    """One worker process: the train stage on the params its launcher resolved; one line on a user error.

    Any other error prints its traceback here, in the worker, before the launcher reports the rank.
    """
    try:
        main(params)
    except RadflowError as error:
        console.print(f"[bold red]error:[/] rank {os.environ.get('RANK', '?')}: {error}")
        raise SystemExit(1) from None
    except Exception:
        traceback.print_exc()
        raise SystemExit(1) from None
