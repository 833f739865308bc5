"""What a PACS may send is bounded: matches per query (QIDO-RS, C-FIND), bytes per instance (WADO-RS,
C-GET, C-MOVE), pages of the change feed, and time per whole request however the answer trickles in.
Each limit ends in one line naming it. Real Orthanc, and two hostile servers on loopback."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, evt

from tasks.common.errors import RadflowError
from tasks.pacs import dicomweb
from tasks.pacs.dicomweb import DicomWebTransport
from tasks.pacs.dimse import FIND_MODEL, DimseTransport
from tasks.pacs.pull import run_pull
from tasks.pacs.settings import endpoint
from tests.defaults import write_params
from tests.loopback import free_port
from tests.orthanc import AUTH, Orthanc
from tests.pacs_helpers import pacs_params, pacs_settings, pulled, study_files
from tests.project import tool_env

TRICKLE_GAP_S = 0.1  # a hostile server's pause between bytes: far below any per-read timeout
TRICKLE_MAX = 3000  # bytes it trickles at most (bounds the test at 300 s even if nothing stops it)


def pull(root: Path, url: str, **pacs: Any) -> tuple[int, int, int, int]:
    summary = run_pull(pacs_settings(root, url, **pacs), root / "raw" / "pacs", root / "private", False)
    return summary.new, summary.held, summary.failed, summary.left_for_next


@pytest.mark.parametrize("protocol", ["dicomweb", "dimse"])
def test_a_query_with_more_matches_than_the_cap_is_an_error_naming_it(
    pacs: Orthanc, tmp_path: Path, protocol: str
) -> None:
    pacs.upload([path for study in (1, 2, 3) for path in study_files(tmp_path / "sent", study, per_series=1)])
    url = pacs.dicomweb_url if protocol == "dicomweb" else pacs.dimse_url
    with pytest.raises(RadflowError, match=r"more than pacs\.max_query_results=2 matches"):
        pull(tmp_path / "capped", url, max_query_results=2)
    assert not pulled(tmp_path / "capped")
    assert pull(tmp_path / "enough", url, max_query_results=3) == (3, 0, 0, 0)


def test_the_cap_is_one_line_from_the_cli(pacs: Orthanc, tmp_path: Path) -> None:
    pacs.upload([path for study in (4, 5) for path in study_files(tmp_path / "sent", study, per_series=1)])
    write_params(tmp_path, pacs_params(tmp_path, pacs.dicomweb_url))
    result = subprocess.run(
        ["radflow", "pull", "--set", "pacs.max_query_results=1"],
        cwd=tmp_path,
        env=tool_env() | {"RADFLOW_PACS_AUTH": AUTH, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "pacs.max_query_results=1" in lines[0]


@pytest.mark.parametrize(("protocol", "retrieve"), [("dicomweb", "get"), ("dimse", "get"), ("dimse", "move")])
def test_an_instance_over_the_byte_limit_is_refused_with_a_line_naming_it(
    pacs: Orthanc, tmp_path: Path, capfd: pytest.CaptureFixture[str], protocol: str, retrieve: str
) -> None:
    pacs.upload(study_files(tmp_path / "sent", 6, per_series=2))  # ~2.5 kB each
    url = pacs.dicomweb_url if protocol == "dicomweb" else pacs.dimse_url
    options = {"retrieve": retrieve, "move_port": pacs.move_port, "max_instance_mb": 0.001}
    capfd.readouterr()
    assert pull(tmp_path, url, **options) == (0, 0, 2, 0)  # refused, so missing: none written
    assert not pulled(tmp_path)
    err = " ".join(capfd.readouterr().err.split())
    assert "pacs.max_instance_mb=0.001" in err, err
    assert pull(tmp_path, url, **{**options, "max_instance_mb": 1}) == (2, 0, 0, 0)


def test_the_change_feed_is_read_for_a_bounded_number_of_pages(
    pacs: Orthanc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pacs.upload(study_files(tmp_path / "sent", 7, per_series=3))  # a dozen changes or so
    monkeypatch.setattr(dicomweb, "CHANGES_PAGE", 2)  # small pages, so a few uploads make many
    settings = pacs_settings(tmp_path, pacs.dicomweb_url, max_change_pages=2)
    transport = DicomWebTransport(endpoint(settings), settings)
    try:
        with pytest.raises(RadflowError, match=r"more than pacs\.max_change_pages=2 pages"):
            transport.changed_studies(0)
    finally:
        transport.close()


@contextlib.contextmanager
def trickling_http_server() -> Iterator[int]:
    """An HTTP server that answers every request with headers, then one body byte every TRICKLE_GAP_S:
    no single read ever waits long, yet the answer never ends. Yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        with contextlib.suppress(OSError):
            connection, _ = listener.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/dicom+json\r\n"
                    + f"Content-Length: {TRICKLE_MAX}\r\n\r\n".encode()
                )
                for _ in range(TRICKLE_MAX):
                    if stop.wait(TRICKLE_GAP_S):
                        return
                    connection.sendall(b" ")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=30)


@contextlib.contextmanager
def trickling_find_scp() -> Iterator[int]:
    """A DIMSE peer that answers a C-FIND with one pending match every TRICKLE_GAP_S, without end
    (until the association goes). Yields its port."""
    stop = threading.Event()

    def matches(event: Any) -> Iterator[tuple[int, Dataset | None]]:
        for number in range(TRICKLE_MAX):
            if stop.wait(TRICKLE_GAP_S) or event.is_cancelled or not event.assoc.is_established:
                return
            match = Dataset()
            match.QueryRetrieveLevel = "STUDY"
            match.StudyInstanceUID = f"1.2.826.0.1.3680043.8.498.77.{number}"
            yield 0xFF00, match

    peer = AE(ae_title="SLOWPACS")
    peer.add_supported_context(FIND_MODEL)
    port = free_port()
    server = peer.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_FIND, matches)])
    try:
        yield port
    finally:
        stop.set()
        if server is not None:
            server.shutdown()


@pytest.mark.parametrize(
    ("peer", "url", "transport", "expected"),
    [
        (
            trickling_http_server,
            "http://127.0.0.1:{port}/dicom-web",
            DicomWebTransport,
            r"within pacs\.request_deadline_s=1 s \(query studies\)",
        ),
        (
            trickling_find_scp,
            "dimse://SLOWPACS@127.0.0.1:{port}",
            DimseTransport,
            r"C-FIND took longer than pacs\.request_deadline_s=1 s",
        ),
    ],
    ids=["dicomweb", "dimse"],
)
def test_a_trickled_answer_ends_at_the_request_deadline(
    tmp_path: Path, peer: Any, url: str, transport: Any, expected: str
) -> None:
    """Each wait is far shorter than pacs.timeout_s, so only the whole-request deadline can end it."""
    with peer() as port:
        settings = pacs_settings(tmp_path, url.format(port=port), timeout_s=30, request_deadline_s=1)
        client = transport(endpoint(settings), settings)
        try:
            with pytest.raises(RadflowError, match=expected):
                client.studies({}, None)
        finally:
            client.close()
