"""Content hashes of files: the identity of sources (incremental ingest), weights and registry files."""

from __future__ import annotations

import hashlib
from pathlib import Path

HASH_CHUNK = 1 << 20  # bytes read at a time: weights and volumes can be hundreds of MB


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
