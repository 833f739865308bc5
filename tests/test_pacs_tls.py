"""A PACS behind HTTPS (a TLS front on a real Orthanc) with a certificate of the hospital's own CA:
trusted through REQUESTS_CA_BUNDLE, and a clear, final error (not "unreachable, try again later") when
it is not."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.defaults import write_params
from tests.orthanc import AUTH, Orthanc
from tests.pacs_helpers import pacs_params, pulled, sop_uids, study_files, study_uid
from tests.project import tool_env
from tests.tls_proxy import https_front

CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")  # requests reads either


@pytest.fixture
def https_pacs(pacs: Orthanc, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The module's Orthanc behind HTTPS: (its DICOMweb URL over TLS, the certificate to trust)."""
    with https_front(pacs.http_port, tmp_path / "tls") as (port, certificate):
        yield f"https://127.0.0.1:{port}/dicom-web", certificate


def pull_cli(root: Path, url: str, ca_bundle: Path | None) -> subprocess.CompletedProcess[str]:
    """`radflow pull` in a project folder pointed at `url`, trusting `ca_bundle` (or the system CAs only)."""
    write_params(root, pacs_params(root, url))
    env = {key: value for key, value in tool_env().items() if key not in CA_VARIABLES}
    env |= {"RADFLOW_PACS_AUTH": AUTH, "COLUMNS": "80"}
    if ca_bundle is not None:
        env["REQUESTS_CA_BUNDLE"] = str(ca_bundle)
    return subprocess.run(
        ["radflow", "pull"], cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_an_untrusted_certificate_is_a_clear_final_error_and_a_trusted_one_pulls(
    pacs: Orthanc, https_pacs: tuple[str, Path], tmp_path: Path
) -> None:
    url, certificate = https_pacs
    sent = study_files(tmp_path / "sent", 1)
    pacs.upload(sent)

    refused = pull_cli(tmp_path / "untrusted", url, ca_bundle=None)
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert refused.returncode == 1, refused.stderr  # final: retrying cannot fix trust (75 would retry)
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    message = " ".join(refused.stderr.split())
    assert "TLS certificate verify failed" in message and "REQUESTS_CA_BUNDLE" in message, message
    assert "unreachable" not in message and study_uid(1) not in message
    assert not pulled(tmp_path / "untrusted")

    trusted = pull_cli(tmp_path / "trusted", url, ca_bundle=certificate)
    assert trusted.returncode == 0, trusted.stderr[-3000:]
    assert sop_uids(pulled(tmp_path / "trusted")) == sop_uids(sent)
