"""DIMSE transport (pynetdicom): C-FIND to find, then C-GET by UID (or C-MOVE), C-STORE to send.

C-GET needs no inbound port: the PACS sends the instances back over our own association, so it is the
default. C-MOVE makes the PACS open an association to `calling_aet` at the address it has configured
for it; radflow listens on `pacs.listen_host:pacs.move_port` for the duration of the pull, with the
storage SCP `radflow receive` uses (storescp.py), admitting only the PACS's host and only as called AE
`pacs.calling_aet`. Either way each instance is checked by the same C-STORE handler (size limit,
decoding). DICOM TLS when `pacs.tls_*` are set (tls.py).

Each operation runs on its own short association, bounded as a whole by `pacs.request_deadline_s`
(the association is aborted then) and a C-FIND by `pacs.max_query_results` matches. Statuses and
rejections become one-line errors that say what happened, with no identifier in them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, build_role, evt
from pynetdicom.association import Association
from pynetdicom.status import Status

from tasks.common.errors import RadflowError
from tasks.pacs.console import console
from tasks.pacs.settings import Endpoint, Network, PacsSettings
from tasks.pacs.storescp import SUCCESS, Admission, all_storage_classes, handle_store, storage_scp
from tasks.pacs.tls import client_context
from tasks.pacs.transport import InstanceRef, OnInstance, PacsRefused, PacsUnavailable

# Study Root Query/Retrieve Information Model (pynetdicom's names for these are not visible to mypy).
FIND_MODEL = "1.2.840.10008.5.1.4.1.2.2.1"
MOVE_MODEL = "1.2.840.10008.5.1.4.1.2.2.2"
GET_MODEL = "1.2.840.10008.5.1.4.1.2.2.3"
PENDING = (int(Status.PENDING), 0xFF01)  # 0xFF01: pending, optional keys not supported (C-FIND)
WARNING = 0xB000  # sub-operations complete, one or more failures (C-GET, C-MOVE)
MAX_STORAGE_CONTEXTS = 120  # presentation contexts are limited to 128 per association


class DimseTransport:
    """DIMSE operations against one called AE; each opens and releases its own association."""

    def __init__(self, where: Endpoint, settings: PacsSettings) -> None:
        self.where = where
        self.settings = settings
        self.ae = AE(ae_title=settings.calling_aet)
        self.ae.connection_timeout = settings.connect_timeout_s
        self.ae.acse_timeout = self.ae.dimse_timeout = self.ae.network_timeout = settings.timeout_s
        tls = client_context(settings)
        self.tls_args = (tls, where.host) if tls is not None else None  # the PACS's certificate names host
        self.expired = threading.Event()  # the current association outlived pacs.request_deadline_s

    def studies(self, filters: dict[str, str], since: dt.date | None) -> list[str]:
        query = _query("STUDY", StudyInstanceUID="", **filters)
        if since is not None:
            query.StudyDate = f"{since:%Y%m%d}-"
        return [found.StudyInstanceUID for found in self._find(query)]

    def instances(self, study: str) -> list[InstanceRef]:
        refs = []
        for series in self._find(_query("SERIES", StudyInstanceUID=study, SeriesInstanceUID="")):
            query = _query(
                "IMAGE",
                StudyInstanceUID=study,
                SeriesInstanceUID=series.SeriesInstanceUID,
                SOPInstanceUID="",
                SOPClassUID="",
            )
            refs += [
                InstanceRef(study, series.SeriesInstanceUID, found.SOPInstanceUID, str(found.SOPClassUID))
                for found in self._find(query)
            ]
        return refs

    def retrieve(self, wanted: list[InstanceRef], whole_series: bool, on_instance: OnInstance) -> None:
        """C-GET (or C-MOVE) the series in one request, or each wanted instance by its UID."""
        first = wanted[0]
        if whole_series:
            queries = [_query("SERIES", StudyInstanceUID=first.study, SeriesInstanceUID=first.series)]
        else:
            queries = [
                _query("IMAGE", StudyInstanceUID=r.study, SeriesInstanceUID=r.series, SOPInstanceUID=r.sop)
                for r in wanted
            ]
        if self.settings.retrieve == "move":
            self._move(queries, on_instance)
        else:
            self._get(queries, sorted({ref.sop_class for ref in wanted if ref.sop_class}), on_instance)

    def store(self, dataset: Dataset) -> None:
        sop_class = dataset.SOPClassUID
        with self._association([(sop_class, [dataset.file_meta.TransferSyntaxUID])]) as assoc:
            status = assoc.send_c_store(dataset)
        code = status.get("Status") if status else None
        if code is None:
            raise PacsRefused(
                f"PACS {self.where.url} aborted the store without a status: it most likely does not know "
                f"calling AE {self.settings.calling_aet!r}; register that AE (with this host's address) "
                "in the PACS's list of modalities"
            )
        if code not in (SUCCESS, WARNING) and not 0xB000 <= code <= 0xBFFF:
            raise RadflowError(f"PACS {self.where.url} refused to store the result (status 0x{code:04X})")

    def change_cursor(self) -> int | None:
        return None  # DIMSE has no change feed

    def changed_studies(self, cursor: int) -> tuple[set[str], int]:
        return set(), cursor

    def close(self) -> None:
        self.ae.shutdown()

    def _find(self, query: Dataset) -> list[Dataset]:
        found = []
        with self._association([(FIND_MODEL, None)]) as assoc:
            for code, identifier in self._checked(assoc.send_c_find(query, FIND_MODEL), "C-FIND"):
                if code in PENDING and identifier is not None:
                    found.append(identifier)
                if len(found) > self.settings.max_query_results:
                    raise RadflowError(
                        f"PACS {self.where.url} returned more than pacs.max_query_results="
                        f"{self.settings.max_query_results} matches to one C-FIND; narrow pacs.filters "
                        "(or raise the limit)"
                    )
        return found

    def _get(self, queries: list[Dataset], sop_classes: list[str], on_instance: OnInstance) -> None:
        if len(sop_classes) > MAX_STORAGE_CONTEXTS:
            raise RadflowError(f"a series holds {len(sop_classes)} SOP classes; C-GET can offer 120")
        contexts: list[tuple[str, list[str] | None]] = [(GET_MODEL, None)]
        contexts += [(sop_class, ALL_TRANSFER_SYNTAXES) for sop_class in sop_classes]
        roles = [build_role(sop_class, scp_role=True) for sop_class in sop_classes]
        handlers = [(evt.EVT_C_STORE, handle_store, [self.settings, _sink(on_instance), _warn])]
        with self._association(contexts, roles, handlers) as assoc:
            for query in queries:
                for _ in self._checked(assoc.send_c_get(query, GET_MODEL), "C-GET"):
                    pass

    def _move(self, queries: list[Dataset], on_instance: OnInstance) -> None:
        listening = move_listener(self.where, self.settings, on_instance)
        with listening, self._association([(MOVE_MODEL, None)]) as assoc:
            for query in queries:
                responses = assoc.send_c_move(query, self.settings.calling_aet, MOVE_MODEL)
                for _ in self._checked(responses, "C-MOVE"):
                    pass

    def _checked(
        self, responses: Iterator[tuple[Dataset, Dataset | None]], operation: str
    ) -> Iterator[tuple[int, Dataset | None]]:
        """(status code, identifier) of each response; failures and aborts raise (see `_status`)."""
        asked = time.monotonic()
        for status, identifier in responses:
            yield self._status(status, operation, time.monotonic() - asked), identifier
            asked = time.monotonic()

    def _status(self, status: Dataset, operation: str, waited_s: float) -> int:
        """The status code. No status means the association ended: before the timeout, the PACS hung
        up on the request (what Orthanc does when the calling AE may not do this); else it timed out."""
        code = status.get("Status") if status else None
        if code is None and self.expired.is_set():
            raise RadflowError(
                f"PACS {self.where.url}: the {operation} took longer than pacs.request_deadline_s="
                f"{self.settings.request_deadline_s:g} s and was aborted (raise the limit for larger series)"
            )
        if code is None and waited_s < self.settings.timeout_s:
            raise PacsRefused(
                f"PACS {self.where.url} aborted the {operation}: it does not allow calling AE "
                f"{self.settings.calling_aet!r} (pacs.calling_aet) to do this; register that AE, with "
                "this host's address, in the PACS"
            )
        if code is None:
            raise PacsUnavailable(
                f"PACS {self.where.url} did not answer the {operation} within "
                f"pacs.timeout_s={self.settings.timeout_s:g} s"
            )
        if code in (*PENDING, SUCCESS, WARNING):
            return int(code)
        if operation == "C-MOVE" and code == 0xA801:
            raise PacsRefused(
                f"PACS {self.where.url} does not know move destination {self.settings.calling_aet!r} "
                "(status 0xA801); register it there, or set pacs.retrieve: get"
            )
        raise RadflowError(f"PACS {self.where.url} answered the {operation} with failure 0x{code:04X}")

    @contextlib.contextmanager
    def _association(
        self,
        contexts: Sequence[tuple[str, list[str] | None]],
        roles: list[Any] | None = None,
        handlers: list[Any] | None = None,
    ) -> Iterator[Association]:
        self.ae.requested_contexts = []
        for sop_class, syntaxes in contexts:
            if syntaxes is None:
                self.ae.add_requested_context(sop_class)
            else:
                self.ae.add_requested_context(sop_class, syntaxes)
        assoc = self.ae.associate(
            self.where.host,
            self.where.port,
            ae_title=self.where.called_aet,
            ext_neg=roles or None,
            evt_handlers=handlers or None,
            tls_args=self.tls_args,
        )
        if not assoc.is_established:
            raise self._not_established(assoc)
        self.expired.clear()

        def expire() -> None:
            self.expired.set()
            assoc.abort()
            # A local abort does not wake a request blocked on the next DIMSE message (only the peer's
            # does, with this same (None, None) item): without it, the wait would run on to timeout_s.
            assoc.dimse.msg_queue.put((None, None))

        deadline = threading.Timer(self.settings.request_deadline_s, expire)
        deadline.daemon = True
        deadline.start()
        try:
            yield assoc
        except BaseException:
            assoc.abort()  # the PACS may still be sending: a release would wait for it
            raise
        else:
            if assoc.is_established:
                assoc.release()
        finally:
            deadline.cancel()

    def _not_established(self, assoc: Association) -> RadflowError:
        """Why the association failed, in words (rejected, aborted, or no connection at all)."""
        url, calling = self.where.url, self.settings.calling_aet
        if self.tls_args is not None and not assoc.is_rejected:
            return RadflowError(
                f"PACS {url}: no DICOM TLS association with {self.where.host}:{self.where.port}; check that "
                "the PACS's certificate chains to pacs.tls_ca and names that host, that the PACS trusts "
                "pacs.tls_cert, and that it speaks TLS on that port"
            )
        if assoc.is_rejected:
            return PacsRefused(
                f"PACS {url} rejected the association: it does not accept calling AE {calling!r} "
                f"(pacs.calling_aet) or called AE {self.where.called_aet!r}; register {calling!r} "
                "with this host's address in the PACS"
            )
        if assoc.is_aborted and _reachable(self.where.host, self.where.port, self.ae.connection_timeout):
            return PacsRefused(
                f"PACS {url} aborted the association at once: it most likely does not accept calling AE "
                f"{calling!r} from this host; register it in the PACS"
            )
        return PacsUnavailable(
            f"PACS {url} is unreachable (no DICOM association with {self.where.host}:{self.where.port} "
            f"within pacs.connect_timeout_s={self.settings.connect_timeout_s:g} s)"
        )


def _reachable(host: str, port: int, timeout_s: float | None) -> bool:
    """Whether a TCP connection opens: tells "no server there" from "the server hung up on us"."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _query(level: str, **keys: Any) -> Dataset:
    query = Dataset()
    query.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(query, keyword, value)
    return query


@contextlib.contextmanager
def move_listener(where: Endpoint, settings: PacsSettings, on_instance: OnInstance) -> Iterator[None]:
    """The storage SCP a C-MOVE delivers to, for the duration of the block: on
    `pacs.listen_host:pacs.move_port`, admitting only the PACS's host calling radflow by its own AE
    title (`pacs.calling_aet`), any storage SOP class (what the PACS holds is the pull's choice)."""
    admission = Admission(
        networks=_addresses(where.host),
        setting=f"the PACS's host {where.host} (pacs.url)",
        report=_warn,
        require_called_aet=True,
    )
    address = (settings.listen_host, settings.move_port)
    listener = storage_scp(settings, address, all_storage_classes(), admission, _sink(on_instance), _warn)
    try:
        yield
    finally:
        listener.shutdown()


def _sink(on_instance: OnInstance) -> Any:
    """The storage SCP's sink for a pull: hand the instance over (an OSError is "out of resources")."""

    def store(dataset: Dataset) -> int:
        on_instance(dataset)
        return SUCCESS

    return store


def _warn(line: str) -> None:
    console.print(f"[yellow]warning:[/] pull: {line}")


def _addresses(host: str) -> list[Network]:
    """The addresses `host` resolves to: the only peers the C-MOVE listener admits."""
    try:
        found = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        raise RadflowError(f"pacs.url: cannot resolve the PACS host {host} for the C-MOVE listener") from None
    return [ipaddress.ip_network(str(address).split("%")[0]) for address in found]
