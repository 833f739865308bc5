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
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    runner = CliRunner()
    unknown = runner.invoke(app, ["stage", "bogus"])
    assert unknown.exit_code == 1 and "valid stages: ingest, preprocess" in unknown.output
    typo = runner.invoke(app, ["stage", "train", "--set", "train.epoch=1"])
    assert typo.exit_code == 1 and "unknown key 'epoch'" in typo.output
    assert "Traceback" not in unknown.output + typo.output
