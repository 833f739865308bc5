"""`radflow pull` against a real Orthanc: DICOMweb and DIMSE, incremental, crash-safe, clear errors."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from tasks.common.errors import EX_TEMPFAIL
from tasks.ingest.settings import load_settings
from tasks.ingest.stage import run_ingest
from tasks.pacs.pull import run_pull
from tasks.pacs.state import STATE_FILE
from tests.defaults import write_params
from tests.http_gate import HttpGate
from tests.leakscan import planted_identifiers, scan_for_identifiers
from tests.orthanc import AUTH, Orthanc
from tests.pacs_helpers import pacs_params, pacs_settings, pulled, sop_uids, study_files, study_uid
from tests.project import tool_env


def pull(root: Path, url: str, **pacs: object) -> tuple[int, int, int, int]:
    """One in-process pull; (new, held, failed, left for next)."""
    settings = pacs_settings(root, url, **pacs)
    summary = run_pull(settings, root / "raw" / "pacs", root / "private", show_progress=False)
    return summary.new, summary.held, summary.failed, summary.left_for_next


def pull_cli(root: Path, url: str, *sets: str, auth: str = AUTH) -> subprocess.CompletedProcess[str]:
    """`radflow pull` as a user runs it, in a project folder whose params.yaml points at `url`."""
    write_params(root, pacs_params(root, url))
    command = ["radflow", "pull", *(arg for s in sets for arg in ("--set", s))]
    env = tool_env() | {"RADFLOW_PACS_AUTH": auth, "COLUMNS": "80"}
    return subprocess.run(
        command, cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_dicomweb_pull_writes_part10_files_and_a_second_pull_fetches_nothing(
    pacs: Orthanc, tmp_path: Path
) -> None:
    sent = study_files(tmp_path / "sent", 1, series=2) + study_files(tmp_path / "sent", 2)
    pacs.upload(sent)
    assert pull(tmp_path, pacs.dicomweb_url) == (6, 0, 0, 0)
    files = pulled(tmp_path)
    assert sop_uids(files) == sop_uids(sent)
    for path in files:
        raw = path.read_bytes()
        assert raw[128:132] == b"DICM" and raw[:128] == bytes(128)  # preamble + file meta: Part 10
        ds = pydicom.dcmread(path)
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        original = next(p for p in sent if pydicom.dcmread(p).SOPInstanceUID == ds.SOPInstanceUID)
        assert np.array_equal(ds.pixel_array, pydicom.dcmread(original).pixel_array)
        assert not any(uid in str(path) for uid in (ds.StudyInstanceUID, ds.SOPInstanceUID))  # opaque
    assert pull(tmp_path, pacs.dicomweb_url) == (0, 6, 0, 0)  # idempotent
    state = (tmp_path / "private" / STATE_FILE).read_text()
    assert study_uid(1) not in state and study_uid(2) not in state  # even the private state holds no UID


@pytest.mark.parametrize("retrieve", ["get", "move"])
def test_dimse_pull_finds_then_retrieves_by_uid(pacs: Orthanc, tmp_path: Path, retrieve: str) -> None:
    sent = study_files(tmp_path / "sent", 3, series=2, per_series=3)
    pacs.upload(sent)
    options = {"retrieve": retrieve, "move_port": pacs.move_port}
    assert pull(tmp_path, pacs.dimse_url, **options) == (6, 0, 0, 0)
    assert sop_uids(pulled(tmp_path)) == sop_uids(sent)
    # One more instance in an already pulled series: only it is fetched, by its UID.
    late = study_files(tmp_path / "late", 3, series=2, per_series=4)[-1]
    pacs.upload([late])
    assert pull(tmp_path, pacs.dimse_url, **options) == (1, 6, 0, 0)
    assert sop_uids(pulled(tmp_path)) == sop_uids([*sent, late])


def test_late_instances_and_old_dated_studies_arrive_on_the_next_pull(pacs: Orthanc, tmp_path: Path) -> None:
    pacs.upload(study_files(tmp_path / "sent", 4))
    assert pull(tmp_path, pacs.dicomweb_url)[0] == 2
    # Arriving after that pull: an instance of the (recent) study, and a study dated 2004 — found
    # by the change feed, since a StudyDate lookback window cannot see it.
    pacs.upload(study_files(tmp_path / "late", 4, per_series=3)[-1:])
    pacs.upload(study_files(tmp_path / "old", 5, study_date="20040102"))
    assert pull(tmp_path, pacs.dicomweb_url) == (3, 2, 0, 0)
    # Without a change feed (DIMSE), the lookback window finds late instances of recent studies; an
    # old-dated arrival needs lookback_days: null (re-query everything).
    dimse = tmp_path / "dimse"
    assert pull(dimse, pacs.dimse_url)[0] == 5
    pacs.upload(study_files(tmp_path / "late2", 4, per_series=4)[-1:])
    pacs.upload(study_files(tmp_path / "old2", 6, study_date="19990301"))
    assert pull(dimse, pacs.dimse_url) == (1, 3, 0, 0)
    assert pull(dimse, pacs.dimse_url, lookback_days=None) == (2, 6, 0, 0)


def test_the_per_run_cap_leaves_the_rest_for_the_next_pull(pacs: Orthanc, tmp_path: Path) -> None:
    pacs.upload(study_files(tmp_path / "sent", 7, series=2, per_series=3))
    assert pull(tmp_path, pacs.dicomweb_url, max_instances=4) == (4, 0, 0, 2)
    assert pull(tmp_path, pacs.dicomweb_url, max_instances=4) == (2, 4, 0, 0)
    assert len(pulled(tmp_path)) == 6


@pytest.mark.slow
def test_sigkill_mid_pull_leaves_whole_files_and_the_next_pull_completes(
    pacs: Orthanc, tmp_path: Path
) -> None:
    sent = [path for study in range(10, 40) for path in study_files(tmp_path / "sent", study, per_series=4)]
    pacs.upload(sent)
    # The pull reaches the PACS through a gate that lets 10 retrievals (WADO-RS, under /series/) through
    # and holds the 11th: the kill lands mid-pull however slow or fast the machine is.
    with HttpGate(
        pacs.rest, allow=10, match=lambda method, path: method == "GET" and "/series/" in path
    ) as gate:
        url = f"{gate.url}/dicom-web"
        project = write_params(tmp_path / "project", pacs_params(tmp_path / "project", url))
        env = tool_env() | {"RADFLOW_PACS_AUTH": AUTH}
        process = subprocess.Popen(["radflow", "pull"], cwd=project, env=env, stderr=subprocess.DEVNULL)
        # Bounds on a stuck test, not timings: the pull cannot pass the gate, so it is mid-run here.
        assert gate.held.wait(timeout=600), "the pull never reached its 11th retrieval"
        deadline = time.monotonic() + 600
        while len(pulled(project)) < 10 and time.monotonic() < deadline:  # the 10 it got, written
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    first = pulled(project)
    assert 10 <= len(first) < len(sent), "the pull was not caught half-way"
    for path in first:  # every file under its final name is whole
        assert pydicom.dcmread(path).pixel_array.shape == (32, 32)
    result = pull_cli(project, pacs.dicomweb_url)
    assert result.returncode == 0, result.stderr
    assert sop_uids(pulled(project)) == sop_uids(sent)
    assert not [p for p in (project / "raw").rglob(".*") if p.is_file()]  # leftovers removed
    assert f"pull: {len(sent) - len(first)} new, {len(first)} already held, 0 failed" in result.stderr


@pytest.mark.slow
def test_errors_are_one_line_and_say_what_happened(pacs: Orthanc, tmp_path: Path) -> None:
    pacs.upload(study_files(tmp_path / "sent", 8))
    # Refusals are final (exit 1); an unreachable PACS is worth another try later (exit 75, EX_TEMPFAIL).
    cases = {
        "wrong credentials": (pacs.dicomweb_url, (), "radflow:wrong", "refused authentication (HTTP 401)", 1),
        "unknown calling AE": (
            pacs.dimse_url,
            ("pacs.calling_aet=STRANGER",),
            AUTH,
            "aborted the C-FIND: it does not allow calling AE 'STRANGER'",
            1,
        ),
        "DICOMweb down": ("http://127.0.0.1:9/dicom-web", (), AUTH, "is unreachable", EX_TEMPFAIL),
        "DIMSE down": ("dimse://ORTHANC@127.0.0.1:9", (), AUTH, "is unreachable", EX_TEMPFAIL),
    }
    for case, (url, sets, auth, expected, status) in cases.items():
        result = pull_cli(tmp_path / case.replace(" ", "-"), url, *sets, auth=auth)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == status, (case, result.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], (case, lines)
        assert "Traceback" not in result.stderr


def test_pulled_studies_are_labelled_by_study_uid_and_nothing_identifying_leaves(
    pacs: Orthanc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RADFLOW_SALT", "pacs-test-salt-salt-for-tests-32-bytes-long")
    pacs.upload(study_files(tmp_path / "sent", 11, series=2) + study_files(tmp_path / "sent", 12))
    pacs.upload(study_files(tmp_path / "sent", 13))
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "labels.csv").write_text(
        f"study_uid,accession,label\n{study_uid(11)},,effusion\n,ACCN7000012,normal\n"
    )
    assert pull(tmp_path, pacs.dicomweb_url)[0] == 8
    params = pacs_params(tmp_path, pacs.dicomweb_url)
    run_ingest(load_settings(params), tmp_path / "ingested", tmp_path / "private")
    manifest = pd.read_csv(tmp_path / "ingested" / "manifest.csv", dtype=str, keep_default_na=False)
    assert sorted(manifest["label"]) == [
        "",
        "",
        "effusion",
        "effusion",
        "effusion",
        "effusion",
        "normal",
        "normal",
    ]
    planted = planted_identifiers(tmp_path / "sent")
    logs = capfd.readouterr()
    outputs = [tmp_path / "ingested", tmp_path / "private" / STATE_FILE]
    assert not scan_for_identifiers(outputs, planted, [logs.out, logs.err])
