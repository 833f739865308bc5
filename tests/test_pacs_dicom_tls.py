"""DIMSE pulls over DICOM TLS from a real Orthanc that speaks only TLS on its DICOM port and requires
radflow's client certificate: C-GET and C-MOVE (Orthanc then connects to radflow's listener over TLS)
with the site's certificate pull everything; a certificate Orthanc does not trust, or no TLS at all,
gets nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tasks.common.errors import RadflowError
from tasks.pacs.pull import run_pull
from tests.orthanc import AUTH, PASSWORD, RADFLOW_AET, USER, Orthanc, missing_reason, running_orthanc
from tests.pacs_helpers import pacs_settings, pulled, sop_uids, study_files, tls_files


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """pacs.tls_* of a site whose hosts share one self-signed certificate for 127.0.0.1."""
    return tls_files(tmp_path_factory.mktemp("site-tls"))


@pytest.fixture(scope="module")
def tls_orthanc(tmp_path_factory: pytest.TempPathFactory, site: dict[str, str]) -> Iterator[Orthanc]:
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("tls-orthanc")
    overrides: dict[str, object] = {
        "DicomTlsEnabled": True,
        "DicomTlsCertificate": site["tls_cert"],
        "DicomTlsPrivateKey": site["tls_key"],
        "DicomTlsTrustedCertificates": site["tls_ca"],
        "DicomTlsRemoteCertificateRequired": True,
    }
    with running_orthanc(root, overrides) as server:
        # C-MOVE deliveries to radflow go over TLS too (Orthanc's per-modality switch)
        modality: dict[str, Any] = {"AET": RADFLOW_AET, "Host": "127.0.0.1", "Port": server.move_port}
        modality["UseDicomTls"] = True
        response = requests.put(
            f"{server.rest}/modalities/radflow", json=modality, auth=(USER, PASSWORD), timeout=30
        )
        response.raise_for_status()
        yield server


def pull(root: Path, server: Orthanc, **pacs: object) -> tuple[int, int, int, int]:
    settings = pacs_settings(root, server.dimse_url, move_port=server.move_port, **pacs)
    summary = run_pull(settings, root / "raw" / "pacs", root / "private", show_progress=False)
    return summary.new, summary.held, summary.failed, summary.left_for_next


def test_a_dimse_pull_over_tls_with_the_sites_certificate_gets_everything_by_get_and_move(
    tls_orthanc: Orthanc, site: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RADFLOW_PACS_AUTH", AUTH)
    sent = study_files(tmp_path / "sent", 31, series=2)
    tls_orthanc.upload(sent)
    for retrieve in ("get", "move"):
        assert pull(tmp_path / retrieve, tls_orthanc, retrieve=retrieve, **site) == (4, 0, 0, 0), retrieve
        assert sop_uids(pulled(tmp_path / retrieve)) == sop_uids(sent)


def test_untrusted_or_plain_dimse_gets_nothing(
    tls_orthanc: Orthanc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RADFLOW_PACS_AUTH", AUTH)
    tls_orthanc.upload(study_files(tmp_path / "sent", 32))
    rogue = tls_files(tmp_path / "rogue")
    with pytest.raises(RadflowError, match="no DICOM TLS association"):
        pull(tmp_path / "rogue", tls_orthanc, **rogue)
    with pytest.raises(RadflowError, match=r"aborted|unreachable"):  # Orthanc drops a plain association
        pull(tmp_path / "plain", tls_orthanc)
    assert not pulled(tmp_path / "rogue") and not pulled(tmp_path / "plain")
