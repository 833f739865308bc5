"""Content hashes: SHA-256 for weights and registry files (the formats others verify), XXH3-128 for
ingest's content identities (sources, decoded pixels, shards), which every first ingest computes twice
per file, so speed counts.

XXH3-128 is not cryptographic. For identities that is enough: a collision needs a crafted file, and
whoever can put files in the archive can mislabel it outright; DVC itself addresses content by MD5.
It is an order of magnitude faster than BLAKE3 and SHA-256 on ingest's files (BENCHMARKS.md, ingest).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

import xxhash

HASH_CHUNK = 1 << 20  # bytes read at a time: weights and volumes can be hundreds of MB


class _Digest(Protocol):
    def update(self, data: bytes, /) -> object: ...
    def hexdigest(self) -> str: ...


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    return _hash_file(hashlib.sha256(), path)


def file_md5(path: Path) -> str:
    """Hex MD5 of a file's bytes, read in chunks: DVC's own digest, to match what dvc.lock records."""
    return _hash_file(hashlib.md5(usedforsecurity=False), path)


def content_hash(*parts: bytes | memoryview) -> str:
    """Hex XXH3-128 of the concatenated parts (any contiguous buffers, e.g. a uint16 array's)."""
    digest = xxhash.xxh3_128()
    for part in parts:
        digest.update(memoryview(part).cast("B"))
    return digest.hexdigest()


def file_content_hash(path: Path) -> str:
    """`content_hash` of a file's bytes, read in chunks (volumes and plain images are hashed by path)."""
    return _hash_file(xxhash.xxh3_128(), path)


def _hash_file(digest: _Digest, path: Path) -> str:
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
