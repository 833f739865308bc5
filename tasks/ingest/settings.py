"""The ingest stage's settings: params.yaml's `ingest` section, parsed once and passed down."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from tasks.common.errors import RadflowError
from tasks.common.params import EnvName, InvalidValue, Lax, parse_section, section
from tasks.common.urls import is_loopback
from tasks.ingest.patients import AUTO, compile_pattern

SliceStrategy = Literal["middle", "n", "mip", "all"]
DECODER_VERSION = 7  # bump when decoding changes, so incremental runs re-decode everything
PATTERNS = "auto, null, or a regular expression with a group named patient"

DASK = (
    "null, a scheduler on this machine (tcp://127.0.0.1:8786), or tls://HOST:PORT with Dask's TLS "
    "settings (distributed.comm.tls.ca-file and .client.cert/.key; SECURITY.md)"
)


def _dask_reachable_safely(address: str) -> bool:
    """Whether ingest may talk to the Dask scheduler at `address`: on this machine (the channel carries
    source paths and raw patient and study ids, and Dask unpickles what comes back), or elsewhere only
    over tls:// with a certificate authority and a client certificate in Dask's configuration, which
    Dask's Client then uses."""
    parts = urlsplit(address)
    if parts.scheme == "inproc" or (parts.scheme in ("tcp", "tls") and is_loopback(parts.hostname)):
        return True
    if parts.scheme != "tls" or not parts.hostname:
        return False
    import dask.config  # only for a remote cluster

    # What distributed's Security() reads (Dask's configuration files or DASK_* environment variables).
    tls = ("distributed.comm.tls.ca-file", "distributed.comm.tls.client.cert")
    return all(dask.config.get(key, None) for key in tls)


@section("ingest")
class IngestSettings:
    """params.yaml `ingest` section (see the comments there for units and typical values)."""

    source: Annotated[Path, Lax, Field(description="a folder (relative to the project root, or absolute)")]
    labels: Annotated[
        str, Field(pattern=r"^(folders|.*\.(?i:csv))$", description="folders, or a .csv file in the source")
    ]
    slice_strategy: SliceStrategy
    slices: Annotated[int, Field(ge=1)]
    voi_lut: bool
    burned_in: Literal["quarantine", "keep"]
    salt_env: EnvName
    patient_pattern: Annotated[str | None, Field(description=PATTERNS)]
    predefined_split: bool
    workers: Annotated[int, Field(ge=0)]
    timeout_s: Annotated[float, Field(gt=0)]
    worker_memory_mb: Annotated[int, Field(ge=0)]
    max_file_mb: Annotated[float, Field(gt=0)]
    max_pixels: Annotated[int, Field(ge=1)]
    max_failed_fraction: Annotated[float, Field(ge=0, le=1)]
    dask_address: Annotated[str | None, Field(description=DASK)]

    @field_validator("dask_address")
    @classmethod
    def _dask_safe(cls, address: str | None) -> str | None:
        if address is not None and not _dask_reachable_safely(address):
            raise InvalidValue("dask_address", address, DASK)
        return address

    @field_validator("patient_pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern not in (None, AUTO):
            try:
                compile_pattern(pattern)
            except RadflowError as error:
                raise InvalidValue("patient_pattern", pattern, f"{PATTERNS} ({error})") from None
        return pattern

    def decode_fingerprint(self) -> str:
        """The settings that change what a file decodes to; a change forces a full re-decode."""
        keys = ("slice_strategy", "slices", "voi_lut", "burned_in", "max_file_mb", "max_pixels")
        chosen = {key: value for key, value in asdict(self).items() if key in keys}
        return json.dumps({"decoder": DECODER_VERSION, **chosen}, sort_keys=True)


def load_settings(params: dict[str, Any]) -> IngestSettings:
    """Parse params.yaml's `ingest` section (strict: unknown keys and wrong types are errors)."""
    return parse_section(params, "ingest", IngestSettings)
