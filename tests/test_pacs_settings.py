"""The `pacs` settings, Part 10 writing and `radflow receive` as a process (no PACS server needed)."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pydicom
import pytest
from pynetdicom import AE

from tasks.common.errors import RadflowError
from tasks.pacs.part10 import encode, instance_path
from tasks.pacs.settings import credentials, endpoint
from tests.defaults import write_params
from tests.dicom_factory import PLANTED, write_dicom
from tests.loopback import free_port
from tests.pacs_helpers import DIGITAL_XRAY, pacs_params, pacs_settings
from tests.project import tool_env


def test_urls_name_a_dicomweb_base_or_a_dimse_called_ae(tmp_path: Path) -> None:
    web = endpoint(pacs_settings(tmp_path, "https://pacs.example:8443/dicom-web/"))
    assert (web.kind, web.url, web.host, web.port) == (
        "dicomweb",
        "https://pacs.example:8443/dicom-web",
        "pacs.example",
        8443,
    )
    dimse = endpoint(pacs_settings(tmp_path, "dimse://ORTHANC@10.1.2.3:104"))
    assert (dimse.kind, dimse.called_aet, dimse.host, dimse.port) == ("dimse", "ORTHANC", "10.1.2.3", 104)
    for bad, message in {
        "ftp://x/y": r"^pacs.url: invalid value \(not shown\); valid: http\(s\)://host:port/dicom-web",
        "dimse://10.1.2.3:104": "not understood",
    }.items():
        with pytest.raises(RadflowError, match=message):
            endpoint(pacs_settings(tmp_path, bad))
    with pytest.raises(RadflowError, match=r"pacs\.url is not set"):
        endpoint(pacs_settings(tmp_path, None))


def test_settings_are_checked_strictly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = "http://127.0.0.1:8042/dicom-web"
    with pytest.raises(RadflowError, match="'Modality_In_Study' is not a keyword with a text value"):
        pacs_settings(tmp_path, url, filters={"Modality_In_Study": "CR"})
    with pytest.raises(
        RadflowError, match=r"pacs\.calling_aet: invalid value 'AAAAAAAAAAAAAAAAA'; valid: an AE"
    ):
        pacs_settings(tmp_path, url, calling_aet="A" * 17)
    with pytest.raises(RadflowError, match=r"valid: get \| move$"):
        pacs_settings(tmp_path, url, retrieve="fetch")
    monkeypatch.setenv("RADFLOW_PACS_AUTH", "radflow:s3cret:with-colon")
    assert credentials(pacs_settings(tmp_path, url)) == ("radflow", "s3cret:with-colon")
    monkeypatch.setenv("RADFLOW_PACS_AUTH", "eyJhbGciOi.token")
    assert credentials(pacs_settings(tmp_path, url)) == "eyJhbGciOi.token"


def test_a_bare_dataset_is_written_as_part10(tmp_path: Path) -> None:
    """A dataset without preamble or file meta (as some clients hand over) becomes a standard file."""
    source = pydicom.dcmread(write_dicom(tmp_path / "a.dcm"))
    bare = pydicom.Dataset(source)  # no file meta, no preamble
    data = encode(bare)
    assert data[:128] == bytes(128) and data[128:132] == b"DICM"
    again = pydicom.dcmread(io.BytesIO(data))
    assert again.file_meta.MediaStorageSOPInstanceUID == source.SOPInstanceUID
    path = instance_path(tmp_path, PLANTED.study_uid, PLANTED.series_uid, PLANTED.sop_uid)
    assert PLANTED.sop_uid not in str(path) and path.suffix == ".dcm"


def test_radflow_receive_runs_until_sigterm_and_says_what_it_stored(tmp_path: Path) -> None:
    port = free_port()
    params = pacs_params(tmp_path, None)
    params["pacs"].update({"receive_port": port, "receive_aets": ["MODALITY1"]})
    params["retrain"]["incoming"] = str(tmp_path / "incoming")
    write_params(tmp_path, params)
    process = subprocess.Popen(
        ["radflow", "receive"], cwd=tmp_path, env=tool_env(), stderr=subprocess.PIPE, text=True
    )
    try:
        modality = AE(ae_title="MODALITY1")
        modality.add_requested_context(DIGITAL_XRAY)
        deadline = time.monotonic() + 60
        while True:
            association = modality.associate("127.0.0.1", port, ae_title="RADFLOW")
            if association.is_established or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert association.is_established
        status = association.send_c_store(pydicom.dcmread(write_dicom(tmp_path / "sent" / "a.dcm")))
        association.release()
        assert status.Status == 0x0000
    finally:
        os.kill(process.pid, signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert "receive: 1 instance(s) stored, 0 received again unchanged" in " ".join(stderr.split())
    assert PLANTED.patient_id not in stderr and PLANTED.sop_uid not in stderr
    (stored,) = (tmp_path / "incoming").rglob("*.dcm")
    assert pydicom.dcmread(stored).SOPInstanceUID == PLANTED.sop_uid


@pytest.mark.parametrize(
    "url",
    [
        "https://radflow:s3cret-pw@pacs.example/dicom-web",
        "https://s3cret-pw@pacs.example/dicom-web",  # a token as the user name
        "http://radflow:s3cret-pw@127.0.0.1:8042/dicom-web",
        "dimse://ORTHANC:s3cret-pw@10.1.2.3:104",
        "ftp://radflow:s3cret-pw@pacs.example/",
    ],
)
def test_credentials_in_the_url_are_refused_when_parsed_without_echoing_them(
    tmp_path: Path, url: str
) -> None:
    with pytest.raises(
        RadflowError, match=r"pacs\.url must not carry credentials.*RADFLOW_PACS_AUTH"
    ) as error:
        pacs_settings(tmp_path, url)
    assert "s3cret-pw" not in str(error.value)


def test_plain_http_with_credentials_is_accepted_only_to_this_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RADFLOW_PACS_AUTH", raising=False)
    assert pacs_settings(tmp_path, "http://pacs.example:8042/dicom-web")  # nothing secret to send
    monkeypatch.setenv("RADFLOW_PACS_AUTH", "radflow:s3cret-pw")
    with pytest.raises(RadflowError, match=r"http:// would send the credentials.*use https://"):
        pacs_settings(tmp_path, "http://pacs.example:8042/dicom-web")
    for local in (
        "http://127.0.0.1:8042/dicom-web",
        "http://localhost:8042/dicom-web",
        "http://[::1]:8042/x",
    ):
        assert pacs_settings(tmp_path, local).url == local
    assert pacs_settings(tmp_path, "https://pacs.example/dicom-web")


def test_a_url_with_credentials_given_with_set_is_one_line_and_not_echoed(tmp_path: Path) -> None:
    write_params(tmp_path, pacs_params(tmp_path, None))
    result = subprocess.run(
        ["radflow", "pull", "--set", "pacs.url=https://radflow:s3cret-pw@pacs.example/dicom-web"],
        cwd=tmp_path,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1 and "pacs.auth_env" in lines[0], result.stderr
    assert "s3cret-pw" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("key", "value", "valid"),
    [
        ("receive_hosts", ["10.0.0.0/33"], "addresses or CIDR networks"),
        ("receive_modalities", ["SR"], "modality codes from"),
        ("max_instance_mb", 0, "> 0"),
        ("min_free_disk_mb", -1, ">= 0"),
        ("request_deadline_s", 0, "> 0"),
        ("max_query_results", 0, ">= 1 and <= 10000000"),
        ("max_change_pages", 0, ">= 1 and <= 1000000"),
        ("tls_cert", "/etc/site.pem", "set all three"),
        ("move_port", 70000, ">= 1 and <= 65535"),
    ],
)
def test_each_limit_names_what_is_valid(tmp_path: Path, key: str, value: object, valid: str) -> None:
    with pytest.raises(RadflowError, match=rf"pacs\.{key}.*{re.escape(valid)}"):
        pacs_settings(tmp_path, None, **{key: value})
