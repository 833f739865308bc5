"""What pull and push need from a PACS, whichever protocol carries it, and the errors it can raise.

Two error kinds, because the retrain flow retries one and not the other: `PacsUnavailable` (cannot
connect, timed out, server error: a later attempt may succeed) and `PacsRefused` (credentials or AE
title refused: retrying cannot help). Messages name the PACS by its configured URL and never carry a
patient identifier.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pydicom.dataset import Dataset

from tasks.common.errors import RadflowError, TransientError

OnInstance = Callable[[Dataset], None]


class PacsUnavailable(TransientError):
    """The PACS could not be reached or did not answer in time: transient, worth a retry (exit 75)."""


class PacsRefused(RadflowError):
    """The PACS refused us (authentication, unknown calling AE): retrying will not help."""


@dataclass(frozen=True)
class InstanceRef:
    """One instance the PACS holds, by its UIDs (identifiers: kept in memory, never logged)."""

    study: str
    series: str
    sop: str
    sop_class: str = ""  # DIMSE C-GET needs it to offer the matching storage context


class Transport(Protocol):
    """One connection's worth of PACS operations; `close()` ends it."""

    def studies(self, filters: dict[str, str], since: dt.date | None) -> list[str]:
        """StudyInstanceUIDs matching `filters` (study-level keys) with StudyDate >= `since` (None: any)."""
        ...

    def instances(self, study: str) -> list[InstanceRef]:
        """Every instance of `study`."""
        ...

    def retrieve(self, wanted: list[InstanceRef], whole_series: bool, on_instance: OnInstance) -> None:
        """Fetch `wanted` (instances of one series; all of it when `whole_series`) and hand each
        dataset, with its file meta, to `on_instance`."""
        ...

    def store(self, dataset: Dataset) -> None:
        """Send one new instance (e.g. a result SR) to the PACS."""
        ...

    def change_cursor(self) -> int | None:
        """The server's change-feed position now, or None when it has no feed we understand."""
        ...

    def changed_studies(self, cursor: int) -> tuple[set[str], int]:
        """StudyInstanceUIDs that received instances after `cursor`, and the new cursor."""
        ...

    def close(self) -> None: ...
