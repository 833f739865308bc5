"""A model that did not learn is never silent in Prefect: a markdown artifact with the reasons and a
Completed flow state named NotLearned (or Warning when only the data is too thin)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.testing.utilities import prefect_test_harness

from flows.artifacts import NOT_LEARNED, WARNING, WARNINGS_KEY, warning_state, warnings_markdown
from tasks.common.paths import project_paths
from tests.tiny_pipeline import project_params

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


async def published(key: str) -> list[dict[str, Any]]:
    """Artifacts with this key, read from the REST API (this server rejects the client's null filters)."""
    async with get_client() as client:
        body = {"artifacts": {"key": {"any_": [key]}}, "limit": 10, "offset": 0}
        return (await client._client.post("/artifacts/filter", json=body)).json()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("record", "name", "message"),
    [
        (NOT_LEARNED_RECORD, NOT_LEARNED, "test ROC-AUC 0.480 is near chance (below 0.55); the val split"),
        ({"learned": True, "data_warnings": ["tiny val"]}, WARNING, "tiny val"),
        ({}, "Completed", None),  # nothing to warn about: the flow's own result, no artifact
    ],
)
def test_flow_ends_in_a_named_completed_state(tmp_path: Path, record: dict, name: str, message: str) -> None:
    paths = project_paths(project_params(tmp_path))
    paths.evaluation.mkdir(parents=True)
    (paths.evaluation / "metrics.json").write_text(json.dumps({"learned": record.get("learned")}))
    (paths.evaluation / "metrics_detail.json").write_text(json.dumps(record))

    @flow
    def finish() -> object:
        return warning_state(Path("/"), paths, {"ran": []}) or {"ran": []}

    with prefect_test_harness(server_startup_timeout=300):
        state = finish(return_state=True)
        artifacts = asyncio.run(published(WARNINGS_KEY))
    assert state.is_completed() and state.name == name
    assert [artifact["data"] for artifact in artifacts] == ([warnings_markdown(record)] if message else [])
    assert state.message == message or (message is not None and message in str(state.message))
