"""`radflow retrain` on the REAL pipeline (small demo): two runs started at once, then a no-change run.

Everything is real: a Prefect server on 127.0.0.1, `radflow retrain` processes, DVC, git, the ML
stages and the model registry. tests/test_flows_e2e.py covers the same behaviour on a tiny
three-stage DVC project; this file checks that the real stages and the registry hold up under it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.artifacts import NOT_LEARNED, WARNINGS_KEY
from flows.dvc_stages import stage_order
from models.registry import Registry
from tasks.common.params import load_params
from tasks.common.paths import project_paths
from tests.prefect_runs import finish, flow_runs, inspect_run, new_run, start_retrain
from tests.project import SMALL_DEMO, make_project, run

pytestmark = pytest.mark.slow

# The input fixes the verdict, so the flow's end state is known: a loss bar no two-epoch run clears
# (99% below chance) makes the train stage say "did not learn"; the small demo's val split is too thin.
NOT_LEARNED_INPUT = "train.learned_min_loss_drop=0.99"


@pytest.fixture(scope="module")
def real_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh clone of the real project with the small demo (nothing run yet)."""
    return make_project(tmp_path_factory.mktemp("retrain-real"), (*SMALL_DEMO, NOT_LEARNED_INPUT))


def test_two_runs_at_once_one_runs_registry_intact_then_all_skipped(
    real_project: Path, prefect_server: str
) -> None:
    project, server = real_project, prefect_server
    seen = flow_runs(server)
    first, second = start_retrain(project, server), start_retrain(project, server)
    outputs = [finish(first), finish(second)]
    assert [first.returncode, second.returncode] == [0, 0], [text[-3000:] for text in outputs]

    ran = [text for text in outputs if "Running stage 'train'" in text]
    assert len(ran) == 1, [text[-3000:] for text in outputs]  # the stages ran exactly once
    (other,) = [text for text in outputs if text is not ran[0]]
    # lock_wait_s is 0: the other run is skipped at once (or, had it started after the first finished,
    # it would have found everything up to date).
    assert "holds the project lock" in other or "Running stage" not in other, other[-3000:]
    runs = [run for run_id, run in flow_runs(server).items() if run_id not in seen]
    assert len(runs) == 2
    # The run that trained ends Completed and named NotLearned, saying why, with the warnings artifact.
    names = sorted(str(flow_run.state_name) for flow_run in runs)
    assert names == [NOT_LEARNED, "Skipped"], names
    assert all(flow_run.state is not None and flow_run.state.is_completed() for flow_run in runs)
    (trained,) = [flow_run for flow_run in runs if flow_run.state_name == NOT_LEARNED]
    shown = inspect_run(server, trained)
    why = "training did not learn: training loss never fell 99% below chance level"
    assert why in str(shown["state"].message), shown["state"].message
    warnings = shown["artifact_data"][WARNINGS_KEY]
    assert warnings.startswith("## The model did not learn") and why in warnings, warnings
    assert "the val split holds" in warnings  # 24 patients: the data warning too

    # The registry survived: one version, the champion, every file matching its checksum.
    listed = run(["radflow", "registry", "list"], project, timeout=120)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    paths = project_paths(load_params(project / "params.yaml"))
    registry = Registry(project / paths.registry)
    assert [row["version"] for row in registry.versions()] == [1]
    registry.verify(1)
    champion = registry.load("champion")
    # ...and it is the run's candidate with the run's evaluation, not a leftover of the other run.
    evaluated = json.loads((project / paths.evaluation / "metrics.json").read_text())
    assert champion.version == 1 and champion.metrics["roc_auc"] == evaluated["roc_auc"]
    for name in ("model.safetensors", "config.json"):
        assert (champion.path / name).read_bytes() == (project / paths.model / name).read_bytes()

    # A third run with nothing changed: every stage is a Skipped task run, no stage command runs.
    seen = flow_runs(server)
    third = start_retrain(project, server)
    output = finish(third)
    assert third.returncode == 0, output[-3000:]
    assert "Running stage" not in output
    shown = inspect_run(server, new_run(server, seen))
    assert shown["state"].is_completed()
    stages = stage_order(project)
    assert {stage: shown["tasks"][stage].state.name for stage in stages} == dict.fromkeys(stages, "Skipped")
    assert [row["version"] for row in registry.versions()] == [1]
