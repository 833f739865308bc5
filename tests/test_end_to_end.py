"""The real pipeline, end to end: `dvc repro` on a small generated demo archive, in a fresh project."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from models.registry import Registry
from tests.leakscan import planted_identifiers, scan_for_identifiers
from tests.project import make_project, run, run_ok

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A project after one full `dvc repro`; returns it with the run's combined log."""
    project = make_project(tmp_path_factory.mktemp("e2e"))
    return project, run_ok(["dvc", "repro"], project)


def test_repro_writes_metrics_and_registers_the_candidate_as_champion(reproduced: tuple[Path, str]) -> None:
    project, _ = reproduced
    metrics = json.loads((project / "data/evaluation/metrics.json").read_text())
    assert 0.0 <= metrics["roc_auc"] <= 1.0 and 0.0 <= metrics["baseline_roc_auc"] <= 1.0
    detail = json.loads((project / "data/evaluation/metrics_detail.json").read_text())
    assert 0.0 <= detail["accuracy"] <= 1.0

    shown = run(["dvc", "metrics", "show", "--json"], project)
    assert shown.returncode == 0, shown.stderr
    workspace = json.loads(shown.stdout)[""]["data"]  # revision "" is the workspace
    dvc_metrics = workspace["data/evaluation/metrics.json"]["data"]
    assert dvc_metrics["roc_auc"] == metrics["roc_auc"]  # DVC finds the test ROC-AUC under `roc_auc`
    table = run(["dvc", "metrics", "show"], project)  # evaluation's headline: one row, no per-class/subgroups
    rows = [line for line in table.stdout.splitlines() if line.startswith("data/evaluation/metrics.json")]
    assert table.returncode == 0 and len(rows) == 1 and "baseline_roc_auc" in table.stdout
    assert "subgroups" not in table.stdout and "per_class" not in table.stdout

    promotion = json.loads((project / "data/promotion/promotion.json").read_text())
    assert promotion["promoted"] is True and promotion["version"] == 1
    champion = Registry(project / "registry").load("champion")  # checksums verified
    assert champion.version == 1 and champion.metrics["roc_auc"] == metrics["roc_auc"]
    for name in ("model.safetensors", "config.json"):  # the registered weights are the trained candidate
        assert (champion.path / name).read_bytes() == (project / "data/model" / name).read_bytes()
    assert run_ok(["radflow", "registry", "show", "champion"], project).startswith("radflow registry v1")


def test_every_raw_file_is_used_or_quarantined_with_a_reason(reproduced: tuple[Path, str]) -> None:
    project, _ = reproduced
    raw = project / "data/raw"
    linkage = pd.read_csv(project / "private/linkage.csv")
    quarantine = pd.read_csv(project / "private/quarantine.csv")
    assert quarantine["reason"].fillna("").str.len().gt(0).all()
    accounted = set(linkage["source_path"]) | set(quarantine["source_path"])
    data_files = {str(p.relative_to(raw)) for p in raw.rglob("*") if p.is_file() and p.name != "labels.csv"}
    assert data_files - accounted == set()
    assert len(quarantine[quarantine["disposition"] == "quarantined"]) >= 3  # the demo's broken files


def test_second_repro_does_nothing(reproduced: tuple[Path, str]) -> None:
    project, _ = reproduced
    result = run(["dvc", "repro"], project, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Running stage" not in result.stdout
    status = run(["dvc", "status"], project, timeout=120)
    assert "up to date" in status.stdout


def test_no_identifier_leaves_the_raw_archive(reproduced: tuple[Path, str]) -> None:
    project, log = reproduced
    identifiers = planted_identifiers(project / "data/raw")
    assert len(identifiers) > 20  # the demo really plants names, IDs, dates, UIDs
    outputs = [p for p in (project / "data").iterdir() if p.name != "raw"]
    hits = scan_for_identifiers([*outputs, project / "registry", project / "dvc.lock"], identifiers, [log])
    assert hits == []
