"""`radflow predict` decodes through the same isolated workers as ingest: a damaged file costs itself.

With other files beside it, the damaged one gets a row with its reason and the others are classified;
alone, it makes predict exit 1 with that reason in one line, and no decoder output on the terminal.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tasks.ingest.decode import FAULT_ENV
from tasks.predict import predict_files
from tests.defaults import write_params
from tests.dicom_factory import identity, write_dicom
from tests.fault.codec_cases import damaged
from tests.project import run
from tests.tiny_pipeline import project_params, register_tiny_champion

pytestmark = pytest.mark.fault

NOISE = ("fault hook", "panicked at", "RUST_BACKTRACE", "Traceback", "Fatal Python error")


@pytest.fixture
def damaged_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, Path]:
    """A registry with a champion, params pointing at it, and `inputs/`: one good and two bad files."""
    monkeypatch.setenv("RADFLOW_SALT", "predict-faults-salt-for-tests-32-bytes-long")
    params = project_params(tmp_path)
    register_tiny_champion(params, tmp_path / "candidate")
    write_params(tmp_path, params)
    inputs = tmp_path / "inputs"
    write_dicom(inputs / "good.dcm", who=identity(sop_uid="1.2.826.0.1.3680043.8.498.51"))
    write_dicom(inputs / "victim.dcm", who=identity(sop_uid="1.2.826.0.1.3680043.8.498.52"))
    damaged("rle", inputs / "rle.dcm", "1.2.826.0.1.3680043.8.498.53")
    return params, inputs


def test_damaged_files_get_their_reason_and_the_rest_is_classified(
    damaged_inputs: tuple[dict, Path], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    params, inputs = damaged_inputs
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
def test_a_lone_damaged_file_fails_predict_with_its_reason(damaged_inputs: tuple[dict, Path]) -> None:
    _, inputs = damaged_inputs
    result = run(
        ["radflow", "predict", str(inputs / "rle.dcm"), "--out", "p.csv"], inputs.parent, timeout=300
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "no input could be classified" in output and "RLE decoder panicked" in output
    assert [noise for noise in NOISE if noise in output] == [], output
