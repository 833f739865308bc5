"""Atomic file writes: write beside the target, fsync, then rename, so no reader sees half a file."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_path(target: Path, *, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; it replaces `target` only if the block succeeds.

    `durable=False` skips the fsync (the rename stays atomic): for many files whose reader checks
    them before trusting them (ingest's image store checks each image's size on every run).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    # Unique per process and thread, each of which writes one file at a time: no random name to
    # create exclusively (mkstemp opens the file a second time; ~0.3 ms, paid per image by ingest).
    # A leftover of a killed writer with a recycled pid is truncated by the next writer, never read.
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        yield tmp
        if durable:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(target: Path, mode: str = "w", *, durable: bool = True) -> Iterator[IO[Any]]:
    """Open a temporary file for writing that atomically becomes `target` on success."""
    with atomic_path(target, durable=durable) as tmp, open(tmp, mode) as handle:
        yield handle


def write_json(target: Path, data: Any) -> None:
    """Write JSON atomically, pretty-printed and key-sorted so diffs stay readable."""
    with atomic_open(target) as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")


def write_text(target: Path, text: str) -> None:
    """Write text atomically."""
    with atomic_open(target) as handle:
        handle.write(text)
