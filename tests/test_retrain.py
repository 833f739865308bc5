"""The retrain flow's building blocks against a tiny throwaway DVC project (real git, real DVC): three
trivial stages whose commands are the scripts in tests/pipeline_scripts/ (tests/script_project.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.artifacts import champion_metrics, metrics_rows, promotion_markdown
from flows.dvc_stages import StageFailed, TransientStageFailure, run_stage, stage_order
from flows.lock import project_lock
from flows.retrain import apply_overrides
from flows.settings import retrain_params
from flows.summary import compare, snapshot
from flows.sync import sync_incoming
from models.registry.lock import registry_lock
from tasks.common.errors import RadflowError
from tests.defaults import REPO_ROOT, repo_params
from tests.script_project import STAGES, make_script_project


def _ready_for(tmp_path: Path, stage: str) -> Path:
    """A tiny project with the extra `stage`, its upstream stages (count, gate) already run."""
    project = make_script_project(tmp_path / "p", extra=(stage,))
    for upstream in ("count", "gate"):
        run_stage(upstream, project, print)
    return project


def test_stage_order_follows_dvc_dependencies(tmp_path: Path) -> None:
    project = make_script_project(tmp_path / "p", extra=("broken",))
    order = stage_order(project)
    assert order.index("count") < order.index("gate") < order.index("evaluate")
    assert order.index("gate") < order.index("broken")
    assert sorted(order) == sorted([*STAGES, "broken"])


def test_run_stage_streams_output_then_skips_when_unchanged(tmp_path: Path) -> None:
    project = make_script_project(tmp_path / "p")
    first: list[str] = []
    outcome = run_stage("count", project, first.append)
    assert not outcome.skipped
    assert "counted 1" in first
    second: list[str] = []
    assert run_stage("count", project, second.append).skipped
    assert any("didn't change" in line for line in second)


def test_deterministic_failure_carries_the_stage_message(tmp_path: Path) -> None:
    project = _ready_for(tmp_path, "broken")
    with pytest.raises(StageFailed) as failure:
        run_stage("broken", project, print)
    assert not isinstance(failure.value, TransientStageFailure)
    assert str(failure.value) == "stage 'broken' failed: step.factor must be positive; got -1"


def test_tempfail_exit_is_transient(tmp_path: Path) -> None:
    project = _ready_for(tmp_path, "flaky")
    with pytest.raises(TransientStageFailure, match="storage not ready"):
        run_stage("flaky", project, print)
    assert not run_stage("flaky", project, print).skipped  # the second attempt succeeds


def test_output_text_never_decides_a_retry(tmp_path: Path) -> None:
    project = _ready_for(tmp_path, "misleading")
    with pytest.raises(StageFailed) as failure:
        run_stage("misleading", project, print)
    assert not isinstance(failure.value, TransientStageFailure)


def test_a_registry_lock_timeout_is_transient(tmp_path: Path) -> None:
    project = make_script_project(tmp_path / "p", extra=("promote_by_hand",))
    with (
        registry_lock(project / "registry", timeout_s=1),
        pytest.raises(TransientStageFailure, match="locked"),
    ):
        run_stage("promote_by_hand", project, print)
    with pytest.raises(StageFailed) as failure:  # lock free: now the real, deterministic answer
        run_stage("promote_by_hand", project, print)
    assert not isinstance(failure.value, TransientStageFailure)
    assert "no registry version" in str(failure.value)


def test_too_many_quarantined_files_is_not_transient(tmp_path: Path) -> None:
    project = make_script_project(tmp_path / "p", extra=("ingest",))
    (project / "raw" / "normal").mkdir()
    for name in ("a.dcm", "b.png", "c.nii.gz"):
        (project / "raw" / "normal" / name).write_bytes(b"damaged beyond repair")
    with pytest.raises(StageFailed) as failure:
        run_stage("ingest", project, print)
    assert not isinstance(failure.value, TransientStageFailure)
    assert "max_failed_fraction" in str(failure.value)


def test_overrides_are_written_like_dvc_exp_run_and_validated(tmp_path: Path) -> None:
    project = make_script_project(tmp_path / "p")
    params = apply_overrides(project, ["train.epochs=5"])
    assert params["train"]["epochs"] == 5
    text = (project / "params.yaml").read_text()
    assert "epochs: 5" in text and text.startswith("# tiny project")  # comments survive
    with pytest.raises(RadflowError, match="valid keys"):
        apply_overrides(project, ["train.epochss=5"])


def test_sync_copies_new_and_changed_files_atomically(tmp_path: Path) -> None:
    incoming, archive = tmp_path / "incoming", tmp_path / "archive"
    (incoming / "week2").mkdir(parents=True)
    (incoming / "week2" / "a.dcm").write_bytes(b"new study")
    (incoming / "same.dcm").write_bytes(b"same")
    (incoming / ".partial-upload").write_bytes(b"someone else's temp file")
    archive.mkdir()
    (archive / "same.dcm").write_bytes(b"same")
    report = sync_incoming(incoming, archive, settle_s=0)
    assert (report.new, report.updated, report.unchanged) == (1, 0, 1)
    assert (archive / "week2" / "a.dcm").read_bytes() == b"new study"
    assert sorted(p.name for p in archive.rglob("*")) == ["a.dcm", "same.dcm", "week2"]  # no temp names
    (incoming / "same.dcm").write_bytes(b"corrected")
    assert sync_incoming(incoming, archive, settle_s=0).updated == 1
    assert "a.dcm" not in report.describe()  # counts only: file names may carry identifiers
    fresh = sync_incoming(incoming, archive, settle_s=3600, now=time.time())
    assert fresh.settling == 2 and fresh.new == 0
    with pytest.raises(RadflowError, match="not found"):
        sync_incoming(tmp_path / "missing", archive, settle_s=0)


def test_lock_admits_one_holder_at_a_time(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, pathlib; from flows.lock import project_lock\n"
            "with project_lock(pathlib.Path(sys.argv[1]), 0) as held:\n"
            "    print(held, flush=True); time.sleep(30)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "True"
        with project_lock(tmp_path, wait_s=0.5) as held:
            assert held is False
    finally:
        holder.kill()
        holder.wait()
    with project_lock(tmp_path, wait_s=5) as held:  # the kernel freed it when the holder died
        assert held is True


@pytest.mark.slow  # six real `dvc repro` runs
def test_summary_reports_lock_change_and_metric_diff(tmp_path: Path) -> None:
    project = make_script_project(tmp_path / "p")
    for stage in STAGES:
        run_stage(stage, project, print)
    before = snapshot(project)
    (project / "raw" / "study2.txt").write_text("22")
    for stage in STAGES:
        run_stage(stage, project, print)
    summary = compare(before, snapshot(project), ran=STAGES, skipped=[], pushed=False)
    assert summary.lock_changed
    assert summary.metric_changes["roc_auc"] == (0.02, 0.06)
    assert "| roc_auc | 0.0200 | 0.0600 | +0.0400 |" in summary.markdown()
    assert "`radflow registry tag --push`" in summary.markdown()  # how to publish the champion
    unchanged = compare(before, before, ran=[], skipped=STAGES, pushed=False)
    assert not unchanged.lock_changed and "nothing changed" in unchanged.markdown()


def test_artifact_content_from_promotion_record(tmp_path: Path) -> None:
    promotion = {"promoted": False, "reasons": ["AUC 0.80 below champion 0.85 - 0.02"], "champion_before": 3}
    text = promotion_markdown(promotion)
    assert "**Not promoted**" in text and "below champion" in text and "Champion before this run: `3`" in text
    assert "No promotion decision" in promotion_markdown({})
    assert champion_metrics(tmp_path / "no-registry", promotion) == {}  # unreadable registry: empty column
    assert champion_metrics(tmp_path, {"promoted": True, "champion_before": None}) == {}
    rows = metrics_rows({"roc_auc": 0.9, "ci.low": 0.8}, {"roc_auc": 0.85})
    assert rows == [{"metric": "roc_auc", "this run": 0.9, "previous champion": 0.85}]
    assert "New registry version: `2`" in promotion_markdown({"promoted": True, "version": 2})


def test_retrain_section_is_strict() -> None:
    params = repo_params()
    assert retrain_params(params).retries == params["retrain"]["retries"]
    with pytest.raises(RadflowError, match="no section 'retrain'"):
        retrain_params({})
    with pytest.raises(RadflowError, match="valid keys"):
        retrain_params({"retrain": {**params["retrain"], "retry": 3}})
    with pytest.raises(RadflowError, match=r"valid: a list of: failure \| promotion$"):
        retrain_params({"retrain": {**params["retrain"], "notify_on": ["success"]}})
