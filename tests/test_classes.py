"""The negative class: `auto` recognises the usual names in any case, a bad value names the valid
choices, and the preprocess stage refuses it before it writes anything (so never after training)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from tasks.common.classes import resolve_negative_class
from tasks.common.errors import RadflowError
from tests.defaults import repo_params
from tests.test_preprocess import write_ingested


@pytest.mark.parametrize(
    ("classes", "negative"),
    [
        (["NORMAL", "PNEUMONIA"], "NORMAL"),  # Kaggle chest X-ray
        (["Atelectasis", "Effusion", "No_Finding"], "No_Finding"),  # NIH ChestX-ray14
        (["clear", "nodule"], "clear"),
        (["Healthy", "tumour"], "Healthy"),
        (["negative", "positive"], "negative"),
        (["effusion", "normal", "opacity"], "normal"),  # the demo
    ],
)
def test_auto_finds_the_negative_class(classes: list[str], negative: str) -> None:
    assert resolve_negative_class("auto", classes) == negative


def test_a_named_class_matches_exactly_then_ignoring_case() -> None:
    assert resolve_negative_class("normal", ["NORMAL", "PNEUMONIA"]) == "NORMAL"
    assert resolve_negative_class("PNEUMONIA", ["NORMAL", "PNEUMONIA"]) == "PNEUMONIA"


@pytest.mark.parametrize(
    ("setting", "classes", "message"),
    [
        (
            "normal",
            ["clear", "nodule"],
            r"none found; set evaluate\.negative_class to one of \['clear', 'nodule'\]",
        ),
        ("auto", ["cat", "dog"], r"a class named like normal / negative .* none found"),
        ("auto", ["healthy", "normal", "sick"], r"several match: \['healthy', 'normal'\]"),
        (3, ["a", "b"], r"expected a class name, got 3; valid: \['auto', 'a', 'b'\]"),
    ],
)
def test_a_bad_value_names_the_valid_choices(setting: object, classes: list[str], message: str) -> None:
    with pytest.raises(RadflowError, match=message):
        resolve_negative_class(setting, classes)


def test_preprocess_refuses_a_negative_class_the_labels_lack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = repo_params()
    params["paths"] = {key: str(tmp_path / key) for key in params["paths"]}
    params["preprocess"]["image_size"] = 32
    params["evaluate"]["negative_class"] = "healthy"  # the archive's classes: normal, effusion, pneumonia
    write_ingested(Path(params["paths"]["ingested"]))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["stage", "preprocess"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "evaluate.negative_class 'healthy'" in result.output
    assert "['effusion', 'normal', 'pneumonia']" in result.output.replace("\n", "")
    assert not Path(params["paths"]["preprocessed"]).exists()  # refused before any work
    ok = CliRunner().invoke(app, ["stage", "preprocess", "--set", "evaluate.negative_class=auto"])
    assert ok.exit_code == 0, ok.output
