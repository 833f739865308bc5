"""One retrain at a time per project: an fcntl lock on a file inside the project's `.dvc/tmp`.

The kernel drops the lock when the holding process dies, so a crashed run never blocks the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

LOCK_FILE = Path(".dvc/tmp/radflow-retrain.lock")  # .dvc/tmp is git-ignored by DVC itself
POLL_S = 0.5


@contextlib.contextmanager
def project_lock(project: Path, wait_s: float) -> Iterator[bool]:
    """Hold the retrain lock; yields False (holding nothing) if it is still busy after `wait_s`."""
    path = project / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(POLL_S)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
