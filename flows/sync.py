"""Bring newly arrived studies from the incoming folder into the source archive, never half a file.

Each file is copied to a hidden temporary name in its destination folder, fsynced, then renamed, so
ingest (and DVC's hashing) only ever sees complete files. Files still being written into the incoming
folder (modified within `settle_s`) wait for the next run. Only counts are reported: file names in
hospital exports often carry patient names or IDs.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

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

    def describe(self) -> str:
        """One identifier-free line for the logs."""
        return (
            f"incoming sync: {self.new} new, {self.updated} updated, {self.unchanged} already archived, "
            f"{self.settling} still arriving; {self.bytes_copied / 1e6:.1f} MB copied"
        )


def sync_incoming(incoming: Path, archive: Path, settle_s: float, now: float | None = None) -> SyncReport:
    """Mirror new and changed files from `incoming` into `archive` (nothing is deleted on either side)."""
    if not incoming.is_dir():
        raise RadflowError(f"retrain.incoming: folder {incoming} not found; create it or set it to null")
    now = time.time() if now is None else now
    counts = {"new": 0, "updated": 0, "unchanged": 0, "settling": 0, "bytes_copied": 0}
    for source in sorted(path for path in incoming.rglob("*") if path.is_file()):
        relative = source.relative_to(incoming)
        if any(part.startswith(".") for part in relative.parts):
            continue  # temporary files of another copier (including ours)
        stat = source.stat()
        if now - stat.st_mtime < settle_s:
            counts["settling"] += 1
            continue
        target = archive / relative
        if target.exists() and filecmp.cmp(source, target, shallow=False):
            counts["unchanged"] += 1
            continue
        counts["updated" if target.exists() else "new"] += 1
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
            os.utime(tmp, (stat.st_atime, stat.st_mtime))
        counts["bytes_copied"] += stat.st_size
    return SyncReport(**counts)
