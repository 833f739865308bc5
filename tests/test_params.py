"""params.yaml parsing: overrides must name existing keys; sections parse strictly into dataclasses."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from pydantic import Field
from typer.testing import CliRunner

from flows.cli import app
from tasks.common.errors import RadflowError
from tasks.common.params import Lax, apply_override, load_params, parse, section
from tests.defaults import REPO_ROOT


@section("s")
class Section:
    mode: Literal["full", "partial"]
    epochs: Annotated[int, Field(ge=1)]
    rate: Annotated[float, Field(gt=0, le=1)]
    path: Annotated[Path, Lax]
    tags: list[Literal["a", "b"]]
    limit: Annotated[int, Field(ge=0)] | None


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


def test_sections_parse_strictly_into_one_line_naming_what_is_valid() -> None:
    good = {"mode": "full", "epochs": 2, "rate": 1, "path": "data/x", "tags": ["a"], "limit": None}
    parsed = parse(good, Section)
    assert parsed == Section("full", 2, 1.0, Path("data/x"), ["a"], None)  # an int where a float goes
    assert isinstance(parsed.rate, float) and isinstance(parsed.path, Path)
    bad_cases: list[tuple[dict[str, Any], str]] = [
        ({"mode": "half"}, "s.mode: invalid value 'half'; valid: full | partial"),
        ({"epochs": "2"}, "s.epochs: invalid value '2'; valid: an integer >= 1"),
        ({"epochs": True}, "s.epochs: invalid value True; valid: an integer >= 1"),  # bool is not int
        ({"epochs": 2.0}, "s.epochs: invalid value 2.0; valid: an integer >= 1"),
        ({"epochs": 0}, "s.epochs: invalid value 0; valid: an integer >= 1"),
        ({"rate": True}, "s.rate: invalid value True; valid: a number > 0 and <= 1"),
        ({"rate": float("nan")}, "s.rate: invalid value nan; valid: a number > 0 and <= 1"),
        ({"rate": 1.5}, "s.rate: invalid value 1.5; valid: a number > 0 and <= 1"),
        ({"path": 3}, "s.path: invalid value 3; valid: a path"),
        ({"tags": ["a", "c"]}, "s.tags: invalid value ['a', 'c']; valid: a list of: a | b"),
        ({"limit": -1}, "s.limit: invalid value -1; valid: an integer >= 0, or null"),
        ({"extra": 1}, "s.extra: unknown key; valid keys: mode, epochs, rate, path, tags, limit"),
    ]
    for change, message in bad_cases:
        with pytest.raises(RadflowError) as error:
            parse({**good, **change}, Section)
        assert str(error.value) == message
    with pytest.raises(RadflowError, match=r"^s.epochs: missing; valid: an integer >= 1$"):
        parse({key: value for key, value in good.items() if key != "epochs"}, Section)
    with pytest.raises(RadflowError, match=r"^s: invalid value \[1\]; valid: a mapping of its keys \(mode, "):
        parse([1], Section)
    with pytest.raises(RadflowError, match=r"^s.epochs: invalid value -3; valid: an integer >= 1$"):
        dataclasses.replace(parsed, epochs=-3)  # a replaced value is checked like a parsed one
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.epochs = 3  # type: ignore[misc]


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
        (["--set", "ingest.workers=-1"], "ingest.workers: invalid value -1; valid: an integer >= 0"),
        (["--set", "ingest.labels=labels.txt"], "ingest.labels: invalid value 'labels.txt'; valid: folders"),
        (["--set", "ingest.max_failed_fraction=1.5"], "valid: a number >= 0 and <= 1"),
        (["--set", "ingest.patient_pattern=(?P<patient>x"], "not a valid regular expression"),
        (["--set", "ingest.slice_strategy=every"], "valid: middle | n | mip | all"),
        (["--set", "ingest.timeout_s=0"], "ingest.timeout_s: invalid value 0; valid: a number > 0"),
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
            RadflowError, match=f"^demo.{key}: invalid value {value}; valid: an integer >= [0-9]+$"
        ):
            parse({**good, key: value}, DemoParams)


def test_paths_must_be_folders_apart() -> None:
    from tasks.common.paths import ProjectPaths

    good = {name: f"data/{name}" for name in ProjectPaths.__dataclass_fields__}
    parse(good, ProjectPaths)
    for key, value, message in (
        (
            "model",
            "data/checkpoints/model",
            "paths.model: invalid value 'data/checkpoints/model'; valid: a folder apart from every other "
            "path (it is inside paths.checkpoints",
        ),
        ("registry", ".", "paths.registry: invalid value '.'; valid: a folder, not the project root"),
        (
            "private",
            "data/ingested",
            "'data/ingested'; valid: a folder apart from every other path (it is the same folder as "
            "paths.private",
        ),
    ):
        with pytest.raises(RadflowError, match=re.escape(message)):
            parse({**good, key: value}, ProjectPaths)
