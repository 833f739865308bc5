"""Every params.yaml section refuses a bad value at the command line: one line that names the valid
choices (or the expected type), exit code 1, no traceback, and before the stage does any work.

One case per section; add yours here when a section gains a checked value.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from tests.defaults import repo_params

# (command line, what the one line must say). Stages fail on their own section before reading inputs.
CASES = {
    "seed": (
        ["stage", "preprocess", "--set", "seed=forty-two"],
        "seed: expected an integer, got 'forty-two'",
    ),
    "paths": (["stage", "ingest", "--set", "paths.ingested=[1]"], "paths.ingested: expected Path"),
    "demo": (
        ["demo-data", "out", "--set-demo-patients-in-params"],
        "demo.patients: expected int, got 'many'",
    ),
    "ingest": (
        ["stage", "ingest", "--set", "ingest.slice_strategy=diagonal"],
        "valid choices: ['middle', 'n', 'mip', 'all']",
    ),
    "preprocess": (["stage", "preprocess", "--set", "preprocess.image_size=big"], "expected int, got 'big'"),
    "train": (["stage", "train", "--set", "train.optimizer=rmsprop"], "valid choices: ['adamw', 'sgd']"),
    "evaluate": (
        ["stage", "evaluate", "--set", "evaluate.threshold_method=best"],
        "valid choices: ['youden', 'target_sensitivity']",
    ),
    "promote": (
        ["stage", "promote", "--set", "promote.primary_metric=f1"],
        "valid choices: ['roc_auc', 'pr_auc', 'accuracy', 'balanced_accuracy']",
    ),
    "retrain": (["retrain", "--set", "retrain.notify_on=[sms]"], "valid choices: ['failure', 'promotion']"),
    "study": (["study", "nosuch"], "unknown study 'nosuch'; studies in params.yaml: alexnet_classic"),
}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The repository's params.yaml with every path under tmp_path, as the working directory."""
    params = repo_params()
    params["paths"] = {key: str(tmp_path / key) for key in params["paths"]}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("section", sorted(CASES))
def test_a_bad_value_is_one_line_and_exit_1(project: Path, section: str) -> None:
    command, expected = CASES[section]
    if "--set-demo-patients-in-params" in command:  # demo-data takes no --set: the file carries it
        params = yaml.safe_load((project / "params.yaml").read_text())
        params["demo"]["patients"] = "many"
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        command = command[:2]
    result = CliRunner().invoke(app, command)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert expected in lines[0]
    assert not any(
        path.exists() for path in (project / "ingested", project / "preprocessed", project / "out")
    )
