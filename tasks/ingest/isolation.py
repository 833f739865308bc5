"""Decoder work in worker processes that no failure of a decoder can take down with it.

Decoders are native code (Rust, C, C++): a damaged file can make one panic, abort, segfault, hang or
allocate without bound. So each item (one file) runs in a worker process that
- bounds the item's time with SIGALRM left at its default action: the OS ends the worker, even
  inside native code; and its memory with RLIMIT_AS (`Limits.memory_mb` beyond what it held at start):
  a MemoryError, which `work` lets through, makes the worker give up (a decoder that failed may leak
  what it held, and the next item would pay for it), so it counts as a death too;
- sends its fds 1 and 2 (C library chatter, Rust panic messages, faulthandler's stack of a native
  crash) to a capture file instead of the stage's output, and hands what each item printed back
  beside its result, for the operator's report;
- sends back plain data only: results are built of str/int/float/lists/dataclasses/arrays, never an
  exception object (pyo3's PanicException, for one, cannot be unpickled by the parent).
Items travel in batches (one round trip per batch). When a worker dies, the items of the batch it was
working on are suspects: they run again one at a time in a fresh worker. A suspect that kills it is
run again first in the next fresh worker (an earlier suspect may have left the worker unfit, e.g.
leaked memory), and one that kills the fresh worker it ran first in gets the result `convict` makes
of how it died. Batches sent ahead to a dead worker go back to the queue. Everything else is decoded
as usual.

Why not pebble's `ProcessPool` (per-task timeout, survives a dead worker, initializer), evaluated in
December 2026 with pebble 5.2.3: a drop-in `run_isolated` on it (batches as tasks, this module's worker
set-up as the initializer, suspects in a second pool with `max_tasks=1`) passed tests/fault
test_fault_workers, _predict, _crash, _ingest and _codecs, and kept the throughput within noise
(`python -m bench.bench_ingest --files 2000 --repeats 3` on 2 busy cores, load ~17: this pool 158-222
files/s, median 35% of the dcmread loop; pebble 146-258 files/s, median 39%). It is not used because
pebble starts every replacement worker (after a death, and after each task under `max_tasks=1`) from
its pool-manager thread while its scheduler and message threads run: a fork() in a multi-threaded
process, whose child can inherit a lock another thread held and hang (CPython 3.12 warns about it);
this pool forks only while the parent runs no other thread. Under a forkserver pebble would be safe,
but it starts the processes itself, so the main module's re-import per worker (`_main_left_behind`)
could not be avoided; and it notices deaths and overdue tasks by polling every 0.1 s.
"""

from __future__ import annotations

import contextlib
import faulthandler
import multiprocessing
import os
import resource
import signal
import sys
import tempfile
import threading
import time
import types
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Generic, TypeVar

from tasks.common.errors import RadflowError

T = TypeVar("T")  # one item of work (a file to decode)
R = TypeVar("R")  # its result: plain data
TimeBound = Callable[[], AbstractContextManager[object]]
Work = Callable[[list[T], TimeBound], list[R]]  # runs in the worker: one result per item, in order

IN_FLIGHT = 2  # batches queued per worker: keeps it busy, bounds what its death makes suspect
GRACE_S = 10.0  # parent-side slack over a batch's time bounds before it kills a worker that did not end
MAX_OUTPUT = 400  # characters kept of what an item printed
EXIT_UNFIT = 70  # a worker's exit code when it ran out of memory (its batch is then retried file by file)
_CAPTURE_READ = 65536  # bytes read back of what an item printed
_MAIN_SWAP = threading.Lock()


@dataclass(frozen=True)
class Limits:
    """What one item may cost a worker before it is stopped."""

    timeout_s: float  # seconds per item
    memory_mb: int  # MB of address space a worker may map beyond its start-up size; 0 = no limit


@dataclass(frozen=True)
class Death:
    """How a worker died while it ran one item alone: the item's reason, one line, no path."""

    reason: str
    exception_type: str


def run_isolated(
    batches: Iterable[list[T]],
    work: Work[T, R],
    convict: Callable[[T, Death], R],
    on_done: Callable[[T, R, str], None],
    workers: int,
    limits: Limits,
    start_method: str = "fork",
) -> None:
    """Run `work` over every batch in at most `workers` worker processes; `on_done(item, result,
    printed)` once per item, in completion order (`printed`: what the item wrote to fds 1/2, one line).

    `start_method`: "fork" when the caller runs no other thread (workers start in milliseconds with
    what the caller imported), "forkserver" otherwise (the decoders are imported once, into the server).
    """
    context = multiprocessing.get_context(start_method)
    if start_method == "forkserver":
        context.set_forkserver_preload(["tasks.ingest.decode"])  # effective until the server first starts
    with tempfile.TemporaryDirectory(prefix="radflow-decode-") as scratch:
        pool = _Pool(work, convict, on_done, max(workers, 1), limits, context, Path(scratch))
        try:
            pool.run(deque(batches))
        finally:
            pool.close()


@dataclass(eq=False)
class _Worker(Generic[T]):
    process: BaseProcess
    conn: Connection
    capture: Path  # where its fds 1 and 2 go
    solo: bool  # runs suspects, one per batch, then retires
    batches: deque[list[T]] = field(default_factory=deque)  # sent, not answered; the first is running
    started: float = 0.0  # when the running batch started (monotonic)
    answered: int = 0  # batches it has answered
    overdue: bool = False  # killed by the parent for outliving every time bound


class _Pool(Generic[T, R]):
    """The parent's side: hands out batches, collects results, replaces and convicts dead workers."""

    def __init__(
        self,
        work: Work[T, R],
        convict: Callable[[T, Death], R],
        on_done: Callable[[T, R, str], None],
        size: int,
        limits: Limits,
        context: Any,
        scratch: Path,
    ) -> None:
        self.work, self.convict, self.on_done = work, convict, on_done
        self.size, self.limits, self.context, self.scratch = size, limits, context, scratch
        self.workers: list[_Worker[T]] = []
        self.pending: deque[list[T]] = deque()
        self.suspects: deque[T] = deque()  # items of a batch whose worker died, to run alone
        self.spawned = 0

    def run(self, pending: deque[list[T]]) -> None:
        self.pending = pending
        while self.pending or self.suspects or any(worker.batches for worker in self.workers):
            self._staff()
            for worker in self.workers:
                if worker.solo and not worker.batches and self.suspects:
                    self._send(worker, [self.suspects.popleft()])
            for turn in range(IN_FLIGHT):  # round robin: every worker gets work before any gets more
                for worker in self.workers:
                    if not worker.solo and self.pending and len(worker.batches) <= turn:
                        self._send(worker, self.pending.popleft())
            self._collect()

    def _staff(self) -> None:
        """Fill free places: first a fresh worker for a dead worker's suspects (it runs them one at a
        time), then workers for batches (no more than there are batches for idle workers to take)."""
        idle_solos = sum(worker.solo and not worker.batches for worker in self.workers)
        while len(self.workers) < self.size and len(self.suspects) > idle_solos:
            self._spawn(solo=True)
            idle_solos += 1
        idle = sum(not worker.solo and not worker.batches for worker in self.workers)
        while len(self.workers) < self.size and len(self.pending) > idle:
            self._spawn(solo=False)
            idle += 1

    def _spawn(self, solo: bool) -> _Worker[T]:
        capture = self.scratch / f"worker-{self.spawned}.out"
        self.spawned += 1
        capture.touch()
        ours, theirs = self.context.Pipe()
        # A forked worker holds copies of every pipe end the parent has: it closes the parent's, so
        # that the parent's death reads as end-of-file to it (and it exits instead of waiting forever).
        forked = self.context.get_start_method() == "fork"
        parents = [ours.fileno(), *(worker.conn.fileno() for worker in self.workers)] if forked else []
        process = self.context.Process(
            target=_serve,
            args=(theirs, self.work, self.limits, str(capture), dict(os.environ), parents),
            daemon=True,
        )
        with contextlib.nullcontext() if forked else _main_left_behind():
            process.start()
        theirs.close()  # the worker holds the only copy: its death reads as end-of-file here
        worker: _Worker[T] = _Worker(process, ours, capture, solo)
        self.workers.append(worker)
        return worker

    def _send(self, worker: _Worker[T], batch: list[T]) -> None:
        if not worker.batches:
            worker.started = time.monotonic()
        worker.batches.append(batch)
        with contextlib.suppress(OSError):  # it died already: _collect sees that, re-queues the batch
            worker.conn.send(batch)

    def _collect(self) -> None:
        """Wait for a reply or a death (or an overdue batch), then handle every worker that has one."""
        busy = [worker for worker in self.workers if worker.batches]
        deadline = min((self._deadline(worker) for worker in busy), default=time.monotonic() + GRACE_S)
        waitables: list[Any] = [worker.conn for worker in self.workers]
        waitables += [worker.process.sentinel for worker in self.workers]
        wait(waitables, timeout=max(deadline - time.monotonic(), 0.0))
        for worker in list(self.workers):
            try:
                while worker.batches and worker.conn.poll():
                    self._reply(worker, worker.conn.recv())
            except (EOFError, OSError):
                self._died(worker)
                continue
            if worker.solo and not worker.batches and not self.suspects:  # no suspect left for it
                self._retire(worker)
            elif worker.process.exitcode is not None:
                self._died(worker)
            elif worker.batches and time.monotonic() > self._deadline(worker):
                worker.overdue = True  # a decoder that blocked or ignored its alarm
                self._died(worker)

    def _deadline(self, worker: _Worker[T]) -> float:
        return worker.started + self.limits.timeout_s * len(worker.batches[0]) + GRACE_S

    def _reply(self, worker: _Worker[T], reply: tuple[str, Any]) -> None:
        kind, payload = reply
        batch = worker.batches.popleft()
        worker.started = time.monotonic()
        worker.answered += 1
        if kind == "error":  # not an item's fault (e.g. no space left for the image store)
            raise RadflowError(f"decoding stopped: {payload}")
        for item, (result, printed) in zip(batch, payload, strict=True):
            self.on_done(item, result, printed)

    def _died(self, worker: _Worker[T]) -> None:
        """Re-queue what it had not started; its running batch becomes suspects; a suspect that killed
        the fresh worker it ran first in is convicted with how the worker died."""
        self._retire(worker)
        if not worker.batches:
            return
        running, *queued = worker.batches
        self.pending.extendleft(reversed(queued))
        if not worker.solo:
            self.suspects.extend(running)
            return
        (item,) = running
        if worker.answered:  # earlier suspects ran in it (one may have leaked): first in a fresh one
            self.suspects.appendleft(item)
            return
        death = _death(worker.process.exitcode, worker.overdue, self.limits)
        self.on_done(item, self.convict(item, death), _printed(worker.capture))

    def _retire(self, worker: _Worker[T]) -> None:
        self.workers.remove(worker)
        _stop(worker)

    def close(self) -> None:
        """End every worker (idle after a normal run; mid-item after an error or Ctrl-C)."""
        for worker in self.workers:
            _stop(worker)
        self.workers.clear()


@contextlib.contextmanager
def _main_left_behind() -> Iterator[None]:
    """Start a forkserver child without the caller's main module.

    multiprocessing runs the main script (or module) again in every forkserver child before it
    starts, as CPython 3.11's server never preloads it: the `radflow` or `dask worker` entry point, or
    pytest, imported anew per worker (several times a bare interpreter's start; BENCHMARKS.md, code
    choices). Decode workers need nothing from it, their code lives in importable modules; so an empty
    main module stands in while the child's start-up data are taken (under a lock: the swap is
    process-wide).
    """
    with _MAIN_SWAP:
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            sys.modules["__main__"] = main


def _stop(worker: _Worker[Any]) -> None:
    if worker.process.exitcode is None:
        worker.process.kill()
    worker.process.join()
    worker.conn.close()


def _death(exitcode: int | None, overdue: bool, limits: Limits) -> Death:
    """The reason for an item whose worker died running it alone, from how the worker ended."""
    if overdue or exitcode == -signal.SIGALRM:
        return Death(f"decode timed out: exceeded ingest.timeout_s={limits.timeout_s:g} s", "TimeoutError")
    if exitcode in (-signal.SIGSEGV, -signal.SIGBUS, -signal.SIGILL, -signal.SIGFPE):
        name = signal.Signals(-exitcode).name
        return Death(f"decoder crashed: the worker process died of {name} in native code", name)
    if exitcode == -signal.SIGABRT:
        return Death(
            "decoder aborted: a native library stopped the worker process (SIGABRT), "
            "e.g. on an allocation over ingest.worker_memory_mb",
            "SIGABRT",
        )
    if exitcode == -signal.SIGKILL:
        return Death(
            "decoder killed: the worker process got SIGKILL (the system out of memory, or from outside)",
            "SIGKILL",
        )
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        return Death(f"decoder crashed: the worker process died of {name}", name)
    if exitcode == EXIT_UNFIT:
        limit = f"ingest.worker_memory_mb={limits.memory_mb}" if limits.memory_mb else "the memory left"
        return Death(f"out of memory: decoding needs more than {limit}", "MemoryError")
    return Death(f"decoder crashed: the worker process exited with code {exitcode}", "WorkerExit")


# --------------------------------------------------------------------------- worker side


def _serve(
    conn: Connection,
    work: Work[Any, Any],
    limits: Limits,
    capture: str,
    environment: dict[str, str],
    parents: list[int],
) -> None:
    """A worker's life: set itself up, then run batches until the parent ends it (or dies: EOF)."""
    for fd in parents:
        os.close(fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it ends workers
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # the time bound: the OS ends this process
    os.environ.clear()  # the parent's, also under a forkserver started before it changed
    os.environ.update(environment)
    os.environ["RUST_BACKTRACE"] = "0"  # a Rust panic then prints its message, not a backtrace
    printed = os.open(capture, os.O_RDWR | os.O_APPEND)
    for fd in (1, 2):
        os.dup2(printed, fd)
    faulthandler.enable(file=printed)  # a native crash's Python stack goes to the report, nowhere else
    if limits.memory_mb > 0:
        _limit_address_space(limits.memory_mb)
    while True:
        try:
            batch = conn.recv()
        except EOFError:
            return
        outputs: list[str] = []
        try:
            results = work(batch, _time_bound(limits.timeout_s, printed, outputs))
            conn.send(("done", list(zip(results, outputs, strict=True))))
        except MemoryError as error:  # a decoder may keep what it held: unfit for the next item
            _give_up(error)
        except Exception as error:  # outside any one item's handling: the run's problem, not a file's
            conn.send(("error", f"{type(error).__name__}: {error}"))


def _give_up(error: BaseException) -> None:
    """End this worker with EXIT_UNFIT, saying why in its output: its batch is then retried file by file."""
    os.write(2, f"worker gave up: {type(error).__name__}: {error}\n".encode())
    os._exit(EXIT_UNFIT)


def _limit_address_space(extra_mb: int) -> None:
    """RLIMIT_AS at the current size plus `extra_mb`: a larger allocation fails (MemoryError, or an
    abort in native code) in this worker instead of exhausting the machine."""
    with open("/proc/self/statm") as statm:
        mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = mapped + extra_mb * 2**20
    resource.setrlimit(
        resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard)
    )


def _time_bound(timeout_s: float, printed: int, outputs: list[str]) -> TimeBound:
    """The per-item context `work` wraps each item in: arms the alarm, then collects what it printed."""

    @contextlib.contextmanager
    def bound() -> Iterator[None]:
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            outputs.append(_take_printed(printed))

    return bound


def _take_printed(fd: int) -> str:
    """What was written to the capture file since the last call (one line), and empty it."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    if os.fstat(fd).st_size == 0:
        return ""
    text = os.pread(fd, _CAPTURE_READ, 0)
    os.ftruncate(fd, 0)
    return _one_line(text)


def _printed(capture: Path) -> str:
    """What a dead worker printed (read by the parent)."""
    try:
        with open(capture, "rb") as handle:
            return _one_line(handle.read(_CAPTURE_READ))
    except OSError:
        return ""


def _one_line(text: bytes) -> str:
    return " ".join(text.decode("utf-8", "replace").split())[:MAX_OUTPUT]
