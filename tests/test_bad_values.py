"""Every params.yaml section refuses a bad value at the command line: one line that names the valid
choices (or the expected type), exit code 1, no traceback, and before the stage does any work.

One case per section; add yours here when a section gains a checked value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from flows.preflight import SECTIONS
from tests.defaults import repo_params

# (command line, a value written into params.yaml for the commands that take no --set, what the one
# line must say). Stages fail on their own section before reading inputs.
CASES: dict[str, tuple[list[str], tuple[str, str, Any] | None, str]] = {
    "seed": (
        ["stage", "preprocess", "--set", "seed=forty-two"],
        None,
        "seed: invalid value 'forty-two'; valid: an integer >= 0 and < 4294967296",
    ),
    "paths": (
        ["stage", "ingest", "--set", "paths.ingested=[1]"],
        None,
        "paths.ingested: invalid value [1]; valid: a folder",
    ),
    "demo": (["demo-data", "out"], ("demo", "patients", "many"), "demo.patients: invalid value 'many'"),
    "ingest": (
        ["stage", "ingest", "--set", "ingest.slice_strategy=diagonal"],
        None,
        "valid: middle | n | mip | all",
    ),
    "preprocess": (
        ["stage", "preprocess", "--set", "preprocess.image_size=big"],
        None,
        "preprocess.image_size: invalid value 'big'; valid: an integer >= 16",
    ),
    "train": (
        ["stage", "train", "--set", "train.optimizer=rmsprop"],
        None,
        "train.optimizer: invalid value 'rmsprop'; valid: adamw | sgd",
    ),
    "evaluate": (
        ["stage", "evaluate", "--set", "evaluate.threshold_method=best"],
        None,
        "valid: youden | target_sensitivity",
    ),
    "promote": (
        ["stage", "promote", "--set", "promote.primary_metric=f1"],
        None,
        "valid: roc_auc | pr_auc | accuracy | balanced_accuracy",
    ),
    "registry": (
        ["registry", "mirror"],
        ("registry", "mlflow_uri", "mlflow.db"),
        "registry.mlflow_uri: invalid value 'mlflow.db'; valid: an MLflow tracking URI",
    ),
    "predict": (
        ["predict", "out"],
        ("predict", "ood_margin", -0.5),
        "predict.ood_margin: invalid value -0.5; valid: a number >= 0",
    ),
    "retrain": (
        ["retrain"],
        ("retrain", "notify_on", ["sms"]),
        "retrain.notify_on: invalid value ['sms']; valid: a list of: failure | promotion",
    ),
    "pacs": (
        ["pull", "--set", "pacs.max_instances=0"],
        None,
        "pacs.max_instances: invalid value 0; valid: an integer >= 1",
    ),
    "monitor": (
        ["monitor", "--set", "monitor.alpha=2"],
        None,
        "monitor.alpha: invalid value 2; valid: a number > 0 and < 1",
    ),
    "study": (
        ["study"],
        ("study", "jobs", 0),
        "study.jobs: invalid value 0; valid: an integer >= 1",
    ),
}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The repository's params.yaml with every path under tmp_path, as the working directory."""
    params = repo_params()
    params["paths"] = {key: str(tmp_path / key) for key in params["paths"]}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_section_has_a_case() -> None:
    assert set(CASES) == {"seed", *SECTIONS}


@pytest.mark.parametrize("section", sorted(CASES))
def test_a_bad_value_is_one_line_and_exit_1(project: Path, section: str) -> None:
    command, in_file, expected = CASES[section]
    if in_file is not None:  # a command that takes no --set: the file carries the bad value
        name, key, value = in_file
        params = yaml.safe_load((project / "params.yaml").read_text())
        params[name][key] = value
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    before = sorted(project.rglob("*"))
    result = CliRunner().invoke(app, command)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert expected in lines[0]
    assert sorted(project.rglob("*")) == before  # nothing written, not even a folder
