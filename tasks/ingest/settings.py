"""The ingest stage's settings: params.yaml's `ingest` section, parsed once and passed down."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from tasks.common.params import parse_section

SliceStrategy = Literal["middle", "n", "mip", "all"]
DECODER_VERSION = 4  # bump when decoding changes, so incremental runs re-decode everything


@dataclass(frozen=True)
class IngestSettings:
    """params.yaml `ingest` section (see the comments there for units and typical values)."""

    source: Path
    labels: str
    slice_strategy: SliceStrategy
    slices: int
    voi_lut: bool
    burned_in: Literal["quarantine", "keep"]
    salt_env: str
    patient_pattern: str | None
    predefined_split: bool
    workers: int
    timeout_s: float
    worker_memory_mb: int
    max_file_mb: float
    max_pixels: int
    max_failed_fraction: float
    dask_address: str | None

    def decode_fingerprint(self) -> str:
        """The settings that change what a file decodes to; a change forces a full re-decode."""
        keys = ("slice_strategy", "slices", "voi_lut", "burned_in", "max_file_mb", "max_pixels")
        chosen = {key: value for key, value in asdict(self).items() if key in keys}
        return json.dumps({"decoder": DECODER_VERSION, **chosen}, sort_keys=True)


def load_settings(params: dict[str, Any]) -> IngestSettings:
    """Parse params.yaml's `ingest` section (strict: unknown keys and wrong types are errors)."""
    return parse_section(params, "ingest", IngestSettings)
