"""A model that did not learn is never silent in Prefect: the real `radflow retrain` flow ends in a
Completed state named NotLearned (or Warning when only the data is too thin) with the reasons as its
message, and publishes them as a markdown artifact; with nothing to warn about, a plain Completed state
and no such artifact.

The flow runs on the tiny script project (tests/script_project.py) against a real Prefect server; its
evaluate stage writes the evaluation record each case gives, and each case states the state and the
artifact text a reader must see for that record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flows.artifacts import NOT_LEARNED, WARNING, WARNINGS_KEY, warnings_markdown
from tests.prefect_runs import flow_runs, inspect_run, new_run, retrain
from tests.script_project import make_script_project

NOT_LEARNED_RECORD = {
    "learned": False,
    "learning_warnings": ["test ROC-AUC 0.480 is near chance (below 0.55)"],
    "data_warnings": ["the val split holds 4 negative and 8 abnormal images"],
}


def test_warnings_markdown_names_the_verdict_and_every_reason() -> None:
    text = warnings_markdown(NOT_LEARNED_RECORD)
    assert text.startswith("## The model did not learn")
    assert "- test ROC-AUC 0.480 is near chance" in text and "- the val split holds 4" in text
    thin = warnings_markdown({"learned": True, "learning_warnings": [], "data_warnings": ["tiny val"]})
    assert thin.startswith("## Read these numbers with care")
    assert warnings_markdown({"learned": True, "learning_warnings": [], "data_warnings": []}) == ""
    assert warnings_markdown({}) == ""  # an evaluation that never ran: nothing to say


@pytest.mark.slow
@pytest.mark.parametrize(
    ("record", "name", "message", "artifact"),
    [
        (
            NOT_LEARNED_RECORD,
            NOT_LEARNED,
            "test ROC-AUC 0.480 is near chance (below 0.55); the val split holds 4 negative and 8 abnormal "
            "images",
            "## The model did not learn\n\n- test ROC-AUC 0.480 is near chance (below 0.55)\n"
            "- the val split holds 4 negative and 8 abnormal images\n",
        ),
        (
            {"learned": True, "learning_warnings": [], "data_warnings": ["tiny val"]},
            WARNING,
            "tiny val",
            "## Read these numbers with care\n\n- tiny val\n",
        ),
        ({"learned": True, "learning_warnings": [], "data_warnings": []}, "Completed", None, None),
    ],
    ids=["not-learned", "thin-data", "nothing-to-say"],
)
def test_the_retrain_flow_ends_in_the_state_its_evaluation_calls_for(
    prefect_server: str,
    tmp_path: Path,
    record: dict[str, Any],
    name: str,
    message: str | None,
    artifact: str | None,
) -> None:
    project = make_script_project(tmp_path / "project")
    headline = {"learned": record["learned"]}  # metrics.json holds `learned`; the reasons are detail
    detail = {key: value for key, value in record.items() if key != "learned"}
    (project / "evaluation.json").write_text(json.dumps({"headline": headline, "detail": detail}))

    seen = flow_runs(prefect_server)
    run = retrain(project, prefect_server)
    assert run.returncode == 0, run.stderr[-3000:]
    shown = inspect_run(prefect_server, new_run(prefect_server, seen))
    state = shown["state"]
    assert state.is_completed() and state.name == name, (state.name, state.message)
    if message is None:
        assert WARNINGS_KEY not in shown["artifacts"]
    else:
        assert state.message == message
        assert shown["artifact_data"][WARNINGS_KEY] == artifact
        assert any(f"evaluation warnings: {message}" in line for line in shown["logs"])
