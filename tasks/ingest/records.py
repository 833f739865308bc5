"""What decoding produces and what a worker hands back: plain, picklable, non-identifying records.

`SourceKeys` is the one exception: the raw patient/study/series/instance identifiers, held in memory
only long enough for the stage to turn them into salted pseudonyms. They are never written or logged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tasks.common.errors import RadflowError

Disposition = Literal["ok", "skipped", "quarantined"]


class UnusableFile(RadflowError):
    """A file ingest cannot use: `skipped` (holds no image) or `quarantined` (broken or refused).

    The message is a specific reason; it never contains the file's path.
    """

    def __init__(self, disposition: Disposition, reason: str, exception_type: str = "") -> None:
        super().__init__(reason)
        self.disposition = disposition
        self.reason = reason
        self.exception_type = exception_type or type(self).__name__


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
    """One 2D image: (H, W) or (H, W, 3), native integers or float32, modality units, bright = dense."""

    pixels: np.ndarray
    frame: int  # index within the source object; -1 for a maximum-intensity projection
    meta: ImageMeta
    keys: SourceKeys


@dataclass(frozen=True)
class StoredImage:
    """A decoded image after the worker saved it: everything but the pixels."""

    image_id: str
    frame: int
    height: int
    width: int
    pixel_hash: str
    offset: int  # where its record starts in the shard (tasks.common.shards)
    nbytes: int  # record length, header included
    meta: ImageMeta
    keys: SourceKeys
    shard: str = ""  # the shard's file name, known once the whole batch is stored


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one source file."""

    disposition: Disposition
    reason: str = ""
    exception_type: str = ""
    images: list[StoredImage] = field(default_factory=list)
    source_hash: str = ""  # content hash of the source file ("" when it could not be read)
