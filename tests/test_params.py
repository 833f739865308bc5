"""params.yaml parsing: overrides must name existing keys; sections parse strictly into dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks.common.errors import RadflowError
from tasks.common.params import apply_override, from_dict, load_params
from tests.defaults import REPO_ROOT


@dataclass
class Inner:
    rate: float


@dataclass
class Section:
    mode: Literal["full", "partial"]
    epochs: int
    path: Path
    inner: Inner
    tags: list[str] = field(default_factory=list)
    limit: int | None = None


def test_overrides_parse_yaml_scalars_and_refuse_unknown_keys() -> None:
    params = {"train": {"epochs": 8, "weights": "none"}}
    apply_override(params, "train.epochs=3")
    apply_override(params, "train.weights=registry:champion")
    assert params == {"train": {"epochs": 3, "weights": "registry:champion"}}
    with pytest.raises(RadflowError, match=r"unknown key 'epoch'; valid keys: \['epochs', 'weights'\]"):
        apply_override(params, "train.epoch=3")
    with pytest.raises(RadflowError, match="no section 'trian'"):
        apply_override(params, "trian.epochs=3")
    with pytest.raises(RadflowError, match=r"SECTION\.KEY=VALUE"):
        apply_override(params, "train.epochs")


def test_sections_parse_strictly() -> None:
    good = {"mode": "full", "epochs": 2, "path": "data/x", "inner": {"rate": 1}, "tags": ["a"]}
    parsed = from_dict(good, Section, where="s")
    assert parsed == Section("full", 2, Path("data/x"), Inner(1.0), ["a"], None)
    bad_cases = [
        ({**good, "mode": "half"}, r"s.mode: invalid value 'half'; valid choices: \['full', 'partial'\]"),
        ({**good, "epochs": "2"}, "s.epochs: expected int"),
        ({**good, "epochs": True}, "s.epochs: expected int"),
        ({**good, "inner": {"rate": "fast"}}, "s.inner.rate: expected float"),
        ({**good, "extra": 1}, r"unknown key\(s\) \['extra'\]"),
        ({key: value for key, value in good.items() if key != "epochs"}, "missing 1 required"),
        ({**good, "limit": "many"}, "s.limit"),
    ]
    for data, message in bad_cases:
        with pytest.raises(RadflowError, match=message):
            from_dict(data, Section, where="s")


def test_missing_params_file_names_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(RadflowError, match="not found"):
        load_params(tmp_path / "params.yaml")


def test_cli_turns_user_errors_into_a_message_and_exit_code_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)
    runner = CliRunner()
    unknown = runner.invoke(app, ["stage", "bogus"])
    assert unknown.exit_code == 1 and "valid stages: ingest, preprocess" in unknown.output
    typo = runner.invoke(app, ["stage", "train", "--set", "train.epoch=1"])
    assert typo.exit_code == 1 and "unknown key 'epoch'" in typo.output
    assert "Traceback" not in unknown.output + typo.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--set", "ingest.workers=-1"], "ingest.workers: invalid value -1; valid: 0 (one per CPU core)"),
        (["--set", "ingest.labels=labels.txt"], "ingest.labels: invalid value 'labels.txt'; valid: folders"),
        (["--set", "ingest.max_failed_fraction=1.5"], "valid: a fraction from 0 to 1"),
        (["--set", "ingest.patient_pattern=(?P<patient>x"], "not a valid regular expression"),
        (["--set", "ingest.slice_strategy=every"], "valid choices: ['middle', 'n', 'mip', 'all']"),
        (
            ["--set", "ingest.timeout_s=0"],
            "ingest.timeout_s: invalid value 0.0; valid: a number of seconds > 0",
        ),
        (["--set", "paths.private=data/ingested/private"], "paths.private: invalid value"),
    ],
)
def test_bad_ingest_and_paths_values_stop_the_stage_before_any_work(
    arguments: list[str], message: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(REPO_ROOT)
    ingest = ["--set", f"ingest.source={tmp_path}"]  # were a check missed, the stage would read this
    result = CliRunner().invoke(app, ["stage", "ingest", *ingest, *arguments])
    output = " ".join(result.output.split())  # the console wraps long lines
    assert result.exit_code == 1 and message in output and "Traceback" not in output
    assert list(tmp_path.iterdir()) == []


def test_bad_demo_values_are_one_line_naming_what_is_valid(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tasks.demo_data import DemoParams

    monkeypatch.chdir(REPO_ROOT)
    result = CliRunner().invoke(app, ["demo-data", str(tmp_path / "raw"), "--patients", "1"])
    output = " ".join(result.output.split())
    assert result.exit_code == 1 and "demo.patients: invalid value 1; valid: an integer >= 3" in output
    assert not (tmp_path / "raw").exists()
    good = {"patients": 10, "images_per_patient": 2, "image_size": 64, "nifti_volumes": 0}
    for key, value in (("images_per_patient", 0), ("image_size", 8), ("nifti_volumes", -1)):
        with pytest.raises(
            RadflowError, match=f"demo.{key}: invalid value {value}; valid: an integer"
        ) as error:
            from_dict({**good, key: value}, DemoParams, where="demo")
        assert "\n" not in str(error.value)


def test_paths_must_be_folders_apart() -> None:
    from tasks.common.paths import ProjectPaths

    good = {name: f"data/{name}" for name in ProjectPaths.__dataclass_fields__}
    from_dict(good, ProjectPaths, where="paths")
    for key, value, message in (
        (
            "model",
            "data/checkpoints/model",
            "paths.model: invalid value 'data/checkpoints/model': it is inside",
        ),
        ("registry", ".", "paths.registry: invalid value '.'; valid: a folder, not the project root"),
        (
            "private",
            "data/ingested",
            "'data/ingested': it is the same folder as paths.private",
        ),
    ):
        with pytest.raises(RadflowError, match=message):
            from_dict({**good, key: value}, ProjectPaths, where="paths")
