"""One file in, 2D images out: type dispatch, bounds, and the worker entry point that stores pixels.

`decode_path` is the reusable entry point (predict uses it); `process_batch` is what worker processes
run for the stage: decode a few files, pack their images into one shard of the image store
(`tasks.common.shards`), and report back without pixels.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from pydicom import config as pydicom_config

from tasks.common.hashing import content_hash, file_content_hash
from tasks.common.shards import ShardWriter
from tasks.ingest.dicom import decode_dicom
from tasks.ingest.nifti import decode_nifti
from tasks.ingest.plain import decode_plain
from tasks.ingest.records import DecodedImage, FileOutcome, StoredImage, UnusableFile
from tasks.ingest.settings import IngestSettings

PLAIN_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
# Files that hold no image: reported as skipped rather than fed to the DICOM reader.
NON_IMAGE_SUFFIXES = (
    ".csv",
    ".txt",
    ".json",
    ".md",
    ".xml",
    ".html",
    ".pdf",
    ".yaml",
    ".yml",
    ".log",
    ".dump",
    ".py",
    ".icc",
)
ARCHIVE_SUFFIXES = (".gz", ".zip", ".bz2", ".xz", ".7z", ".tar")
MAX_REASON = 300  # characters of an exception message kept in the (operator-only) quarantine report


@dataclass(frozen=True)
class Job:
    """One file to decode: absolute path, its content hash ("" = the worker computes it), output folder."""

    path: Path
    relative: str  # POSIX path relative to ingest.source: the file's key in the stage's tables
    source_hash: str
    images_dir: Path
    settings: IngestSettings


@contextlib.contextmanager
def quiet_decoders() -> Iterator[None]:
    """Silence decoder warnings and log lines: they quote header values (e.g. an invalid birth date).

    pydicom's check of every value read is switched off too: its only output is such warnings, and
    it costs a few microseconds per element. Loggers already silenced (an enclosing block, e.g. a
    worker's whole batch) are left alone: each setLevel clears every logger's cache, a measurable cost
    per file.
    """
    loggers = [
        logger
        for logger in map(logging.getLogger, ("pydicom", "nibabel", "PIL", "tifffile"))
        if logger.level != logging.CRITICAL
    ]
    levels = [logger.level for logger in loggers]
    validation = pydicom_config.settings.reading_validation_mode
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
        for logger in loggers:
            logger.setLevel(logging.CRITICAL)
        try:
            yield
        finally:
            pydicom_config.settings.reading_validation_mode = validation
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def decode_path(path: Path, settings: IngestSettings, data: bytes | None = None) -> list[DecodedImage]:
    """Decode any supported file into 2D images; raise UnusableFile (a RadflowError) otherwise.

    `data`: the file's bytes when the caller already read them (DICOM is then parsed from memory).
    """
    with quiet_decoders():
        return _dispatch(path, settings, data)


def _dispatch(path: Path, settings: IngestSettings, data: bytes | None) -> list[DecodedImage]:
    """Pick the decoder by file name; unknown names are tried as DICOM (archives often omit .dcm)."""
    name = path.name.lower()
    size_mb = (path.stat().st_size if data is None else len(data)) / 2**20
    if size_mb > settings.max_file_mb:
        raise UnusableFile(
            "quarantined", f"too large: {size_mb:.0f} MB exceeds ingest.max_file_mb={settings.max_file_mb}"
        )
    if name.endswith(NIFTI_SUFFIXES):
        return decode_nifti(path, settings)
    if name.endswith(PLAIN_SUFFIXES):
        return decode_plain(path, settings)
    if name.endswith(NON_IMAGE_SUFFIXES):
        raise UnusableFile("skipped", f"not an image file: {path.suffix.lower()} files are not read")
    if name.endswith(ARCHIVE_SUFFIXES):
        raise UnusableFile("skipped", f"compressed archive: unpack {path.suffix.lower()} files before ingest")
    return decode_dicom(path if data is None else data, settings)


def image_id(source_hash: str, frame: int) -> str:
    """Stable id of one 2D image: 16 hex chars from the source content hash and the frame index."""
    return content_hash(f"{source_hash}:{frame}".encode())[:16]


def _is_dicom_candidate(name: str) -> bool:
    """Whether `_dispatch` hands a file of this name to the DICOM reader (the fallback for other names)."""
    known = (*NIFTI_SUFFIXES, *PLAIN_SUFFIXES, *NON_IMAGE_SUFFIXES, *ARCHIVE_SUFFIXES)
    return not name.lower().endswith(known)


def read_source(path: Path, settings: IngestSettings, known_hash: str = "") -> tuple[str, bytes | None]:
    """The file's content hash (`known_hash` when given), and its bytes when it will be parsed as DICOM:
    read once, for both. Pass them on as `decode_path(path, settings, data)`.

    Other files (NIfTI, plain images, oversized ones) are hashed in chunks and read by their decoder.
    """
    if _is_dicom_candidate(path.name) and path.stat().st_size <= settings.max_file_mb * 2**20:
        data = path.read_bytes()
        return known_hash or content_hash(data), data
    return known_hash or file_content_hash(path), None


def process_batch(
    jobs: list[Job], time_bound: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext
) -> list[FileOutcome]:
    """Decode `jobs` (same images folder) into one new shard; outcomes in job order.

    `time_bound()` wraps each file's work (the local runner arms an alarm there). The shard is
    published only when every file is done, so an outcome never names a shard that is not in place.
    """
    with ShardWriter(jobs[0].images_dir) as shard:
        outcomes = []
        for job in jobs:
            with time_bound():
                outcomes.append(process_file(job, shard))
        name = shard.finish()
    return [replace(outcome, images=[replace(i, shard=name) for i in outcome.images]) for outcome in outcomes]


def process_file(job: Job, shard: ShardWriter) -> FileOutcome:
    """Hash, decode and store one file; every failure becomes a FileOutcome, never an exception.

    Hashing here rather than in the stage spreads it over the workers on a first run.
    """
    # A symlink out of the archive would let a file in it make ingest read anything the process can.
    # Only a symlinked file can lead out (the stage does not descend into symlinked folders).
    if job.path.is_symlink() and not job.path.resolve().is_relative_to(job.settings.source.resolve()):
        return FileOutcome("skipped", "symlink to a file outside ingest.source: not followed", "")
    try:
        sha, data = read_source(job.path, job.settings, job.source_hash)
    except OSError as error:
        return FileOutcome("quarantined", f"unreadable: {error.strerror}", type(error).__name__)
    try:
        decoded = decode_path(job.path, job.settings, data)
    except UnusableFile as unusable:
        return FileOutcome(unusable.disposition, unusable.reason, unusable.exception_type, source_hash=sha)
    except Exception as error:  # a decoder failure of any kind is this file's problem, not the run's
        detail = " ".join(str(error).split())[:MAX_REASON]
        reason = f"decode failed: {detail or type(error).__name__}"
        return FileOutcome("quarantined", reason, type(error).__name__, source_hash=sha)
    if not decoded:
        return FileOutcome("quarantined", "no images: the file decoded to zero images", "", source_hash=sha)
    return FileOutcome("ok", images=[_store(image, sha, shard) for image in decoded], source_hash=sha)


def _store(image: DecodedImage, source_hash: str, shard: ShardWriter) -> StoredImage:
    """Append one image to the shard (native integers or float32) and describe it."""
    pixels = np.ascontiguousarray(image.pixels)  # (H, W) or (H, W, 3)
    if pixels.dtype.kind not in "iu":
        pixels = pixels.astype(np.float32, copy=False)
    identifier = image_id(source_hash, image.frame)
    offset, nbytes = shard.add(identifier, pixels)
    # The buffer itself is hashed: no 0.5 MB copy for a 512x512 image.
    digest = content_hash(f"{pixels.shape}{pixels.dtype.str}".encode(), pixels.data)
    height, width = pixels.shape[:2]
    return StoredImage(identifier, image.frame, height, width, digest, offset, nbytes, image.meta, image.keys)
