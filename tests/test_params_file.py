"""`--set` writes change exactly the lines they set in the real params.yaml, comments and all."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest

from flows.params_file import write_overrides
from tasks.common.errors import RadflowError
from tasks.common.params import load_params
from tests.defaults import REPO_PARAMS


def changed_lines(before: str, after: str) -> list[str]:
    diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    return [line for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def test_only_the_set_lines_change_and_comments_stay(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    shutil.copy(REPO_PARAMS, path)
    before = path.read_text()
    overrides = [
        "train.epochs=4",
        "train.norm=lrn",
        "seed=7",
        "retrain.dvc_remote=storage",
        "ingest.max_failed_fraction=0.25",
    ]
    write_overrides(path, overrides)
    after = path.read_text()
    changed = changed_lines(before, after)
    assert len(changed) == 2 * len(overrides), changed  # one line out, one line in, per override
    added = [line for line in changed if line.startswith("+")]
    assert any(
        line.startswith("+  epochs: 4 ") and "# passes over the training split" in line for line in added
    )
    assert any(line.startswith("+seed: 7 ") and "# global seed" in line for line in added)
    assert load_params(path) == load_params(REPO_PARAMS, overrides=overrides)


def test_a_key_in_another_section_is_not_touched(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("a:\n  size: 1  # a's size\nb:\n  size: 2  # b's size\n")
    write_overrides(path, ["b.size=5"])
    assert path.read_text() == "a:\n  size: 1  # a's size\nb:\n  size: 5  # b's size\n"


def test_a_value_it_cannot_place_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("a:\n  items:\n    - 1\n    - 2\n")
    with pytest.raises(RadflowError, match="edit the file by hand"):
        write_overrides(path, ["a.items=[3]"])
    assert path.read_text() == "a:\n  items:\n    - 1\n    - 2\n"
