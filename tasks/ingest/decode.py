"""One file in, 2D images out: type dispatch, bounds, and failures of every kind turned into reasons.

`decode_path` decodes (raising `UnusableFile` for a file ingest cannot use); `decode_file` is what a
worker process runs per file (`tasks.ingest.worker` for the stage, `tasks.ingest.runner.decode_files`
for predict): it hashes and decodes, and returns a `Decoded`, plain data, whatever the decoder did.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import config as pydicom_config

from tasks.common.hashing import content_hash, file_content_hash
from tasks.ingest.dicom import decode_dicom
from tasks.ingest.nifti import decode_nifti
from tasks.ingest.plain import decode_plain
from tasks.ingest.records import DecodedImage, Disposition, UnusableFile, failure_reason
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
# Test hook: "decode-<action>:<file name>[,...]" makes the decoder fail that way on files of that name
# (see _FAULTS). The registry's hooks use the same variable with "registry-..." values.
FAULT_ENV = "RADFLOW_FAULT"


@dataclass(frozen=True)
class Decoded:
    """One file after a decode attempt: its content hash and images, or why it cannot be used."""

    source_hash: str  # "" when the file could not be read
    images: list[DecodedImage]
    disposition: Disposition = "ok"
    reason: str = ""
    exception_type: str = ""


@contextlib.contextmanager
def quiet_decoders() -> Iterator[None]:
    """Silence decoder warnings and log lines: they quote header values (e.g. an invalid birth date).

    pydicom's check of every value read is switched off too: its only output is such warnings (what it
    costs is small; BENCHMARKS.md, code choices). Loggers already silenced (an enclosing block, e.g. a
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
        _fault_hook(path, settings)
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


def _read_source(path: Path, settings: IngestSettings, known_hash: str = "") -> tuple[str, bytes | None]:
    """The file's content hash (`known_hash` when given), and its bytes when it will be parsed as DICOM:
    read once, for both. Pass them on as `decode_path(path, settings, data)`.

    Other files (NIfTI, plain images, oversized ones) are hashed in chunks and read by their decoder.
    """
    if _is_dicom_candidate(path.name) and path.stat().st_size <= settings.max_file_mb * 2**20:
        data = path.read_bytes()
        return known_hash or content_hash(data), data
    return known_hash or file_content_hash(path), None


def decode_file(path: Path, settings: IngestSettings, known_hash: str = "") -> Decoded:
    """Hash and decode one file (`known_hash`: its content hash when already known). A failure of any
    kind (a decoder's panic included) becomes a Decoded with a reason, never an exception; except
    running out of memory, which leaves the process unfit to go on (a decoder may keep what it held):
    the MemoryError goes up to the worker, which gives up, and `tasks.ingest.isolation` retries."""
    sha, read = known_hash, False
    try:
        sha, data = _read_source(path, settings, known_hash)
        read = True
        images = decode_path(path, settings, data)
    except UnusableFile as unusable:
        return Decoded(sha, [], unusable.disposition, unusable.reason, unusable.exception_type)
    except (KeyboardInterrupt, MemoryError):  # Ctrl-C; a worker out of memory gives up (isolation)
        raise
    except BaseException as error:  # a decoder failure of any kind is this file's problem, not the run's
        if isinstance(error, OSError) and not read:
            reason = f"unreadable: {error.strerror}"
        else:  # readers quote the path they were given (Pillow, nibabel): the reason names no path
            reason = failure_reason(f"{_kind(path)} decoder", error).replace(str(path), "the file")
        return Decoded(sha, [], "quarantined", reason, type(error).__name__)
    if not images:
        return Decoded(sha, [], "quarantined", "no images: the file decoded to zero images")
    return Decoded(sha, images)


def _kind(path: Path) -> str:
    """The file's format by its name, for reasons; DICOM for names no other reader claims."""
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "NIfTI"
    if name.endswith(PLAIN_SUFFIXES):
        return {".jpg": "JPEG", ".tif": "TIFF"}.get(path.suffix.lower(), path.suffix[1:].upper())
    return "DICOM"


def _fault_hook(path: Path, settings: IngestSettings) -> None:
    """Test-only: fail as a broken native decoder would, on a file `RADFLOW_FAULT` names."""
    spec = os.environ.get(FAULT_ENV, "")
    if not spec.startswith("decode-"):
        return
    for entry in spec.split(","):
        action, _, name = entry.partition(":")
        if name == path.name:
            _FAULTS[action](settings)


def _panic(settings: IngestSettings) -> None:
    class PanicException(BaseException):  # as pyo3's: outside Exception, unpicklable (a local class)
        pass

    raise PanicException("index out of bounds: the len is 3 but the index is 7")


def _segfault(settings: IngestSettings) -> None:
    os.write(2, b"fault hook: native decoder chatter before a segfault\n")
    os.kill(os.getpid(), signal.SIGSEGV)


def _exhaust_memory(settings: IngestSettings) -> None:
    np.ones(((settings.worker_memory_mb or 2**20) + 64) * 2**20, dtype=np.uint8)  # past the limit


_FAULTS: dict[str, Callable[[IngestSettings], None]] = {
    "decode-panic": _panic,
    "decode-segfault": _segfault,
    "decode-abort": lambda settings: os.abort(),
    "decode-kill": lambda settings: os.kill(os.getpid(), signal.SIGKILL),
    "decode-memory": _exhaust_memory,
    "decode-hang": lambda settings: time.sleep(10**6),
}
