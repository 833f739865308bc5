"""What a decode worker runs for the stage: decode a batch of files, pack their images into one shard
of the image store (`tasks.common.shards`), and report each file's state without pixels.

The raw identifiers of each file travel beside its state as `SourceKeys`: the stage pseudonymises
them, so the salt never leaves the stage process (workers may run on a Dask cluster).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from tasks.common.hashing import content_hash
from tasks.common.shards import ShardWriter
from tasks.ingest.decode import decode_file, image_id, quiet_decoders
from tasks.ingest.isolation import Death, TimeBound
from tasks.ingest.records import DecodedImage, FileState, ImageRecord, SourceKeys
from tasks.ingest.settings import IngestSettings

Reported = tuple[FileState, SourceKeys]  # a worker's report on one file


@dataclass(frozen=True)
class Job:
    """One file to decode: where it is, how it was listed, and where its images go."""

    path: Path
    relative: str  # POSIX path relative to ingest.source: the file's key in the stage's tables
    source_hash: str  # "" = the worker computes it
    size: int  # as listed, before it was read: a file that changes while it decodes looks changed
    mtime_ns: int  # to the next run, which hashes it again
    images_dir: Path
    settings: IngestSettings


def process_batch(jobs: list[Job], time_bound: TimeBound) -> list[Reported]:
    """Decode `jobs` (same images folder) into one new shard; reports in job order.

    `time_bound()` wraps each file's work (the worker's alarm and output capture). The shard is
    published only when every file is done, so a report never names a shard that is not in place.
    """
    with quiet_decoders(), ShardWriter(jobs[0].images_dir) as shard:  # quiet once per batch, not per file
        reports = []
        for job in jobs:
            with time_bound():
                reports.append(_process_file(job, shard))
        name = shard.finish()
    return [
        (replace(state, images=[replace(image, shard=name) for image in state.images]), keys)
        for state, keys in reports
    ]


def crashed(job: Job, death: Death) -> Reported:
    """The report on a file whose worker died decoding it alone."""
    state = FileState(
        job.size, job.mtime_ns, job.source_hash, "quarantined", death.reason, death.exception_type
    )
    return state, SourceKeys()


def _process_file(job: Job, shard: ShardWriter) -> Reported:
    # A symlink out of the archive would let a file in it make ingest read anything the process can.
    # Only a symlinked file can lead out (the stage does not descend into symlinked folders).
    if job.path.is_symlink() and not job.path.resolve().is_relative_to(job.settings.source.resolve()):
        reason = "symlink to a file outside ingest.source: not followed"
        return FileState(job.size, job.mtime_ns, job.source_hash, "skipped", reason), SourceKeys()
    decoded = decode_file(job.path, job.settings, job.source_hash)
    state = FileState(
        job.size,
        job.mtime_ns,
        decoded.source_hash,
        decoded.disposition,
        decoded.reason,
        decoded.exception_type,
    )
    if not decoded.images:
        return state, SourceKeys()
    first = decoded.images[0]  # every image of a file shares its header's attributes and keys
    images = [_store(image, decoded.source_hash, shard) for image in decoded.images]
    return replace(state, meta=first.meta, images=images), first.keys


def _store(image: DecodedImage, source_hash: str, shard: ShardWriter) -> ImageRecord:
    """Append one image to the shard (native integers or float32) and describe it."""
    pixels = np.ascontiguousarray(image.pixels)  # (H, W) or (H, W, 3)
    if pixels.dtype.kind not in "iu":
        pixels = pixels.astype(np.float32, copy=False)
    identifier = image_id(source_hash, image.frame)
    offset, nbytes = shard.add(identifier, pixels)
    # The buffer itself is hashed: no 0.5 MB copy for a 512x512 image.
    digest = content_hash(f"{pixels.shape}{pixels.dtype.str}".encode(), pixels.data)
    height, width = pixels.shape[:2]
    return ImageRecord(identifier, image.frame, height, width, digest, "", offset, nbytes)
