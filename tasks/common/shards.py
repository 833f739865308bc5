"""The image store: decoded images packed into shard files, one per batch of decoded files.

A shard is a plain concatenation of .npy records (each a standard header + array), so one image is
read by seeking to its offset and `np.lib.format.read_array`, with no pickling. One file per batch
rather than per image because creating a file is the expensive part of storing one: on ext4, each
creation waits for the writeback a first ingest's own output has started, and costs several times
appending the image to an open file (BENCHMARKS.md, ingest).

A shard is written beside its final name and renamed when complete; its name is the hash of the image
ids it holds, so the same batch always yields the same shard. Shards whose images are no longer all
wanted (sources deleted or changed) are rewritten without them, so deleted data really goes.
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np

from tasks.common.atomic import temp_path
from tasks.common.hashing import content_hash

SHARD_SUFFIX = ".npys"


class Record(NamedTuple):
    """One stored image: which shard, where in it, how many bytes (header included).

    A plain tuple: every run that changes anything builds one per stored image.
    """

    image_id: str
    shard: str
    offset: int
    nbytes: int


class ShardWriter:
    """Appends images to one shard; `finish()` publishes it under its content-derived name.

    Not fsynced: the stage checks on every run that each shard still holds every record it refers to,
    and decodes again the sources of any that a power cut left short.
    """

    def __init__(self, images_dir: Path) -> None:
        self._dir = images_dir
        self._tmp = temp_path(images_dir / "shard")  # the final name is known only when it is complete
        self._handle: IO[bytes] | None = None
        self._ids: list[str] = []

    def add(self, image_id: str, pixels: np.ndarray) -> tuple[int, int]:
        """Append one image; returns (offset, nbytes) of its record."""
        if self._handle is None:
            self._handle = open(self._tmp, "wb")  # noqa: SIM115 (closed by finish/abort)
        offset = self._handle.tell()
        self._handle.write(_header(pixels.shape, pixels.dtype.str))
        self._handle.write(np.ascontiguousarray(pixels).data.cast("B"))
        self._ids.append(image_id)
        return offset, self._handle.tell() - offset

    def finish(self) -> str:
        """Close and rename the shard into place; returns its file name ("" when nothing was added)."""
        if self._handle is None:
            return ""
        self._handle.close()
        self._handle = None
        name = content_hash(",".join(self._ids).encode())[:16] + SHARD_SUFFIX
        os.replace(self._tmp, self._dir / name)
        return name

    def abort(self) -> None:
        """Drop a half-written shard."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, error_type: object, *rest: object) -> None:
        if error_type is not None:
            self.abort()


@functools.lru_cache(maxsize=256)
def _header(shape: tuple[int, ...], dtype: str) -> bytes:
    """The .npy header of a C-ordered array (built once per shape and dtype: building one costs far more
    than the lookup; BENCHMARKS.md, code choices)."""
    buffer = io.BytesIO()
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def read_image(images_dir: Path, shard: str, offset: int) -> np.ndarray:
    """The image whose record starts at `offset` in `shard`."""
    with open(images_dir / shard, "rb") as handle:
        handle.seek(offset)
        return _read_record(handle)


def _read_record(handle: IO[bytes]) -> Any:
    return np.lib.format.read_array(handle, allow_pickle=False)


def shard_sizes(images_dir: Path) -> dict[str, int]:
    """Every regular file in the store (shards, and leftovers to remove) -> its size in bytes."""
    with os.scandir(images_dir) as entries:
        return {entry.name: entry.stat().st_size for entry in entries if entry.is_file(follow_symlinks=False)}


def holds(sizes: dict[str, int], record: Record) -> bool:
    """Whether the store still holds all of `record` (deleted by hand, or cut short by a power loss)."""
    return sizes.get(record.shard, -1) >= record.offset + record.nbytes


def compact_each(
    images_dir: Path, live_in: Callable[[str], list[Record]]
) -> Iterator[tuple[tuple[str, int], Record]]:
    """Make the store hold exactly the live records, one shard at a time: `live_in(name)` gives a
    shard's live records in offset order (one record per offset), so the caller need not hold every
    record at once (ingest asks its state database).

    Shards with no live record are deleted, shards with some are rewritten with only those, and every
    other file is removed: leftovers of interrupted writers, and the one-file-per-image `.npy` store of
    earlier versions. Yields each record that moved, with its old (shard, offset).
    """
    for name, size in shard_sizes(images_dir).items():
        if not name.endswith(SHARD_SUFFIX):
            (images_dir / name).unlink(missing_ok=True)
            continue
        kept = live_in(name)
        if sum(record.nbytes for record in kept) != size:  # it holds records nobody wants
            yield from _rewrite(images_dir, name, kept).items()


def _rewrite(images_dir: Path, name: str, kept: list[Record]) -> dict[tuple[str, int], Record]:
    """Copy the kept records of one shard into a new shard (named by them), then delete the old one."""
    moved = {}
    new_name = ""
    if kept:
        with open(images_dir / name, "rb") as source, ShardWriter(images_dir) as writer:
            places = []
            for record in kept:
                source.seek(record.offset)
                places.append(writer.add(record.image_id, _read_record(source)))
            new_name = writer.finish()
        for record, (offset, nbytes) in zip(kept, places, strict=True):
            moved[(name, record.offset)] = Record(record.image_id, new_name, offset, nbytes)
    if new_name != name:
        (images_dir / name).unlink(missing_ok=True)
    return moved
