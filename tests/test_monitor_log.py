"""The prediction log: append-only JSON lines that survive a torn write and concurrent writers, rotate by
month and size, and are filled by `radflow predict` with pseudonymised ids only."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from tasks.common.data_profile import STATISTICS
from tasks.common.operating import OperatingPoint
from tasks.demo_data.synth import chest_image
from tasks.monitor import log
from tasks.predict import predict_files
from tests.dicom_factory import identity, write_dicom
from tests.leakscan import planted_identifiers, scan_for_identifiers
from tests.tiny_pipeline import CLASSES, SIZE, profiled_config, project_params, register_tiny_champion

DECEMBER = datetime(2026, 12, 7, tzinfo=UTC)


def test_a_torn_last_line_is_skipped_and_the_next_entries_stay_whole(tmp_path: Path) -> None:
    folder = tmp_path / "log"
    written = log.append(folder, [{"n": 1}], max_bytes=2**20, now=DECEMBER)
    with open(written, "ab") as handle:  # a writer killed mid-line
        handle.write(b'{"n": 2, "half')
    log.append(folder, [{"n": 3}, {"n": 4}], max_bytes=2**20, now=DECEMBER)
    contents = log.read(folder)
    assert [entry["n"] for entry in contents.entries] == [1, 3, 4] and contents.torn_lines == 1
    assert stat.S_IMODE(written.stat().st_mode) == 0o600  # operator-only


def test_files_rotate_by_month_and_size(tmp_path: Path) -> None:
    folder = tmp_path / "log"
    for n in range(3):  # each file is full after one entry
        log.append(folder, [{"n": n}], max_bytes=5, now=DECEMBER)
    log.append(folder, [{"n": 3}], max_bytes=5, now=datetime(2027, 1, 2, tzinfo=UTC))
    names = sorted(path.name for path in folder.iterdir())
    assert names == [
        "predictions-2026-12.002.jsonl", "predictions-2026-12.003.jsonl", "predictions-2026-12.jsonl",
        "predictions-2027-01.jsonl",
    ]  # fmt: skip
    assert [entry["n"] for entry in log.read(folder).entries] == [0, 1, 2, 3]  # write order
    assert [entry["n"] for entry in log.read(folder, since_month="2027-01").entries] == [3]


WRITER = """
import sys
from pathlib import Path
from tasks.common.operating import OperatingPoint
from tasks.monitor import log
for n in range(50):
    log.append(Path(sys.argv[1]), [{"worker": int(sys.argv[2]), "n": n, "pad": "x" * 500}], max_bytes=2**30)
"""


def test_concurrent_writers_never_interleave(tmp_path: Path) -> None:
    folder = tmp_path / "log"
    workers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(worker)]) for worker in range(4)
    ]
    assert [process.wait(timeout=120) for process in workers] == [0] * 4
    contents = log.read(folder)
    assert contents.torn_lines == 0 and len(contents.entries) == 200
    for worker in range(4):
        assert [e["n"] for e in contents.entries if e["worker"] == worker] == list(range(50))


def test_predict_fills_the_log_without_identifiers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADFLOW_SALT", "test-salt-not-secret-salt-for-tests-32-bytes-long")
    params = project_params(tmp_path)
    rng = np.random.default_rng(1)
    config = profiled_config(params, rng)
    operating = OperatingPoint(CLASSES, "normal", 0.5).to_dict()
    register_tiny_champion(
        params, tmp_path / "candidate", config=config, metrics={"operating_point": operating}
    )
    inputs = tmp_path / "inputs"
    who = identity(patient_name="DOE^SECRET", patient_id="SECRET-ID-1")
    write_dicom(inputs / "SECRET-ID-1" / "chest.dcm", chest_image(SIZE, "normal", rng), who=who,
                Manufacturer="ACME Imaging", PixelSpacing=[0.18, 0.18])  # fmt: skip
    write_dicom(inputs / "SECRET-ID-1" / "ct.dcm", chest_image(SIZE, "normal", rng), who=who, modality="CT")
    (inputs / "broken.dcm").write_bytes(b"not a dicom file")  # no image: no arrival
    predict_files([inputs], params=params, model="champion", out=tmp_path / "p.csv", gradcam_dir=None)

    folder = log.log_folder(Path(params["paths"]["private"]))
    entries = {entry["modality"]: entry for entry in log.read(folder).entries}
    assert set(entries) == {"DX", "CT"}
    chest, ct = entries["DX"], entries["CT"]
    assert chest["out_of_distribution"] is False and ct["out_of_distribution"] is True
    assert chest["manufacturer"] == "ACME Imaging" and chest["spacing_band"] == "0.15-0.2"
    assert chest["abnormal_log_odds"] == pytest.approx(np.log(2)) and chest["model_version"] == "v1"
    assert chest["abnormal"] is True and chest["predicted_label"] == "effusion"
    assert ct["abnormal_log_odds"] is None and ct["abnormal"] is None  # refused, not classified
    assert set(chest["statistics"]) == set(STATISTICS) and None not in chest["statistics"].values()
    assert chest["patient_id"].startswith("P-") and chest["study_id"].startswith("S-")
    assert datetime.fromisoformat(chest["arrived"]).tzinfo is not None
    planted = planted_identifiers(inputs) | {str(inputs), "chest.dcm"}
    assert scan_for_identifiers([folder], planted) == []
    assert all(json.loads(line) for path in folder.iterdir() for line in path.read_text().splitlines())
