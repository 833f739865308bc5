"""The prediction log: one JSON line per classified (or refused) image, append-only, rotating.

Every monitor reads it; `radflow predict` fills it (and the AI node will). It lives in
`paths.private/prediction_log/` (operator-only): its entries carry pseudonymised ids only, but they
are the operator's record of what the champion saw.

Why JSON lines, not SQLite: each entry is written with one `write` on a file opened `O_APPEND` and
the batch is fsync'ed before `append` returns, so writers in several processes (predict, the node)
never interleave or need a lock, a crash loses at most the line being written (a torn tail, which
the reader skips and counts, and the next writer terminates first), and the files stay readable with
`grep`/`jq` and safe to copy or archive month by month. SQLite's WAL mode would give the same
durability at the price of a schema to migrate and a database that must not sit on a network share.

An entry's `arrived` is when it was logged (for `predict`, when it was classified), so the month of
the file an entry is in is never later than its own.

Rotation: files are named by the month of writing, `predictions-YYYY-MM.jsonl`; a file past
`max_bytes` is continued in `predictions-YYYY-MM.002.jsonl`, `.003` and so on.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FOLDER = "prediction_log"
NAME = re.compile(r"^predictions-(\d{4}-\d{2})(?:\.(\d{3}))?\.jsonl$")


@dataclass(frozen=True)
class LogContents:
    """What the reader found: the entries in write order, and how many torn lines it skipped."""

    entries: list[dict[str, Any]]
    torn_lines: int


def log_folder(private: Path) -> Path:
    """Where the prediction log lives under `paths.private`."""
    return private / FOLDER


def _parts(folder: Path) -> list[tuple[str, int, Path]]:
    """(month, part, path) of every log file, in write order."""
    found = []
    for path in folder.glob("predictions-*.jsonl") if folder.is_dir() else []:
        match = NAME.match(path.name)
        if match:
            found.append((match[1], int(match[2] or 1), path))
    return sorted(found)


def current_file(folder: Path, max_bytes: int, now: datetime) -> Path:
    """The file the next entries go to: this month's last part, or a new part once it is full."""
    month = now.strftime("%Y-%m")
    parts = [(part, path) for at, part, path in _parts(folder) if at == month]
    if not parts:
        return folder / f"predictions-{month}.jsonl"
    part, path = parts[-1]
    if path.stat().st_size < max_bytes:
        return path
    return folder / f"predictions-{month}.{part + 1:03d}.jsonl"


def append(folder: Path, entries: list[dict[str, Any]], max_bytes: int, now: datetime | None = None) -> Path:
    """Append `entries` (JSON-serialisable mappings) durably; returns the file written to."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = current_file(folder, max_bytes, now or datetime.now(UTC))
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        if not created and _ends_torn(path):  # a writer died mid-line: end that line, keep ours whole
            os.write(fd, b"\n")
        for entry in entries:
            line = (json.dumps(entry, sort_keys=True, allow_nan=False) + "\n").encode()
            if os.write(fd, line) != len(line):  # a regular file takes it whole unless the disk is full
                raise OSError(f"short write to {path}: the disk may be full")
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        directory = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(directory)  # the new file's name is durable too
        finally:
            os.close(directory)
    return path


def _ends_torn(path: Path) -> bool:
    """Whether the file's last byte is not a newline (an interrupted write)."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() == 0:
            return False
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) != b"\n"


def read(folder: Path, since_month: str = "") -> LogContents:
    """Every whole entry of the parts written in `since_month` (YYYY-MM) or later (all by default),
    oldest file first; torn or unreadable lines are counted."""
    entries: list[dict[str, Any]] = []
    torn = 0
    for month, _, path in _parts(folder):
        if month < since_month:
            continue
        for line in path.read_bytes().splitlines():
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                torn += 1
                continue
            if isinstance(entry, dict):
                entries.append(entry)
            else:
                torn += 1
    return LogContents(entries, torn)
