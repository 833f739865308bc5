"""`radflow retrain` on the REAL pipeline (small demo): two runs started at once, then a no-change run.

Everything is real: a Prefect server on 127.0.0.1, `radflow retrain` processes, DVC, git, the ML
stages and the model registry. tests/test_flows_e2e.py covers the same behaviour on a tiny
three-stage DVC project; this file checks that the real stages and the registry hold up under it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.dvc_stages import stage_order
from flows.server import background_server, free_port
from models.registry import Registry
from tasks.common.params import load_params
from tasks.common.paths import project_paths
from tests.project import make_project, run, tool_env
from tests.test_flows_e2e import SERVER_START_TIMEOUT_S, flow_runs, inspect_run, new_run

pytestmark = pytest.mark.slow

RUN_TIMEOUT_S = 900  # one small real pipeline on a busy 2-core machine


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prefect server on loopback with its database in tmp; always stopped afterwards."""
    home = tmp_path_factory.mktemp("prefect-server")
    with background_server(home, "127.0.0.1", free_port(), timeout_s=SERVER_START_TIMEOUT_S) as url:
        yield url


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh clone of the real project with the small demo (nothing run yet)."""
    return make_project(tmp_path_factory.mktemp("retrain-real"))


def retrain_process(project: Path, api_url: str) -> subprocess.Popen[str]:
    """A `radflow retrain` process as the scheduler or a user would start it, output merged."""
    env = {
        **tool_env(),
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(project.parent / "prefect-client"),
        "COLUMNS": "200",  # keep DVC's "Running stage" lines on one line in Prefect's console log
    }
    return subprocess.Popen(
        ["radflow", "retrain"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> str:
    """Wait for a retrain process; returns its combined output."""
    try:
        return process.communicate(timeout=RUN_TIMEOUT_S)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()[0]


def test_two_runs_at_once_one_runs_registry_intact_then_all_skipped(project: Path, server: str) -> None:
    seen = flow_runs(server)
    first, second = retrain_process(project, server), retrain_process(project, server)
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
    # The run that trained ends Completed, named for the evaluation's warnings when it has some (two
    # epochs on 24 patients: a validation split too small, likely a model that did not learn).
    names = sorted(str(flow_run.state_name) for flow_run in runs)
    assert names[1] == "Skipped" and names[0] in ("Completed", "Warning", "NotLearned"), names
    assert all(flow_run.state is not None and flow_run.state.is_completed() for flow_run in runs)

    # The registry survived: one version, the champion, every file matching its checksum.
    listed = run(["radflow", "registry", "list"], project, timeout=120)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    registry = Registry(project / project_paths(load_params(project / "params.yaml")).registry)
    assert [row["version"] for row in registry.versions()] == [1]
    registry.verify(1)
    champion = registry.load("champion")
    assert champion.version == 1 and 0.0 <= champion.metrics["roc_auc"] <= 1.0

    # A third run with nothing changed: every stage is a Skipped task run, no stage command runs.
    seen = flow_runs(server)
    third = retrain_process(project, server)
    output = finish(third)
    assert third.returncode == 0, output[-3000:]
    assert "Running stage" not in output
    shown = inspect_run(server, new_run(server, seen))
    assert shown["state"].is_completed()
    stages = stage_order(project)
    assert {stage: shown["tasks"][stage].state.name for stage in stages} == dict.fromkeys(stages, "Skipped")
    assert [row["version"] for row in registry.versions()] == [1]
