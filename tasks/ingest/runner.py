"""Where decoding runs: isolated local worker processes, or a Dask cluster whose tasks isolate their
files the same way (`tasks.ingest.isolation`), so one damaged file costs that file and nothing else.

Locally the stage forks its workers (it runs no other thread while decoding, and a fork starts in
milliseconds with the decoders already imported). A Dask worker process runs threads, so each Dask
task decodes its batch in a worker started by a forkserver instead; a crash then ends that child,
never the Dask worker and the other tasks it runs. `decode_files` is the same isolation for predict.
"""

from __future__ import annotations

import functools
import itertools
import math
import multiprocessing
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from tasks.ingest.decode import Decoded, decode_file, quiet_decoders
from tasks.ingest.isolation import Death, Limits, TimeBound, run_isolated
from tasks.ingest.settings import IngestSettings
from tasks.ingest.worker import Job, Reported, crashed, process_batch

OnDone = Callable[[Job, Reported, str], None]  # (job, its report, what its decoder printed)
BATCH_FILES = 16  # files per batch, stored in one shard: amortises the IPC round trip and the file creation
CHUNK_BATCHES = 256  # batches handed to the workers at a time: 4,096 jobs; a restart costs milliseconds


def run_jobs(jobs: Iterable[Job], settings: IngestSettings, on_done: OnDone) -> None:
    """Decode every job, calling `on_done` once per job (in completion order).

    Jobs are taken CHUNK_BATCHES batches at a time, so a run of any size holds a bounded number of
    jobs in flight (the stage reads them from its database); batches are the same as without chunks.
    """
    pending = iter(jobs)
    while chunk := list(itertools.islice(pending, BATCH_FILES * CHUNK_BATCHES)):
        batches = [chunk[start : start + BATCH_FILES] for start in range(0, len(chunk), BATCH_FILES)]
        if settings.dask_address:
            _run_dask(batches, settings, on_done)
            continue
        workers = settings.workers or os.cpu_count() or 1
        run_isolated(batches, process_batch, crashed, on_done, workers, limits(settings))


def limits(settings: IngestSettings) -> Limits:
    """What one file may cost a decode worker."""
    return Limits(settings.timeout_s, settings.worker_memory_mb)


def decode_on_cluster(batch: list[Job], bounds: Limits) -> list[tuple[Reported, str]]:
    """A Dask task: decode `batch` in a local isolated worker; (report, printed) per job, in order."""
    # A Dask worker under a nanny is a daemonic process, and multiprocessing lets those start no
    # children, so that none outlives them. A decode worker cannot: it exits at end-of-file on its pipe
    # when its parent dies, and its alarm ends it mid-decode. So the flag is lifted (private API).
    multiprocessing.current_process()._config["daemon"] = False  # type: ignore[attr-defined]
    done: dict[str, tuple[Reported, str]] = {}

    def keep(job: Job, report: Reported, printed: str) -> None:
        done[job.relative] = (report, printed)

    run_isolated([batch], process_batch, crashed, keep, 1, bounds, start_method="forkserver")
    return [done[job.relative] for job in batch]


def _run_dask(batches: list[list[Job]], settings: IngestSettings, on_done: OnDone) -> None:
    """Submit every batch to the Dask cluster at `settings.dask_address`; its workers must share the
    output filesystem (they write the shards)."""
    from distributed import Client, as_completed

    bounds = limits(settings)
    with Client(settings.dask_address) as client:  # default client while open: as_completed needs one
        futures = {client.submit(decode_on_cluster, batch, bounds, pure=False): batch for batch in batches}
        threads = max(sum(client.nthreads().values()), 1)
        # A generous bound on the whole run: each file has its own inside the task.
        deadline = settings.timeout_s * BATCH_FILES * (math.ceil(len(futures) / threads) + 1)
        try:
            for future in as_completed(list(futures), timeout=deadline):
                batch = futures.pop(future)
                if future.status == "error":  # the cluster lost the task (e.g. its Dask worker died)
                    name = type(future.exception()).__name__
                    death = Death(f"worker failed on the cluster: {name}", name)
                    for job in batch:
                        on_done(job, crashed(job, death), "")
                    continue
                for job, (report, printed) in zip(batch, future.result(), strict=True):
                    on_done(job, report, printed)
        except TimeoutError:
            death = Death(f"decode timed out on the Dask cluster after {deadline:g} s", "TimeoutError")
            for batch in futures.values():
                for job in batch:
                    on_done(job, crashed(job, death), "")


def decode_files(paths: list[Path], settings: IngestSettings) -> list[Decoded]:
    """Decode files for predict, each in an isolated worker (pixels come back); one Decoded per path,
    in order. The caller may run threads (torch), so workers come from a forkserver."""
    done: dict[int, Decoded] = {}

    def keep(index: int, decoded: Decoded, printed: str) -> None:
        done[index] = decoded

    def convicted(index: int, death: Death) -> Decoded:
        return Decoded("", [], "quarantined", death.reason, death.exception_type)

    indices = list(range(len(paths)))
    batches = [indices[start : start + BATCH_FILES] for start in range(0, len(indices), BATCH_FILES)]
    work = functools.partial(_decode_batch, paths=paths, settings=settings)
    workers = min(settings.workers or os.cpu_count() or 1, len(batches))
    run_isolated(batches, work, convicted, keep, workers, limits(settings), start_method="forkserver")
    return [done[index] for index in indices]


def _decode_batch(
    indices: list[int], time_bound: TimeBound, paths: list[Path], settings: IngestSettings
) -> list[Decoded]:
    """Worker side of `decode_files`: the files at `indices` of `paths`."""
    decoded = []
    with quiet_decoders():
        for index in indices:
            with time_bound():
                decoded.append(decode_file(paths[index], settings))
    return decoded
