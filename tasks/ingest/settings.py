"""The ingest stage's settings: params.yaml's `ingest` section, parsed once and passed down."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from tasks.common.params import Check, check_values, parse_section
from tasks.common.urls import is_loopback
from tasks.ingest.patients import AUTO, compile_pattern

SliceStrategy = Literal["middle", "n", "mip", "all"]
DECODER_VERSION = 7  # bump when decoding changes, so incremental runs re-decode everything
CHECKS: dict[str, Check] = {  # what parse_section's types and choices do not catch
    "labels": (lambda v: v == "folders" or v.lower().endswith(".csv"), "folders, or a .csv in the source"),
    "slices": (lambda v: v >= 1, "an integer >= 1"),
    "salt_env": (lambda v: re.fullmatch(r"[A-Za-z_]\w*", v) is not None, "an environment variable name"),
    # compile_pattern raises its own message for a bad regex
    "patient_pattern": (lambda v: v in (None, AUTO) or bool(compile_pattern(v)), "auto, null or a regex"),
    "workers": (lambda v: v >= 0, "0 (one per CPU core) or a number of processes"),
    "timeout_s": (lambda v: v > 0, "a number of seconds > 0"),
    "max_file_mb": (lambda v: v > 0, "a number of MB > 0"),
    "max_pixels": (lambda v: v > 0, "an integer > 0"),
    "worker_memory_mb": (lambda v: v > 0, "a number of MB > 0"),
    "max_failed_fraction": (lambda v: 0 <= v <= 1, "a fraction from 0 to 1"),
    "dask_address": (
        lambda v: v is None or _dask_reachable_safely(v),
        "null, a scheduler on this machine (tcp://127.0.0.1:8786), or tls://HOST:PORT with Dask's TLS "
        "settings (distributed.comm.tls.ca-file and .client.cert/.key; SECURITY.md)",
    ),
}


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

    def __post_init__(self) -> None:
        check_values("ingest", self, CHECKS)

    def decode_fingerprint(self) -> str:
        """The settings that change what a file decodes to; a change forces a full re-decode."""
        keys = ("slice_strategy", "slices", "voi_lut", "burned_in", "max_file_mb", "max_pixels")
        chosen = {key: value for key, value in asdict(self).items() if key in keys}
        return json.dumps({"decoder": DECODER_VERSION, **chosen}, sort_keys=True)


def load_settings(params: dict[str, Any]) -> IngestSettings:
    """Parse params.yaml's `ingest` section (strict: unknown keys and wrong types are errors)."""
    return parse_section(params, "ingest", IngestSettings)
