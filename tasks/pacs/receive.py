"""`radflow receive`: a DICOM C-STORE receiver for sites that push studies to radflow.

Binds to `pacs.listen_host` (127.0.0.1 unless configured otherwise) on `pacs.receive_port` and admits
an association only from an address in `pacs.receive_hosts` AND a calling AE title in
`pacs.receive_aets` (with DICOM TLS and client certificates when `pacs.tls_*` are set). It accepts
the image storage classes of `pacs.receive_modalities`, instances up to `pacs.max_instance_mb`, while
the disk keeps `pacs.min_free_disk_mb` free (storescp.py answers each refusal with its DICOM status).

Each instance is written atomically as a Part 10 file under opaque names into `retrain.incoming`,
from where the retrain flow syncs it into the archive. An instance that arrives again (same SOP
Instance UID) with the same content is an idempotent success; with different content it never
replaces the first: it is kept apart in `paths.private/pacs_conflicts/` for an operator to review,
answered "duplicate SOP instance" (0x0111) and reported. Logs carry counts, sizes, AE titles and
addresses, never a patient or study identifier.
"""

from __future__ import annotations

import shutil
import signal
import threading
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from rich.console import Console

from tasks.common.errors import RadflowError
from tasks.common.paths import project_paths
from tasks.pacs.console import quiet_library_logs
from tasks.pacs.part10 import content_digest, encode, instance_path, opaque_name, write_instance
from tasks.pacs.settings import MB, PacsSettings, load_pacs_settings, network
from tasks.pacs.storescp import (
    DUPLICATE_INSTANCE,
    OUT_OF_RESOURCES,
    SUCCESS,
    Admission,
    Report,
    image_classes,
    storage_scp,
)

CONFLICTS = "pacs_conflicts"  # folder of paths.private for instances that arrived again, changed


class Receiver:
    """A running C-STORE receiver; `stop()` ends it. Counts what it stored and refused; `report` gets
    one line per refusal (the CLI prints them)."""

    def __init__(
        self,
        settings: PacsSettings,
        incoming: Path,
        conflicts: Path,
        port: int | None = None,
        report: Report = print,
    ) -> None:
        if not settings.receive_aets:
            raise RadflowError(
                "pacs.receive_aets is empty: list the calling AE titles allowed to send studies, e.g. [CT01]"
            )
        self.settings, self.incoming, self.conflicts = settings, incoming, conflicts
        self.stored = self.unchanged = self.conflicting = self.refused = self.rejected = 0
        self._print = report
        self._lock = threading.RLock()  # _store holds it when it refuses
        incoming.mkdir(parents=True, exist_ok=True)
        # opaque instance name -> its file: what arrived before, whichever study folder holds it
        self._known = {path.stem: path for path in incoming.rglob("*.dcm") if not path.name.startswith(".")}
        admission = Admission(
            networks=[net for host in settings.receive_hosts if (net := network(host)) is not None],
            setting="pacs.receive_hosts",
            report=self._rejection,
            calling_aets=settings.receive_aets,
        )
        address = (settings.listen_host, settings.receive_port if port is None else port)
        classes = image_classes(settings.receive_modalities)
        self._server = storage_scp(settings, address, classes, admission, self._store, self._refusal)
        self.address = self._server.server_address

    def stop(self) -> None:
        self._server.shutdown()

    def describe(self) -> str:
        return (
            f"receive: {self.stored} instance(s) stored, {self.unchanged} received again unchanged, "
            f"{self.conflicting} changed copies kept apart, {self.refused} refused, "
            f"{self.rejected} association(s) rejected"
        )

    def _store(self, dataset: Dataset) -> int:
        """Write one decoded instance, unless its SOP Instance UID arrived before (see the module doc)."""
        name = opaque_name(dataset.SOPInstanceUID)
        content = encode(dataset)
        with self._lock:  # one decision per UID at a time, across concurrent associations
            free = shutil.disk_usage(self.incoming).free
            if free - len(content) < self.settings.min_free_disk_mb * MB:
                self._refusal(
                    f"refused an instance: {free / MB:.0f} MB free on the disk of {self.incoming}, "
                    f"under pacs.min_free_disk_mb={self.settings.min_free_disk_mb:g} (out of resources)"
                )
                return OUT_OF_RESOURCES
            first = self._known.get(name)
            if first is not None and first.exists():
                return self._again(first, dataset, content)
            target = instance_path(
                self.incoming, dataset.StudyInstanceUID, dataset.SeriesInstanceUID, dataset.SOPInstanceUID
            )
            write_instance(target, content)
            self._known[name] = target
            self.stored += 1
        return SUCCESS

    def _again(self, first: Path, dataset: Dataset, content: bytes) -> int:
        """The same SOP Instance UID once more: success when unchanged, else kept apart (caller locks)."""
        digest = content_digest(dataset)
        if content_digest(dcmread(first)) == digest:
            self.unchanged += 1
            return SUCCESS
        kept = self.conflicts / f"{first.stem}-{digest[:16]}.dcm"
        write_instance(kept, content)
        self.conflicting += 1
        self._print(
            f"receive: an instance arrived again with different content; the first stays in {self.incoming}, "
            f"the new one is kept apart as {kept} for review (answered duplicate SOP instance)"
        )
        return DUPLICATE_INSTANCE

    def _refusal(self, line: str) -> None:
        with self._lock:
            self.refused += 1
        self._print(f"receive: {line}")

    def _rejection(self, line: str) -> None:
        with self._lock:
            self.rejected += 1
        self._print(f"receive: {line}")


def receive_from_params(params: dict[str, Any], incoming: str | None, console: Console) -> None:
    """Run the receiver into `incoming` (retrain.incoming, parsed by the caller with the retrain
    section) until interrupted (Ctrl-C, SIGTERM), then print what it stored."""
    quiet_library_logs()
    if incoming is None:
        raise RadflowError("retrain.incoming is not set: it is the folder `radflow receive` stores into")
    settings = load_pacs_settings(params)
    conflicts = project_paths(params).private / CONFLICTS
    receiver = Receiver(settings, Path(incoming), conflicts, report=console.print)
    host, port = receiver.address[0], receiver.address[1]
    console.print(
        f"receiving C-STORE as {settings.calling_aet!r} on {host}:{port} from {list(settings.receive_aets)} "
        f"at {list(settings.receive_hosts)}{' over TLS' if settings.tls_cert else ''} into {incoming}; "
        "Ctrl-C stops"
    )
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop like Ctrl-C, with the summary
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
        console.print(receiver.describe())
