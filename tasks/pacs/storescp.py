"""One DICOM storage SCP for everything that is sent instances: `radflow receive`, the listener of a
C-MOVE pull, and the C-STORE sub-operations a C-GET brings back on radflow's own association.

Shaped like pynetdicom's `apps/storescp` and `apps/common.handle_store`: an AE with the storage
presentation contexts it accepts, started as a threaded server, and one C-STORE handler that answers
with the Storage Service Class statuses (PS3.4 B.2.3, pynetdicom's `STORAGE_SERVICE_CLASS_STATUS`):

- "cannot understand" (0xC210) for data that does not decode, or lacks the UIDs an instance needs:
  the sender's retry cannot fix it;
- "data set does not match SOP class" (0xA900) for an instance whose SOP class is not the one the
  presentation context was negotiated for (a way around the accepted SOP classes);
- "refused: not authorised" (0x0124) for an instance over `pacs.max_instance_mb`: a policy refusal;
- "out of resources" (0xA700) only when writing failed or the disk is full: worth a later retry.

Who may associate is checked when the association is requested (EVT_REQUESTED), before any data:
the peer's address against a list of networks, and pynetdicom's own calling / called AE title
checks. A refused peer gets an A-ASSOCIATE-RJ.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import pydicom
import pynetdicom.sop_class
from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import (
    AE,
    ALL_TRANSFER_SYNTAXES,
    AllStoragePresentationContexts,
    VerificationPresentationContexts,
    evt,
)
from pynetdicom.events import Event
from pynetdicom.status import Status
from pynetdicom.transport import ThreadedAssociationServer

from tasks.common.errors import RadflowError
from tasks.pacs.settings import IMAGE_CLASSES, Network, PacsSettings
from tasks.pacs.tls import server_context

SUCCESS = int(Status.SUCCESS)
DUPLICATE_INSTANCE = 0x0111  # general status "Duplication SOP Instance" (PS3.7 C.4.2.1.4)
NOT_AUTHORISED = 0x0124  # general status "Refused: Not Authorised"
OUT_OF_RESOURCES = 0xA700  # storage "Refused: Out of Resources"
DATASET_MISMATCH = 0xA900  # storage "Error: Data Set Does Not Match SOP Class"
CANNOT_UNDERSTAND = 0xC210  # storage "Error: Cannot Understand"
# A-ASSOCIATE-RJ: rejected-permanent, by the service user, no reason given (PS3.8 9.3.4)
REJECT_PERMANENT, BY_SERVICE_USER, NO_REASON = 0x01, 0x01, 0x01

Sink = Callable[[Dataset], int]  # stores one decoded instance (with file meta); returns a status
Report = Callable[[str], None]  # one line about a refusal: counts, sizes, AE titles, addresses; no UID


@dataclass(frozen=True)
class Admission:
    """Who may associate with a listener."""

    networks: Sequence[Network]  # peer addresses accepted
    setting: str  # the params.yaml key that lists them, for the report line
    report: Report  # gets one line per rejected association
    calling_aets: Sequence[str] = ()  # calling AE titles accepted; empty = any
    require_called_aet: bool = False  # the called AE title must be the listener's own


def storage_scp(
    settings: PacsSettings,
    address: tuple[str, int],
    sop_classes: Sequence[str],
    admission: Admission,
    sink: Sink,
    report: Report,
) -> ThreadedAssociationServer:
    """Start (non-blocking) a storage SCP with AE title `pacs.calling_aet` on `address` that accepts
    `sop_classes` (UIDs; every transfer syntax) and Verification, admits peers per `admission`,
    and hands each decoded instance to `sink`. TLS when params.yaml configures it."""
    ae = AE(ae_title=settings.calling_aet)
    ae.network_timeout = ae.acse_timeout = ae.dimse_timeout = settings.timeout_s
    ae.require_calling_aet = list(admission.calling_aets)
    ae.require_called_aet = admission.require_called_aet
    for sop_class in sop_classes:
        ae.add_supported_context(sop_class, ALL_TRANSFER_SYNTAXES)
    for context in VerificationPresentationContexts:
        ae.add_supported_context(str(context.abstract_syntax))
    handlers: list[Any] = [
        (evt.EVT_REQUESTED, _admit, [admission]),
        (evt.EVT_C_STORE, handle_store, [settings, sink, report]),
    ]
    try:
        server = ae.start_server(
            address, block=False, evt_handlers=handlers, ssl_context=server_context(settings)
        )
    except OSError as error:
        raise RadflowError(
            f"cannot listen on {address[0]}:{address[1]} (pacs.listen_host, pacs.receive_port or "
            f"pacs.move_port): {error.strerror}"
        ) from None
    assert isinstance(server, ThreadedAssociationServer)  # a non-blocking start returns the server
    return server


def all_storage_classes() -> list[str]:
    """Every storage SOP class pynetdicom knows (what a PACS may send back to a pull)."""
    return [str(context.abstract_syntax) for context in AllStoragePresentationContexts]


def image_classes(modalities: Sequence[str]) -> list[str]:
    """The storage SOP class UIDs of `pacs.receive_modalities` (see settings.IMAGE_CLASSES)."""
    return [str(getattr(pynetdicom.sop_class, name)) for code in modalities for name in IMAGE_CLASSES[code]]


def handle_store(event: Event, settings: PacsSettings, sink: Sink, report: Report) -> int:
    """EVT_C_STORE: check size, decode, check the SOP class, then store (apps/common.handle_store)."""
    size = len(event.request.DataSet.getvalue())  # type: ignore[union-attr]
    if size > settings.max_instance_bytes:
        report(
            f"refused an instance of {size:,} bytes from {_peer(event)}: over "
            f"pacs.max_instance_mb={settings.max_instance_mb:g}"
        )
        return NOT_AUTHORISED
    try:
        dataset = pydicom.dcmread(BytesIO(event.encoded_dataset()))
        dataset.walk(lambda _dataset, _element: None)  # pydicom decodes lazily: decode every element now
        sop_class = str(dataset.SOPClassUID)
        for keyword in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"):
            str(dataset[keyword].value)
    except Exception:  # anything pydicom raises on bad bytes: the data, not radflow, is at fault
        report(f"refused an instance from {_peer(event)} that does not decode (cannot understand)")
        return CANNOT_UNDERSTAND
    if sop_class != str(event.context.abstract_syntax):
        report(
            f"refused an instance from {_peer(event)}: its SOP class {_name(sop_class)} is not the "
            f"negotiated {_name(str(event.context.abstract_syntax))}"
        )
        return DATASET_MISMATCH
    try:
        return sink(dataset)
    except OSError as error:  # the disk, not the data: a later retry may succeed
        report(f"could not store an instance from {_peer(event)}: {error.strerror or type(error).__name__}")
        return OUT_OF_RESOURCES


def _admit(event: Event, admission: Admission) -> None:
    """EVT_REQUESTED: reject an association whose peer address is not in `admission.networks`."""
    host = event.assoc.requestor.address
    try:
        peer: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        peer = None
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped  # a dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d
    if peer is not None and any(peer in network for network in admission.networks):
        return
    calling = event.assoc.requestor.primitive.calling_ae_title if event.assoc.requestor.primitive else "?"
    admission.report(
        f"rejected an association from {host} (calling AE {calling!r}): address not in {admission.setting}"
    )
    event.assoc.acse.send_reject(REJECT_PERMANENT, BY_SERVICE_USER, NO_REASON)
    event.assoc.kill()  # as pynetdicom's own rejections do: waits until the A-ASSOCIATE-RJ is sent


def _peer(event: Event) -> str:
    """The sender: the association's requestor, or its acceptor on a C-GET (radflow requested it)."""
    peer = event.assoc.acceptor if event.assoc.is_requestor else event.assoc.requestor
    return f"{peer.ae_title!r} at {peer.address}"


def _name(sop_class: str) -> str:
    return UID(sop_class).name or sop_class
