"""What decoding produces and what ingest keeps per file: plain, picklable records.

`DecodedImage` holds pixels (decoder output, in memory only). `FileState` is one source file as a
worker reports it and as the stage keeps it between runs; its `ImageRecord`s say where each image is
in the store. `SourceKeys` are the raw patient/study/series/instance identifiers, held in memory only
long enough for the stage to turn them into the salted pseudonyms of a `FileState`; never written or
logged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tasks.common.errors import RadflowError
from tasks.common.shards import Record

Disposition = Literal["ok", "skipped", "quarantined"]
MAX_REASON = 300  # characters of an exception message kept in the (operator-only) quarantine report


class UnusableFile(RadflowError):
    """A file ingest cannot use: `skipped` (holds no image) or `quarantined` (broken or refused).

    The message is a specific reason; it never contains the file's path.
    """

    def __init__(self, disposition: Disposition, reason: str, exception_type: str = "") -> None:
        super().__init__(reason)
        self.disposition = disposition
        self.reason = reason
        self.exception_type = exception_type or type(self).__name__


def failure_reason(what: str, error: BaseException) -> str:
    """`<what> failed: <message>`, or `<what> panicked: ...` for a failure outside `Exception` (a Rust
    panic reaches Python as pyo3's PanicException, a BaseException)."""
    detail = " ".join(str(error).split())[:MAX_REASON] or type(error).__name__
    return f"{what} {'failed' if isinstance(error, Exception) else 'panicked'}: {detail}"


@dataclass(frozen=True)
class ImageMeta:
    """Non-identifying attributes training and evaluation may use; empty string / None = unknown."""

    modality: str = ""
    view: str = ""
    body_part: str = ""
    photometric: str = ""  # as stored: MONOCHROME1/2, RGB, YBR_*...; plain images: MONOCHROME2 or RGB
    sex: str = ""
    age_band: str = ""
    manufacturer: str = ""
    spacing_row: float | None = None  # mm between row centres
    spacing_col: float | None = None  # mm between column centres
    slice_position: float | None = (
        None  # mm along the slice normal (orders a series' instances); not in the manifest
    )

    def __post_init__(self) -> None:
        # Hostile or broken headers carry negative, zero, NaN or infinite spacings: those are unknown.
        for name in ("spacing_row", "spacing_col"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                object.__setattr__(self, name, None)


@dataclass(frozen=True)
class SourceKeys:
    """Raw identifiers from the file header ("" when absent); pseudonymised by the stage, never stored."""

    patient: str = ""
    study: str = ""
    series: str = ""
    instance: str = ""
    accession: str = ""  # Accession Number: a labels CSV may key rows by it


@dataclass
class DecodedImage:
    """One 2D image: (H, W) or (H, W, 3), native integers or float32, modality units, bright = dense.

    Every image of one file carries the same `meta` and `keys` (they come from the file's header).
    """

    pixels: np.ndarray
    frame: int  # index within the source object; -1 for a maximum-intensity projection
    meta: ImageMeta
    keys: SourceKeys


@dataclass(frozen=True)
class ImageRecord:
    """One decoded image in the store: where its pixels are and what they are (no identifier)."""

    image_id: str
    frame: int
    height: int
    width: int
    pixel_hash: str
    shard: str  # the shard's file name (tasks.common.shards)
    offset: int  # where its record starts in the shard
    nbytes: int  # record length, header included

    def record(self) -> Record:
        """Its place in the image store."""
        return Record(self.image_id, self.shard, self.offset, self.nbytes)


@dataclass(frozen=True)
class FileState:
    """One source file: as listed (size, mtime), what it decoded to, and its pseudonymised identifiers.

    A worker reports it with the identifiers empty (the raw ones travel beside it as `SourceKeys`,
    for the stage to pseudonymise); the stage keeps it between runs (`tasks.ingest.state`).
    """

    size: int
    mtime_ns: int
    source_hash: str  # tasks.common.hashing.content_hash of the file's bytes ("" if never read whole)
    disposition: Disposition
    reason: str = ""  # why it is not "ok": specific, one line, no path or header value
    exception_type: str = ""
    detail: str = ""  # what the decoder printed when it failed (operator-only quarantine report)
    meta: ImageMeta = ImageMeta()  # shared by all its images
    images: list[ImageRecord] = field(default_factory=list)
    patient_id: str = ""  # salted pseudonyms ("" when the header carries none)
    study_id: str = ""
    series_id: str = ""
    instance_id: str = ""  # of the SOP Instance UID, for the duplicate guard
    accession_id: str = ""  # of the Accession Number, for labels keyed by accession
