"""`radflow predict` decodes through the same isolated workers as ingest: a damaged file costs itself.

With other files beside it, the damaged one gets a row with its reason and the others are classified;
alone, it makes predict exit 1 with that reason in one line, and no decoder output on the terminal.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from models.registry import Registry
from tasks.ingest.decode import FAULT_ENV
from tasks.predict import predict_files
from tests.dicom_factory import identity, write_dicom
from tests.fault.codec_cases import damaged
from tests.project import run
from tests.tiny_pipeline import constant_model, project_params, save_candidate

pytestmark = pytest.mark.fault

NOISE = ("fault hook", "panicked at", "RUST_BACKTRACE", "Traceback", "Fatal Python error")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, Path]:
    """A registry with a champion, params pointing at it, and `inputs/`: one good and two bad files."""
    monkeypatch.setenv("RADFLOW_SALT", "predict-faults")
    params = project_params(tmp_path)
    save_candidate(constant_model(), tmp_path / "candidate")
    Registry(Path(params["paths"]["registry"])).register_champion(
        tmp_path / "candidate", metrics={}, model_card="", lineage={}, decision={}
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    inputs = tmp_path / "inputs"
    write_dicom(inputs / "good.dcm", who=identity(sop_uid="1.2.826.0.1.3680043.8.498.51"))
    write_dicom(inputs / "victim.dcm", who=identity(sop_uid="1.2.826.0.1.3680043.8.498.52"))
    damaged("rle", inputs / "rle.dcm", "1.2.826.0.1.3680043.8.498.53")
    return params, inputs


def test_damaged_files_get_their_reason_and_the_rest_is_classified(
    project: tuple[dict, Path], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    params, inputs = project
    monkeypatch.setenv(FAULT_ENV, "decode-segfault:victim.dcm")
    out = inputs.parent / "predictions.csv"
    predict_files([inputs], params=params, model="champion", out=out, gradcam_dir=None)
    rows = pd.read_csv(out, keep_default_na=False).set_index("source_path")
    assert rows.loc[str(inputs / "good.dcm"), "status"] == "ok"
    for name, reason in (("victim.dcm", "decoder crashed:"), ("rle.dcm", "RLE decoder panicked:")):
        assert rows.loc[str(inputs / name), "status"] == "quarantined"
        assert rows.loc[str(inputs / name), "reason"].startswith(reason)
    output = "".join(capfd.readouterr())
    assert [noise for noise in NOISE if noise in output] == [], output


@pytest.mark.slow
def test_a_lone_damaged_file_fails_predict_with_its_reason(project: tuple[dict, Path]) -> None:
    _, inputs = project
    result = run(
        ["radflow", "predict", str(inputs / "rle.dcm"), "--out", "p.csv"], inputs.parent, timeout=300
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "no input could be classified" in output and "RLE decoder panicked" in output
    assert [noise for noise in NOISE if noise in output] == [], output
