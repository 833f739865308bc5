"""Incremental ingest: what each source file was (size, mtime, content hash) and what it decoded to.

Kept in `paths.private/ingest_state.json` (operator-only: it is keyed by source path); identifiers in
it are already pseudonymised. Two JSON lines: a header, then the files. The header holds the
fingerprint of the settings and salt the files were decoded under (another fingerprint discards them),
and the signature of everything the run read and wrote, with its counts: a run that finds the same
signature has nothing to do and reads only that first line (parsing the files costs more than a
whole unchanged run may).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tasks.common.atomic import write_text
from tasks.common.hashing import content_hash
from tasks.common.shards import shard_sizes
from tasks.ingest.records import FileState, ImageMeta, ImageRecord

STATE_FILE = "ingest_state.json"


def run_signature(
    settings_key: str, sources: dict[str, os.stat_result], images_dir: Path, watched: list[Path]
) -> str:
    """Hash of: the settings (and salt check), every source's name, size and mtime, every stored
    shard's size, and the size and mtime of each watched file (labels CSV, tables)."""
    listing = "\n".join(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}" for name, stat in sources.items())
    parts = [settings_key, listing, json.dumps(sorted(shard_sizes(images_dir).items()))]
    for path in watched:
        try:
            stat = path.stat()
            parts.append(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}")
        except OSError:
            parts.append(f"{path}\0absent")
    return content_hash("\n".join(parts).encode())


def last_counts(private_dir: Path, signature: str) -> dict[str, Any] | None:
    """The counts the last run saved, when it left everything with this signature; else None."""
    try:
        with open(private_dir / STATE_FILE) as handle:
            header = json.loads(handle.readline())
        return header["counts"] if header["signature"] == signature else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_state(private_dir: Path, fingerprint: str) -> dict[str, FileState]:
    """The previous run's files, or {} when absent, unreadable or made under other settings/salt."""
    try:
        with open(private_dir / STATE_FILE) as handle:
            if json.loads(handle.readline()).get("fingerprint") != fingerprint:
                return {}
            files = json.loads(handle.readline())
        return {relative: _file_state(entry) for relative, entry in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def save_state(
    private_dir: Path, fingerprint: str, files: dict[str, FileState], signature: str, counts: dict[str, Any]
) -> None:
    """Write the state atomically, as compact JSON: it is machine-read only, and the indenting encoder
    is pure Python, several times slower than the C one (BENCHMARKS.md, code choices)."""
    header = {"fingerprint": fingerprint, "signature": signature, "counts": counts}
    # Same state, same bytes: files in path order, each entry's keys in field order (no sort_keys pass).
    entries = {relative: _entry(files[relative]) for relative in sorted(files)}
    compact = (",", ":")
    write_text(
        private_dir / STATE_FILE,
        f"{json.dumps(header, separators=compact)}\n{json.dumps(entries, separators=compact)}\n",
    )


def _entry(state: FileState) -> dict[str, Any]:
    """A FileState as plain JSON-able dicts: a shallow copy per level (`asdict` deep-copies every value)."""
    return {**vars(state), "meta": vars(state.meta), "images": [vars(image) for image in state.images]}


def _file_state(entry: dict[str, Any]) -> FileState:
    images = [ImageRecord(**image) for image in entry.pop("images")]
    meta = ImageMeta(**entry.pop("meta"))
    return FileState(**entry, meta=meta, images=images)
