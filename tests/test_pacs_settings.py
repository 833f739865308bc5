"""The `pacs` settings, Part 10 writing and `radflow receive` as a process (no PACS server needed)."""

from __future__ import annotations

import io
import os
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
        "ftp://x/y": "not understood; valid forms",
        "dimse://10.1.2.3:104": "not understood",
        "https://user:pw@pacs.example/dicom-web": "must not carry credentials",
    }.items():
        with pytest.raises(RadflowError, match=message):
            endpoint(pacs_settings(tmp_path, bad))
    with pytest.raises(RadflowError, match=r"pacs\.url is not set"):
        endpoint(pacs_settings(tmp_path, None))


def test_settings_are_checked_strictly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = "http://127.0.0.1:8042/dicom-web"
    with pytest.raises(RadflowError, match="unknown DICOM keyword 'Modality_In_Study'"):
        pacs_settings(tmp_path, url, filters={"Modality_In_Study": "CR"})
    with pytest.raises(RadflowError, match="not an AE title"):
        pacs_settings(tmp_path, url, calling_aet="A" * 17)
    with pytest.raises(RadflowError, match="valid choices: \\['get', 'move'\\]"):
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
    assert "receive: 1 instance(s) stored, 0 failed" in stderr
    assert PLANTED.patient_id not in stderr and PLANTED.sop_uid not in stderr
    (stored,) = (tmp_path / "incoming").rglob("*.dcm")
    assert pydicom.dcmread(stored).SOPInstanceUID == PLANTED.sop_uid
