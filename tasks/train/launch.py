"""Several training processes: `radflow stage train` launches itself through torch's elastic launcher.

With `train.processes` x `train.nodes` > 1 the stage process becomes torchrun's agent
(`torch.distributed.run`, in-process): it starts `train.processes` workers on this node, each running
this module (`python -m tasks.train.launch`) on the params it was given, and waits for all of them. If
one fails or is killed, the launcher stops the others and the stage fails with one line naming the
rank; the next run resumes from the last checkpoint (no restarts inside a run: a crash is rare, and a
rerun by DVC or Prefect is the one recovery path).
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from rich.console import Console
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure
from torch.distributed.run import parse_args, run

from tasks.common.errors import RadflowError
from tasks.train.params import TrainParams

PARAMS_ENV = "RADFLOW_TRAIN_PARAMS"  # the resolved params (params.yaml + --set), JSON, for the workers
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


def torchrun_args(params: TrainParams) -> list[str]:
    """torchrun's command line for this node (the README shows it for running by hand)."""
    args = ["--nnodes", str(params.nodes), "--nproc-per-node", str(params.processes), "--max-restarts", "0"]
    address = rendezvous_address(params)
    if address is None:
        args.append("--standalone")  # a free local port: two projects can train side by side
    else:
        host, port = address
        args += ["--node-rank", str(params.node_rank), "--master-addr", host, "--master-port", port]
    return [*args, "--module", "tasks.train.launch"]


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


def launch(params: dict[str, Any], settings: TrainParams) -> None:
    """Run `world_size` training processes (this node's share) and wait for them."""
    args = torchrun_args(settings)
    console.print(f"train: {world_size(settings)} processes: torchrun {' '.join(args)}")
    os.environ[PARAMS_ENV] = json.dumps(params)
    # torchrun gives each worker 1 thread unless told otherwise: share this node's cores out instead.
    cores = len(os.sched_getaffinity(0))
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cores // settings.processes)))
    # torchrun otherwise leaves an empty torchelastic_* folder in /tmp per run, even a successful one.
    with tempfile.TemporaryDirectory(prefix="radflow-torchrun-") as log_dir:
        try:
            run(parse_args(["--log-dir", log_dir, *args]))
        except ChildFailedError as error:
            raise RadflowError(describe(*error.get_first_failure())) from None
        finally:
            del os.environ[PARAMS_ENV]


def worker() -> None:
    """A torchrun worker: the train stage on the params its launcher resolved; one line on a user error."""
    from tasks.train.stage import main

    try:
        main(json.loads(os.environ[PARAMS_ENV]))
    except RadflowError as error:
        console.print(f"[bold red]error:[/] rank {os.environ.get('RANK', '?')}: {error}")
        raise SystemExit(1) from None


if __name__ == "__main__":
    worker()
