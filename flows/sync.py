"""Bring newly arrived studies from the incoming folder into the source archive, never half a file.

Each file is copied to a hidden temporary name in its destination folder, fsynced, then renamed, so
ingest (and DVC's hashing) only ever sees complete files. Files still being written into the incoming
folder (modified within `settle_s`) wait for the next run. Only counts are reported: file names in
hospital exports often carry patient names or IDs.

Only regular files are copied. A symlink (to a file or a folder) or a device, FIFO or socket is
skipped and counted: a link could point anywhere the flow's user can read (private/salt), and the
archive may be pushed to a DVC remote. Each file is opened with O_NOFOLLOW and checked again after
opening, so a file swapped for a link mid-run is skipped too.
"""

from __future__ import annotations

import errno
import filecmp
import os
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tasks.common.atomic import atomic_path
from tasks.common.errors import RadflowError


@dataclass(frozen=True)
class SyncReport:
    """How many incoming files were new, replaced a changed copy, were already there, or still arriving."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    settling: int = 0
    bytes_copied: int = 0
    skipped: int = 0  # symlinks and files that are not regular files: never copied

    def describe(self) -> str:
        """One identifier-free line for the logs."""
        return (
            f"incoming sync: {self.new} new, {self.updated} updated, {self.unchanged} already archived, "
            f"{self.settling} still arriving; {self.bytes_copied / 1e6:.1f} MB copied"
        )

    def skipped_warning(self) -> str:
        """The warning for skipped entries (counts only, like the rest)."""
        return (
            f"incoming sync: skipped {self.skipped} symlink(s) or non-regular file(s) in retrain.incoming; "
            "only regular files are archived: copy the real files there"
        )


def _entries(incoming: Path) -> Iterator[Path]:
    """Every entry below `incoming` except folders, without following folder symlinks; sorted."""
    for folder, subfolders, files in os.walk(incoming, followlinks=False):
        subfolders.sort()
        linked = [name for name in subfolders if os.path.islink(os.path.join(folder, name))]
        for name in sorted(files + linked):
            yield Path(folder) / name


def _open_regular(path: Path) -> BinaryIO | None:
    """`path` opened for reading if it is a regular file, else None (a symlink, FIFO, device, socket).

    Checked on the listing's lstat (so a device is never opened), then again on the open file: O_NOFOLLOW
    and fstat catch a file swapped for a link or a FIFO since (O_NONBLOCK: opening a FIFO never waits).
    """
    if not stat.S_ISREG(path.lstat().st_mode):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ELOOP:  # it is a symlink now
            return None
        raise
    handle = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        handle.close()
        return None
    return handle


def sync_incoming(incoming: Path, archive: Path, settle_s: float, now: float | None = None) -> SyncReport:
    """Mirror new and changed files from `incoming` into `archive` (nothing is deleted on either side)."""
    if not incoming.is_dir():
        raise RadflowError(f"retrain.incoming: folder {incoming} not found; create it or set it to null")
    now = time.time() if now is None else now
    counts = {"new": 0, "updated": 0, "unchanged": 0, "settling": 0, "bytes_copied": 0, "skipped": 0}
    for source in _entries(incoming):
        relative = source.relative_to(incoming)
        if any(part.startswith(".") for part in relative.parts):
            continue  # temporary files of another copier (including ours)
        opened = _open_regular(source)
        if opened is None:
            counts["skipped"] += 1
            continue
        with opened as handle:
            info = os.fstat(handle.fileno())
            if now - info.st_mtime < settle_s:
                counts["settling"] += 1
                continue
            target = archive / relative
            if target.exists() and filecmp.cmp(source, target, shallow=False):
                counts["unchanged"] += 1
                continue
            counts["updated" if target.exists() else "new"] += 1
            with atomic_path(target) as tmp:
                with open(tmp, "wb") as copy:
                    shutil.copyfileobj(handle, copy)
                os.utime(tmp, (info.st_atime, info.st_mtime))
        counts["bytes_copied"] += info.st_size
    return SyncReport(**counts)
