"""An exclusive lock on the registry (fcntl.flock), so two runs can never interleave their writes."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from tasks.common.errors import TransientError

POLL_SECONDS = 0.2


@contextlib.contextmanager
def registry_lock(root: Path, timeout_s: float) -> Iterator[None]:
    """Hold `root/.lock` exclusively; give up with a clear message after `timeout_s` seconds.

    flock is released by the kernel when the holder dies, so a killed run never leaves a stale lock.
    """
    root.mkdir(parents=True, exist_ok=True)
    path = root / ".lock"
    with open(path, "a+") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown"
                    raise TransientError(
                        f"the registry at {root} is locked by another radflow run (pid {holder}); "
                        f"waited {timeout_s:.0f} s — try again when it has finished"
                    ) from None
                time.sleep(POLL_SECONDS)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
