"""Property-based: for every key of every section, a value of the wrong type or outside the declared range
(drawn by hypothesis from what the class declares) is refused with one line that names the key, repeats
the value and says what is valid. Then the values from issue #23 at the command line: exit 1, that line,
no traceback, and no file of the project touched."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from flows.cli import app
from tasks.common.errors import RadflowError
from tasks.common.params import Seed, describe, load_params, parse_section, valid_text
from tests.defaults import REPO_PARAMS, repo_params, write_params
from tests.params_schema import SECTIONS, Arm, accepts_type, arms, fields_of
from tests.tiny_pipeline import make_store, project_params, save_candidate, train_tiny

CASES = [(name, key) for name, cls in SECTIONS.items() for key in fields_of(cls)]
ANY_VALUE = st.one_of(
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.none(),
)
NOT_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])


def out_of_range(arm: Arm) -> st.SearchStrategy[Any] | None:
    """Values of `arm`'s own type that its bounds, choices, pattern or length refuse (None: no such)."""
    parts: list[st.SearchStrategy[Any]] = []
    if arm.kind is int:
        if arm.low is not None:
            parts.append(st.integers(max_value=int(arm.low) - 1 if arm.low_inclusive else int(arm.low)))
        if arm.high is not None:
            parts.append(st.integers(min_value=int(arm.high) + 1 if arm.high_inclusive else int(arm.high)))
    elif arm.kind is float:
        parts.append(NOT_FINITE)
        if arm.low is not None:
            parts.append(st.floats(max_value=arm.low, exclude_max=arm.low_inclusive, allow_nan=False))
        if arm.high is not None:
            parts.append(st.floats(min_value=arm.high, exclude_min=arm.high_inclusive, allow_nan=False))
    elif arm.kind == "literal":
        parts.append(st.text(max_size=12).filter(lambda value: value not in arm.choices))
    elif arm.kind is str and arm.pattern is not None:
        pattern = re.compile(arm.pattern)
        parts.append(st.text(max_size=20).filter(lambda value: not pattern.search(value)))
    elif arm.kind is str and arm.min_length:
        parts.append(st.text(max_size=arm.min_length - 1))
    elif arm.kind is list and arm.item is not None:
        item = out_of_range(arm.item)
        if item is not None:
            parts.append(st.lists(item, min_size=1, max_size=3))
    return st.one_of(parts) if parts else None


def bad_values(name: str, key: str) -> st.SearchStrategy[Any]:
    field_arms = arms(fields_of(SECTIONS[name])[key])
    wrong_type = ANY_VALUE.filter(lambda value: not any(accepts_type(arm, value) for arm in field_arms))
    ranges = [strategy for arm in field_arms if (strategy := out_of_range(arm)) is not None]
    return st.one_of(wrong_type, *ranges)


@pytest.fixture(scope="module")
def defaults() -> dict[str, Any]:
    return repo_params()


@pytest.mark.parametrize(("name", "key"), CASES, ids=[f"{n}.{k}" for n, k in CASES])
@settings(
    max_examples=12, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_bad_value_is_one_line_naming_the_key_and_what_is_valid(
    defaults: dict[str, Any], name: str, key: str, data: st.DataObject
) -> None:
    value = data.draw(bad_values(name, key), label=f"{name}.{key}")
    params = {name: {**defaults[name], key: value}}
    with pytest.raises(RadflowError) as error:
        parse_section(params, name, SECTIONS[name])
    valid = valid_text(fields_of(SECTIONS[name])[key])
    assert str(error.value) == f"{name}.{key}: invalid value {value!r}; valid: {valid}"
    assert valid and "\n" not in valid and "pydantic" not in valid


@settings(max_examples=25, deadline=None, database=None)
@given(
    seed=st.one_of(
        st.integers(max_value=-1),
        st.integers(min_value=2**32),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
        st.text(st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=8),
    )
)
def test_a_bad_seed_is_one_line(seed: Any) -> None:
    raw = json.dumps(seed)  # JSON is YAML: the override reads back this value
    if yaml.safe_load(raw) != seed or type(yaml.safe_load(raw)) is not type(seed):
        return  # a text YAML reads as a number or a boolean: not the value drawn
    with pytest.raises(RadflowError) as error:
        load_params(REPO_PARAMS, overrides=[f"seed={raw}"])
    assert str(error.value) == f"seed: invalid value {seed!r}; valid: {describe(Seed)}"


# The values issue #23 found accepted or crashing with a traceback, one `radflow stage` run each.
ISSUE_VALUES = {
    "train.dropout=1.5": "train.dropout: invalid value 1.5; valid: a number >= 0 and < 1",
    "train.batch_size=0": "train.batch_size: invalid value 0; valid: an integer >= 1",
    "train.hidden_units=0": "train.hidden_units: invalid value 0; valid: an integer >= 1",
    "train.epochs=-1": "train.epochs: invalid value -1; valid: an integer >= 1",
    "train.learning_rate=-1": "train.learning_rate: invalid value -1; valid: a number > 0 and <= 1, or auto",
    "evaluate.bootstrap_samples=-5": "evaluate.bootstrap_samples: invalid value -5; valid: an integer >= 10",
    "promote.min_roc_auc=7": "promote.min_roc_auc: invalid value 7; valid: a number >= 0 and <= 1",
}


@pytest.fixture(scope="module")
def tiny_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project each stage could start on: a preprocessed store and a candidate model."""
    root = tmp_path_factory.mktemp("project")
    params = project_params(root)
    write_params(root, params)
    make_store(Path(params["paths"]["preprocessed"]))
    save_candidate(
        train_tiny(Path(params["paths"]["preprocessed"]), steps=0, seed=0), Path(params["paths"]["model"])
    )
    return root


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(path): (path.stat().st_size, path.stat().st_mtime_ns) for path in sorted(root.rglob("*"))}


@pytest.mark.parametrize("override", sorted(ISSUE_VALUES))
def test_the_stage_stops_before_any_work(
    tiny_project: Path, override: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tiny_project)
    stage = override.split(".")[0]
    before = snapshot(tiny_project)
    result = CliRunner().invoke(app, ["stage", stage, "--set", override])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert lines == [f"error: {ISSUE_VALUES[override]}"], result.output
    assert snapshot(tiny_project) == before
