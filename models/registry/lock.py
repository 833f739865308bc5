"""An exclusive lock on the registry, so two runs can never interleave their writes.

filelock takes an flock on Unix, released by the kernel when the holder dies: a killed run never leaves
a stale lock. Waiting too long is a TransientError (exit 75): the retrain flow tries again later.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from tasks.common.errors import TransientError


@contextlib.contextmanager
def registry_lock(root: Path, timeout_s: float) -> Iterator[None]:
    """Hold `root/.lock` exclusively; give up with a clear message after `timeout_s` seconds."""
    root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(root / ".lock")
    try:
        lock.acquire(timeout=timeout_s)
    except Timeout:
        raise TransientError(
            f"the registry at {root} is locked by another radflow run; waited {timeout_s:.0f} s — "
            "try again when it has finished"
        ) from None
    try:
        yield
    finally:
        lock.release()
