"""Atomic file writes: write beside the target, fsync, then rename, so no reader sees half a file."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def temp_path(target: Path) -> Path:
    """The hidden temporary name `target` is written under before it is renamed into place.

    Unique per process and thread, each of which writes one file at a time, so no random name needs
    creating exclusively (mkstemp opens each file a second time). A leftover of a killed writer with a
    recycled pid is truncated by the next writer, never read.
    """
    return target.with_name(f".{target.name}.{os.getpid()}-{threading.get_ident()}.tmp")


@contextlib.contextmanager
def atomic_path(target: Path, *, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; it replaces `target` only if the block succeeds.

    `durable=False` skips the fsync (the rename stays atomic): for many small files whose writer
    syncs once afterwards (`os.sync()`) before publishing an index that refers to them.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target)
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
