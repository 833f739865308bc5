"""Against a real Orthanc: `radflow receive` takes pushed studies, `predict --push` sends result reports
back, and `radflow retrain` pulls first (and fails with the reason when the PACS is down)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from pynetdicom import AE

from tasks.common.errors import EX_TEMPFAIL, RadflowError
from tasks.common.params import load_params
from tasks.pacs.push import push_predictions
from tasks.pacs.receive import Receiver
from tasks.predict import predict_files
from tests.defaults import repo_params, write_params
from tests.dicom_factory import ramp, write_plain
from tests.leakscan import planted_identifiers, scan_for_identifiers
from tests.orthanc import AUTH, PACS_AET, PASSWORD, USER, Orthanc
from tests.pacs_helpers import DIGITAL_XRAY, STUDY_ROOT, pacs_settings, pulled, study_files, study_uid
from tests.prefect_runs import retrain
from tests.script_project import make_script_project
from tests.tiny_pipeline import project_params, register_tiny_champion


def test_receive_stores_pushed_studies_from_allowed_aes_only(pacs: Orthanc, tmp_path: Path) -> None:
    sent = study_files(tmp_path / "sent", 21, series=2)
    pacs.upload(sent)
    incoming = tmp_path / "incoming"
    # Orthanc knows radflow as RADFLOW at 127.0.0.1:move_port: listen there, accepting only ORTHANC.
    options = {"receive_aets": [PACS_AET], "receive_port": pacs.move_port}
    settings = pacs_settings(tmp_path, pacs.dicomweb_url, **options)
    receiver = Receiver(settings, incoming, tmp_path / "conflicts")
    try:
        (study,) = cast(list[str], pacs.get("/studies"))  # one study
        response = requests.post(
            f"{pacs.rest}/modalities/radflow/store",
            json={"Resources": [study], "Synchronous": True},
            auth=(USER, PASSWORD),
            timeout=60,
        )
        assert response.ok, response.text
        stranger = AE(ae_title="STRANGER")
        stranger.add_requested_context(DIGITAL_XRAY)
        association = stranger.associate("127.0.0.1", pacs.move_port, ae_title="RADFLOW")
        assert association.is_rejected  # an AE not in pacs.receive_aets cannot store
    finally:
        receiver.stop()
    files = sorted(incoming.rglob("*.dcm"))
    assert receiver.stored == 4 and receiver.refused == 0 and len(files) == 4
    assert {pydicom.dcmread(p).SOPInstanceUID for p in files} == {
        pydicom.dcmread(p).SOPInstanceUID for p in sent
    }
    assert all(p.read_bytes()[128:132] == b"DICM" for p in files)
    assert not any(STUDY_ROOT in str(p) for p in files)
    assert not [p for p in incoming.rglob(".*") if p.is_file()]


def report_items(report: Dataset) -> dict[str, Any]:
    """Concept name -> value for every item of an SR content tree (codes by meaning, numbers, text)."""
    items: dict[str, Any] = {}
    for item in report.get("ContentSequence", []):
        name = item.ConceptNameCodeSequence[0].CodeMeaning
        if item.ValueType == "CODE":
            items[name] = item.ConceptCodeSequence[0].CodeMeaning
        elif item.ValueType == "NUM":
            items[name] = float(item.MeasuredValueSequence[0].NumericValue)
        elif item.ValueType == "TEXT":
            items[name] = item.TextValue
        items |= report_items(item)
    return items


@pytest.mark.parametrize("transport", ["dicomweb", "dimse"])
def test_predict_push_sends_one_report_per_study_into_the_pacs(
    pacs: Orthanc,
    tmp_path: Path,
    transport: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RADFLOW_SALT", "test-salt-not-secret-salt-for-tests-32-bytes-long")
    params = project_params(tmp_path)
    params["pacs"].update({"url": pacs.dicomweb_url if transport == "dicomweb" else pacs.dimse_url})
    # The constant model: p = 1/3 per class, so the abnormal score is 2/3.
    register_tiny_champion(params, tmp_path / "candidate", metrics={"threshold": 0.7})
    inputs = tmp_path / "inputs"
    sources = study_files(inputs, 31, per_series=2) + study_files(inputs, 32, per_series=1)
    pacs.upload(sources)
    write_plain(inputs / "photo.png", ramp(16, 16, 255, np.uint8))
    predictions = predict_files(
        [inputs], params=params, model="champion", out=tmp_path / "p.csv", gradcam_dir=None
    )
    summary = push_predictions(predictions, params, "champion")
    assert (summary.reports, summary.skipped_files) == (2, 1)
    client = DICOMwebClient(pacs.dicomweb_url, session=_session())
    for study in (31, 32):
        series = client.search_for_series(study_uid(study), search_filters={"Modality": "SR"})
        assert len(series) == 1  # a new series of the source study
        series_uid = series[0]["0020000E"]["Value"][0]
        (instance,) = client.search_for_instances(study_uid(study), series_uid)
        report = client.retrieve_instance(study_uid(study), series_uid, instance["00080018"]["Value"][0])
        assert report.StudyInstanceUID == study_uid(study) and report.PatientID == f"PID8{study:06d}"
        items = report_items(report)
        assert items["Finding"] == "normal"  # the decision at the threshold, as predict wrote it
        assert items["Probability of abnormal finding"] == pytest.approx(2 / 3, abs=1e-3)
        assert items["Operating threshold"] == pytest.approx(0.7)
        assert items["Decision at operating threshold"] == "Normal"
        assert items["Algorithm Version"] == "v1" and items["Algorithm Name"] == "radflow alexnet"
        assert items["Comment"] == "NOT FOR DIAGNOSTIC USE"
    logs = capfd.readouterr()
    planted = planted_identifiers(inputs)
    # The reports went to the PACS only: no identifier in any log line or in the project's data folders.
    assert not scan_for_identifiers([Path(params["paths"]["registry"])], planted, [logs.out, logs.err])


def test_a_pacs_that_does_not_know_our_ae_aborts_the_store_and_we_say_so(
    pacs: Orthanc, tmp_path: Path
) -> None:
    from tasks.pacs.dimse import DimseTransport
    from tasks.pacs.settings import endpoint

    ds = pydicom.dcmread(study_files(tmp_path, 33)[0])
    unknown = pacs_settings(tmp_path, pacs.dimse_url, calling_aet="STRANGER")
    transport = DimseTransport(endpoint(unknown), unknown)
    with pytest.raises(RadflowError, match="STRANGER") as caught:
        transport.store(ds)
    assert "aborted the store without a status" in str(caught.value)
    transport.close()


def _session() -> requests.Session:
    session = requests.Session()
    session.auth = (USER, PASSWORD)
    return session


@pytest.fixture(scope="module")
def prefect_in_pacs_network(orthanc: Orthanc, prefect_server: str) -> str:
    """The module's Prefect server, started after (so inside the network namespace of) its Orthanc:
    requesting `orthanc` first decides that order."""
    return prefect_server


@pytest.mark.slow
def test_retrain_pulls_first_and_fails_with_the_reason_when_the_pacs_is_down(
    pacs: Orthanc, prefect_in_pacs_network: str, tmp_path: Path
) -> None:
    project = make_script_project(tmp_path / "project", retrain={"retries": 1, "retry_delay_s": 0.2})
    pacs_section = repo_params(f"pacs.url={pacs.dicomweb_url}")["pacs"]  # the tiny project has none
    params = load_params(project / "params.yaml") | {"pacs": pacs_section}
    write_params(project, params)
    pacs.upload(study_files(tmp_path / "sent", 41))
    run = retrain(project, prefect_in_pacs_network, RADFLOW_PACS_AUTH=AUTH)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "pull: 2 new, 0 already held, 0 failed" in run.stdout + run.stderr
    assert len(pulled(project)) == 2
    # the operator points params.yaml at a PACS that is down (a run's --set may not change pacs.*)
    write_params(project, params | {"pacs": pacs_section | {"url": "dimse://ORTHANC@127.0.0.1:9"}})
    down = retrain(project, prefect_in_pacs_network, RADFLOW_PACS_AUTH=AUTH)
    output = down.stdout + down.stderr
    assert down.returncode == EX_TEMPFAIL, output  # still down after the retries: try again later
    assert output.count("is unreachable") >= 2  # first attempt, the retry, and the run's own error
    assert "error: PACS dimse://ORTHANC@127.0.0.1:9 is unreachable" in down.stderr
    planted = planted_identifiers(tmp_path / "sent")
    assert not scan_for_identifiers([], planted, [run.stdout, run.stderr, output, json.dumps(params)])
