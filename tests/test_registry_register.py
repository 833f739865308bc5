"""Registering on purpose (`radflow registry register`) and the readable `radflow registry show`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from models.registry import Registry
from models.registry.dvc_hashes import model_dir_md5
from tests.project import init_dvc_folder
from tests.tiny_pipeline import constant_model, register_tiny_champion, save_candidate, tiny_config

METRICS = {
    "roc_auc": 0.9,
    "pr_auc": 0.8,
    "sensitivity": 0.85,
    "specificity": 0.75,
    "threshold": 0.42,
    "ci": {"roc_auc": [0.8, 0.95], "sensitivity": [0.7, 0.95]},
}


@pytest.fixture
def evaluated_candidate(project_in_cwd: dict[str, Any], tmp_path: Path) -> tuple[Path, Registry]:
    """A champion v1, and an evaluated candidate in paths.model (the project is tmp_path)."""
    paths = project_in_cwd["paths"]
    save_candidate(constant_model(), Path(paths["model"]))
    evaluation = Path(paths["evaluation"])
    (evaluation / "report").mkdir(parents=True)
    (evaluation / "metrics.json").write_text(json.dumps(METRICS))
    (evaluation / "report" / "model_card.md").write_text("# Model card\n\n## Intended use\n\nResearch.\n")
    register_tiny_champion(project_in_cwd, tmp_path / "old", constant_model(seed=1), tiny_config(seed=1))
    return Path(paths["model"]), Registry(Path(paths["registry"]))


def test_register_by_hand_is_audited_and_optionally_champion(
    evaluated_candidate: tuple[Path, Registry],
) -> None:
    model_dir, registry = evaluated_candidate
    runner = CliRunner()
    kept = runner.invoke(app, ["registry", "register", str(model_dir), "--reason", "new classes, reviewed"])
    assert kept.exit_code == 0, kept.output
    assert [row["version"] for row in registry.versions()] == [1, 2]
    assert registry.aliases() == {"champion": 1, "previous": None}
    made = runner.invoke(app, ["registry", "register", str(model_dir), "--reason", "go live", "--champion"])
    assert made.exit_code == 0 and registry.aliases() == {"champion": 3, "previous": 1}
    entries = registry.audit_log()[-2:]
    assert [(e["event"], e["reason"], e["champion"]) for e in entries] == [
        ("registered_by_hand", "new classes, reviewed", False),
        ("registered_by_hand", "go live", True),
    ]
    decision = registry.show(3)["decision"]
    assert decision["manual"] is True and decision["champion_before"] == 1
    assert registry.load(3).metrics == METRICS  # the evaluate stage's records travel with it


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--reason", "  "], "--reason is required"),
        (["--reason", "x", "--champion", "--bogus"], "No such option"),
    ],
)
def test_register_refuses_without_a_reason(
    evaluated_candidate: tuple[Path, Registry], arguments: list[str], message: str
) -> None:
    model_dir, registry = evaluated_candidate
    result = CliRunner().invoke(app, ["registry", "register", str(model_dir), *arguments])
    assert result.exit_code != 0 and message in result.output
    assert len(registry.versions()) == 1


def test_register_refuses_a_missing_evaluation_or_model(
    evaluated_candidate: tuple[Path, Registry], tmp_path: Path
) -> None:
    model_dir, _ = evaluated_candidate
    runner = CliRunner()
    empty = runner.invoke(app, ["registry", "register", str(tmp_path / "nowhere"), "--reason", "x"])
    assert empty.exit_code == 1 and "no model in" in empty.output
    shutil.rmtree(tmp_path / "evaluation")
    result = runner.invoke(app, ["registry", "register", str(model_dir), "--reason", "x"])
    assert result.exit_code == 1 and "evaluation outputs missing" in result.output
    assert "Traceback" not in result.output


def test_register_refuses_an_evaluation_of_another_model(
    evaluated_candidate: tuple[Path, Registry], tmp_path: Path
) -> None:
    """dvc.lock says which model the evaluate stage scored; registering a different one is refused."""
    model_dir, registry = evaluated_candidate
    init_dvc_folder(tmp_path)
    evaluated = {"path": str(model_dir), "md5": "0" * 32 + ".dir", "hash": "md5"}  # as dvc.yaml names it
    lock = {"schema": "2.0", "stages": {"evaluate": {"cmd": "radflow stage evaluate", "deps": [evaluated]}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    refused = CliRunner().invoke(app, ["registry", "register", str(model_dir), "--reason", "x"])
    assert refused.exit_code == 1 and "evaluation of another model" in refused.output
    evaluated["md5"] = model_dir_md5(model_dir)
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    accepted = CliRunner().invoke(app, ["registry", "register", str(model_dir), "--reason", "x"])
    assert accepted.exit_code == 0, accepted.output
    assert registry.show(2)["decision"]["evaluation_matches_model"] is True


def test_show_prints_a_short_summary_and_json_on_request(evaluated_candidate: tuple[Path, Registry]) -> None:
    model_dir, _ = evaluated_candidate
    runner = CliRunner()
    runner.invoke(app, ["registry", "register", str(model_dir), "--reason", "reviewed", "--champion"])
    shown = runner.invoke(app, ["registry", "show"])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0] == "radflow registry v2  [champion]" and len(lines) < 20
    assert "effusion, normal, opacity" in shown.output
    assert "0.900 (95% CI 0.800-0.950)" in shown.output and "0.420" in shown.output
    assert "registered by hand: reviewed" in shown.output
    full = runner.invoke(app, ["registry", "show", "2", "--json"])
    assert json.loads(full.output)["metrics"] == METRICS
