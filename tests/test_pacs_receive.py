"""Attacks on `radflow receive` and the C-MOVE listener with real pynetdicom associations on loopback:
a known AE title from an unknown address, oversized, undecodable, unlisted and replaced instances, a
full disk, and DICOM TLS with trusted and untrusted certificates."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pynetdicom import AE, _config
from pynetdicom.association import Association

from tasks.common.errors import RadflowError
from tasks.pacs.dimse import DimseTransport, move_listener
from tasks.pacs.part10 import ensure_part10
from tasks.pacs.receive import Receiver
from tasks.pacs.settings import endpoint
from tests.dicom_factory import PLANTED, ramp, write_dicom
from tests.loopback import free_port
from tests.pacs_helpers import DIGITAL_XRAY, pacs_settings, tls_files

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
WAIT_S = 30  # every association's network waits


class Running:
    """A receiver on a free port with its report lines."""

    def __init__(self, root: Path, **pacs: Any) -> None:
        self.lines: list[str] = []
        settings = pacs_settings(root, None, receive_aets=["CT01"], **pacs)
        self.conflicts = root / "private" / "pacs_conflicts"
        self.incoming = root / "incoming"
        self.receiver = Receiver(settings, self.incoming, self.conflicts, port=0, report=self.lines.append)
        self.port = int(self.receiver.address[1])

    def files(self) -> list[Path]:
        return sorted(self.incoming.rglob("*.dcm"))


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    """Starts a receiver with some `pacs` settings changed; every one started is stopped afterwards."""
    started: list[Running] = []

    def starting(**pacs: Any) -> Running:
        started.append(Running(tmp_path, **pacs))
        return started[-1]

    yield starting
    for server in started:
        server.receiver.stop()


@contextlib.contextmanager
def association(
    port: int,
    *,
    calling: str = "CT01",
    called: str = "RADFLOW",
    bind: str = "127.0.0.1",
    contexts: tuple[str, ...] = (DIGITAL_XRAY,),
    tls: Any = None,
) -> Iterator[Association]:
    """A sender's association (from `bind`) to 127.0.0.1:`port`, released and shut down afterwards."""
    sender = AE(ae_title=calling)
    sender.connection_timeout = sender.acse_timeout = sender.dimse_timeout = sender.network_timeout = WAIT_S
    for context in contexts:
        sender.add_requested_context(context)
    assoc = sender.associate("127.0.0.1", port, ae_title=called, bind_address=(bind, 0), tls_args=tls)
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()
        sender.shutdown()


def store(assoc: Association, data: Dataset | Path) -> int:
    status = assoc.send_c_store(data)
    assert "Status" in status, "no answer to the C-STORE"
    return int(status.Status)


def instance(path: Path, maximum: int = 4095) -> Dataset:
    return pydicom.dcmread(write_dicom(path, ramp(maximum=maximum)))


def test_a_known_ae_title_from_an_unknown_address_is_rejected(start: Any, tmp_path: Path) -> None:
    running = start()
    with association(running.port, bind="127.0.0.2") as intruder:
        assert intruder.is_rejected  # CT01 is allowed; 127.0.0.2 is not in pacs.receive_hosts
    with association(running.port, calling="STRANGER") as stranger:
        assert stranger.is_rejected  # right address, unknown AE title
    with association(running.port) as modality:
        assert modality.is_established
        assert store(modality, instance(tmp_path / "a.dcm")) == 0x0000
    assert running.receiver.stored == 1 and running.receiver.rejected == 1 and len(running.files()) == 1
    (line,) = running.lines
    assert "127.0.0.2" in line and "'CT01'" in line and "pacs.receive_hosts" in line


def test_a_network_in_receive_hosts_admits_its_addresses(start: Any, tmp_path: Path) -> None:
    running = start(receive_hosts=["127.0.0.0/30"])
    with association(running.port, bind="127.0.0.2") as modality:
        assert store(modality, instance(tmp_path / "a.dcm")) == 0x0000
    assert running.receiver.stored == 1


def test_an_oversized_instance_is_refused_and_reported(start: Any, tmp_path: Path) -> None:
    running = start(max_instance_mb=0.001)
    with association(running.port) as modality:
        assert store(modality, instance(tmp_path / "big.dcm")) == 0x0124  # refused: not authorised
    assert not running.files() and running.receiver.refused == 1
    (line,) = running.lines
    assert "over pacs.max_instance_mb=0.001" in line and "'CT01' at 127.0.0.1" in line
    assert PLANTED.sop_uid not in line and PLANTED.patient_id not in line


def test_an_instance_sent_again_changed_is_kept_apart_and_reported(start: Any, tmp_path: Path) -> None:
    running = start()
    first = instance(tmp_path / "a.dcm")
    changed = instance(tmp_path / "b.dcm", maximum=99)  # same UIDs (the planted identity), other pixels
    assert changed.SOPInstanceUID == first.SOPInstanceUID
    with association(running.port) as modality:
        assert store(modality, first) == 0x0000
        (stored,) = running.files()
        original = stored.read_bytes()
        assert store(modality, first) == 0x0000  # the same content again: an idempotent success
        assert store(modality, changed) == 0x0111  # duplicate SOP instance: never replaces the first
    assert running.files() == [stored] and stored.read_bytes() == original
    (kept,) = running.conflicts.rglob("*.dcm")
    assert np.array_equal(pydicom.dcmread(kept).pixel_array, changed.pixel_array)
    receiver = running.receiver
    assert (receiver.stored, receiver.unchanged, receiver.conflicting) == (1, 1, 1)
    (line,) = running.lines
    assert "different content" in line and str(kept) in line and PLANTED.sop_uid not in line
    assert "1 changed copies kept apart" in receiver.describe()


def test_data_that_does_not_decode_is_answered_cannot_understand(
    start: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = start()
    garbage = tmp_path / "garbage.dcm"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DIGITAL_XRAY
    meta.MediaStorageSOPInstanceUID = pydicom.uid.UID(PLANTED.sop_uid)
    meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian  # what the context was accepted with
    encoded = DicomBytesIO()
    write_file_meta_info(encoded, meta)
    garbage.write_bytes(bytes(128) + b"DICM" + encoded.getvalue() + b"this is not a DICOM data set" * 10)
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)  # send the file's bytes as they are
    with association(running.port) as modality:
        assert store(modality, garbage) == 0xC210  # cannot understand: a re-send cannot fix it
        assert store(modality, instance(tmp_path / "good.dcm")) == 0x0000  # the association goes on
    assert len(running.files()) == 1 and running.receiver.refused == 1
    assert "does not decode" in running.lines[0]


def test_a_storage_class_outside_the_allowlist_is_not_accepted(start: Any, tmp_path: Path) -> None:
    running = start(receive_modalities=["CT"])
    with association(running.port, contexts=(DIGITAL_XRAY, CT_IMAGE, BASIC_TEXT_SR)) as modality:
        accepted = {str(context.abstract_syntax) for context in modality.accepted_contexts}
        assert accepted == {CT_IMAGE}
        with pytest.raises(ValueError, match="presentation context"):
            modality.send_c_store(instance(tmp_path / "dx.dcm"))
    assert not running.files()


def test_a_disk_under_the_floor_answers_out_of_resources(start: Any, tmp_path: Path) -> None:
    running = start(min_free_disk_mb=10**12)
    with association(running.port) as modality:
        assert store(modality, instance(tmp_path / "a.dcm")) == 0xA700
    assert not running.files()
    assert "under pacs.min_free_disk_mb=1e+12" in running.lines[0]


def test_the_c_move_listener_admits_only_the_pacs_calling_radflow(tmp_path: Path) -> None:
    port = free_port()
    settings = pacs_settings(tmp_path, "dimse://ORTHANC@127.0.0.1:104", move_port=port)
    arrived: list[Dataset] = []
    with move_listener(endpoint(settings), settings, arrived.append):
        with association(port, calling="ORTHANC", called="OTHER") as wrong_title:
            assert wrong_title.is_rejected  # the listener answers only to its own AE title
        with association(port, calling="ORTHANC", bind="127.0.0.2") as other_host:
            assert other_host.is_rejected  # only the PACS's host may deliver
        with association(port, calling="ORTHANC") as pacs:
            assert store(pacs, instance(tmp_path / "a.dcm")) == 0x0000
    assert [str(dataset.SOPInstanceUID) for dataset in arrived] == [PLANTED.sop_uid]


def test_dicom_tls_a_trusted_certificate_stores_an_untrusted_one_cannot_associate(tmp_path: Path) -> None:
    site = tls_files(tmp_path / "site")
    rogue = tls_files(tmp_path / "rogue")
    lines: list[str] = []
    settings = pacs_settings(tmp_path, None, receive_aets=["CT01", "RADFLOW"], **site)
    receiver = Receiver(settings, tmp_path / "incoming", tmp_path / "conflicts", port=0, report=lines.append)
    port = int(receiver.address[1])
    try:
        # radflow's own DIMSE client (pulls, pushes) over TLS with the site's certificate: stores.
        client = pacs_settings(tmp_path, f"dimse://RADFLOW@127.0.0.1:{port}", **site)
        transport = DimseTransport(endpoint(client), client)
        try:
            transport.store(ensure_part10(instance(tmp_path / "a.dcm")))
        finally:
            transport.close()
        # A client whose certificate the receiver does not trust (and which does not trust it either).
        intruder = pacs_settings(tmp_path, f"dimse://RADFLOW@127.0.0.1:{port}", **rogue)
        transport = DimseTransport(endpoint(intruder), intruder)
        try:
            with pytest.raises(RadflowError, match=r"no DICOM TLS association.*pacs\.tls_ca"):
                transport.store(ensure_part10(instance(tmp_path / "b.dcm", maximum=7)))
        finally:
            transport.close()
        # A plain (no TLS) sender with an allowed AE title and address gets no association either.
        with association(port) as plain:
            assert not plain.is_established
    finally:
        receiver.stop()
    assert receiver.stored == 1 and len(list((tmp_path / "incoming").rglob("*.dcm"))) == 1


def test_a_tls_sender_checks_the_receivers_certificate(tmp_path: Path) -> None:
    """A modality with the site CA but a certificate the receiver signed for no one else: a pynetdicom
    sender that trusts another CA refuses the receiver (verification on, both ways)."""
    site = tls_files(tmp_path / "site")
    settings = pacs_settings(tmp_path, None, receive_aets=["CT01"], **site)
    receiver = Receiver(settings, tmp_path / "incoming", tmp_path / "conflicts", port=0, report=print)
    port = int(receiver.address[1])
    try:
        trusting = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=site["tls_ca"])
        trusting.load_cert_chain(site["tls_cert"], site["tls_key"])
        with association(port, tls=(trusting, "127.0.0.1")) as modality:
            assert store(modality, instance(tmp_path / "a.dcm")) == 0x0000
        other = tls_files(tmp_path / "other")
        distrusting = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=other["tls_ca"])
        distrusting.load_cert_chain(site["tls_cert"], site["tls_key"])
        with association(port, tls=(distrusting, "127.0.0.1")) as refused:
            assert not refused.is_established
    finally:
        receiver.stop()
    assert receiver.stored == 1
