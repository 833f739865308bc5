"""One retrain at a time per project: a lock file inside the project's `.dvc/tmp` (git-ignored by DVC).

filelock takes an flock on Unix, which the kernel drops when the holding process dies, so a crashed run
never blocks the next one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

LOCK_FILE = Path(".dvc/tmp/radflow-retrain.lock")


@contextlib.contextmanager
def project_lock(project: Path, wait_s: float) -> Iterator[bool]:
    """Hold the retrain lock; yields False (holding nothing) if it is still busy after `wait_s`."""
    path = project / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path)
    try:
        lock.acquire(timeout=wait_s)
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()
