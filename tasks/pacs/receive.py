"""`radflow receive`: a DICOM C-STORE receiver for sites that push studies to radflow.

Binds to `pacs.listen_host` (127.0.0.1 unless configured otherwise) on `pacs.receive_port`, accepts
associations only from the calling AE titles in `pacs.receive_aets`, and writes each instance
atomically as a Part 10 file under opaque names into `retrain.incoming`, from where the retrain flow
syncs it into the archive. It logs counts, never identifiers.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.events import Event
from pynetdicom.transport import ThreadedAssociationServer
from rich.console import Console

from tasks.common.errors import RadflowError
from tasks.pacs.part10 import write_arrived
from tasks.pacs.settings import PacsSettings, load_pacs_settings

SUCCESS, OUT_OF_RESOURCES = 0x0000, 0xA700
VERIFICATION = "1.2.840.10008.1.1"


class Receiver:
    """A running C-STORE receiver; `stop()` ends it. Counts what it stored and refused."""

    def __init__(self, settings: PacsSettings, incoming: Path, port: int | None = None) -> None:
        if not settings.receive_aets:
            raise RadflowError(
                "pacs.receive_aets is empty: list the calling AE titles allowed to send studies, e.g. [CT01]"
            )
        self.incoming = incoming
        self.stored = self.failed = 0
        self._lock = threading.Lock()
        ae = AE(ae_title=settings.calling_aet)
        ae.require_calling_aet = list(settings.receive_aets)  # any other calling AE is rejected
        ae.network_timeout = ae.acse_timeout = ae.dimse_timeout = settings.timeout_s
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(str(context.abstract_syntax), ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(VERIFICATION)
        address = (settings.listen_host, settings.receive_port if port is None else port)
        try:
            server = ae.start_server(address, block=False, evt_handlers=[(evt.EVT_C_STORE, self._on_store)])
        except OSError as error:
            raise RadflowError(
                f"cannot listen on {address[0]}:{address[1]} (pacs.listen_host / pacs.receive_port): "
                f"{error.strerror}"
            ) from None
        assert isinstance(server, ThreadedAssociationServer)  # non-blocking start returns the server
        self._server = server
        self.address = server.server_address

    def _on_store(self, event: Event) -> int:
        """Write one arrived instance; a failure is reported to the sender, who may retry."""
        try:
            write_arrived(self.incoming, event.dataset)
        except Exception:
            with self._lock:
                self.failed += 1
            return OUT_OF_RESOURCES
        with self._lock:
            self.stored += 1
        return SUCCESS

    def stop(self) -> None:
        self._server.shutdown()


def receive_from_params(params: dict[str, Any], console: Console) -> None:
    """Run the receiver until interrupted (Ctrl-C, SIGTERM), then print what it stored."""
    incoming = (params.get("retrain") or {}).get("incoming")
    if not isinstance(incoming, str):
        raise RadflowError("retrain.incoming is not set: it is the folder `radflow receive` stores into")
    settings = load_pacs_settings(params)
    receiver = Receiver(settings, Path(incoming))
    host, port = receiver.address[0], receiver.address[1]
    console.print(
        f"receiving C-STORE as {settings.calling_aet!r} on {host}:{port} from {list(settings.receive_aets)} "
        f"into {incoming}; Ctrl-C stops"
    )
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop like Ctrl-C, with the summary
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
        console.print(f"receive: {receiver.stored} instance(s) stored, {receiver.failed} failed")
