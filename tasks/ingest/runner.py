"""Run per-file decoding in isolated worker processes (or on a Dask cluster), time-bounded.

A decoder that hangs or crashes (native fault, out of memory) must not take the run down. Locally each
job arms a SIGALRM with the default action, so a hang kills only that worker; a dead worker breaks the
pool, and the jobs that were in flight are re-run one at a time in a fresh single-worker pool, which
pins the fault on the guilty file and quarantines it. Jobs travel to workers in small batches: one
round trip per batch instead of per file (each file still gets its own time bound). On Dask, the
cluster's nannies restart dead workers and a deadline bounds hangs.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from tasks.ingest.decode import Job, process_batch, quiet_decoders
from tasks.ingest.records import FileOutcome

OnDone = Callable[[Job, FileOutcome], None]
IN_FLIGHT_PER_WORKER = 2  # batches queued per worker: keeps workers busy, bounds what a crash makes suspect
BATCH_FILES = 16  # files per batch, stored in one shard: amortises the IPC round trip and the file creation


def run_jobs(
    jobs: list[Job], workers: int, timeout_s: float, dask_address: str | None, on_done: OnDone
) -> None:
    """Decode every job, calling `on_done` once per job (in completion order)."""
    if not jobs:
        return
    if dask_address:
        _run_dask(jobs, dask_address, timeout_s, on_done)
        return
    pending = deque(jobs)
    while pending:
        for job in _run_pool(pending, workers or os.cpu_count() or 1, timeout_s, on_done):
            on_done(job, _run_alone(job, timeout_s))


def _context() -> multiprocessing.context.BaseContext:
    """fork: workers start in milliseconds with the decoders the stage has imported already.

    A forkserver would import them afresh, ~0.4 s of every run (a fifth of a 2,000-file first ingest on
    2 cores). Forking is safe because the stage runs no other thread while decoding: its progress bar
    redraws from the main thread, and the hashing threads of planning have ended.
    """
    return multiprocessing.get_context("fork")


def _guarded(jobs: list[Job], timeout_s: float) -> list[FileOutcome]:
    """Worker side: the OS kills this process if one decode outlives `timeout_s` (even inside C code)."""
    signal.signal(signal.SIGALRM, signal.SIG_DFL)

    @contextlib.contextmanager
    def alarm() -> Iterator[None]:
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    with quiet_decoders():  # once per batch rather than once per file
        return process_batch(jobs, alarm)


def _run_pool(pending: deque[Job], workers: int, timeout_s: float, on_done: OnDone) -> list[Job]:
    """Drain `pending` through a pool in batches; if the pool breaks, return the jobs that were in flight."""
    with ProcessPoolExecutor(max_workers=workers, mp_context=_context()) as pool:
        in_flight: dict[Future[list[FileOutcome]], list[Job]] = {}
        while pending or in_flight:
            while pending and len(in_flight) < workers * IN_FLIGHT_PER_WORKER:
                batch = [pending.popleft() for _ in range(min(BATCH_FILES, len(pending)))]
                in_flight[pool.submit(_guarded, batch, timeout_s)] = batch
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                try:
                    outcomes = future.result()
                except BrokenProcessPool:
                    return [job for batch in in_flight.values() for job in batch]
                for job, outcome in zip(in_flight.pop(future), outcomes, strict=True):
                    on_done(job, outcome)
    return []


def _run_alone(job: Job, timeout_s: float) -> FileOutcome:
    """Re-run one suspect job in its own worker; a second death convicts it."""
    started = time.monotonic()
    with ProcessPoolExecutor(max_workers=1, mp_context=_context()) as pool:
        try:
            (outcome,) = pool.submit(_guarded, [job], timeout_s).result()
            return outcome
        except BrokenProcessPool:
            if time.monotonic() - started >= timeout_s:
                return FileOutcome(
                    "quarantined",
                    f"decode timed out: exceeded ingest.timeout_s={timeout_s:g} s",
                    "TimeoutError",
                )
            return FileOutcome(
                "quarantined",
                "decoder crashed: the worker process died (native fault or out of memory)",
                "BrokenProcessPool",
            )


def _run_dask(jobs: Iterable[Job], address: str, timeout_s: float, on_done: OnDone) -> None:
    """Submit every job to the Dask cluster at `address`; workers must share the output filesystem."""
    from distributed import Client, as_completed

    with Client(address) as client:  # default client while open: as_completed needs one
        futures = {client.submit(process_batch, [job], pure=False): job for job in jobs}
        threads = max(sum(client.nthreads().values()), 1)
        deadline = timeout_s * (math.ceil(len(futures) / threads) + 1)  # generous bound on the whole batch
        try:
            for future in as_completed(list(futures), timeout=deadline):
                job = futures.pop(future)
                if future.status == "error":
                    error = future.exception()
                    on_done(
                        job,
                        FileOutcome(
                            "quarantined",
                            f"worker failed on the cluster: {type(error).__name__}",
                            type(error).__name__,
                        ),
                    )
                else:
                    (outcome,) = future.result()
                    on_done(job, outcome)
        except TimeoutError:
            for future, job in futures.items():
                future.cancel()
                on_done(
                    job,
                    FileOutcome(
                        "quarantined",
                        f"decode timed out on the Dask cluster after {deadline:g} s",
                        "TimeoutError",
                    ),
                )
