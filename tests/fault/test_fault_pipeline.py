"""The whole pipeline on an archive seeded with identifiers of every kind, then two promotions at once.

`dvc repro` runs in a throwaway project whose ingest source is the demo archive plus the values from
`tests.fault.planted` (free text, extra names, NIfTI/PNG metadata, identifying folder and file names).
Every output past raw data — stage folders, registry, DVC metrics/plots, the HTML report, dvc.lock,
the captured logs and the Prefect artifacts' content — is scanned for every planted value. Then a copy
of the project and the original promote against one shared registry at the same moment: both finish,
nothing is corrupted.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from models.registry import Registry
from tests.fault.planted import plant, planted_values, without_common_words
from tests.leakscan import planted_identifiers, scan_for_identifiers
from tests.project import SMALL_DEMO, edit_params, make_project, run_ok, tool_env

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.timeout(1500)]

ARCHIVE = "data/archive"  # the ingest source: demo files + planted ones (raw data, not scanned)
NOT_SCANNED = ("raw", "private", "archive")  # raw inputs and the operator-only folder


@pytest.fixture(scope="module")
def planted_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A project after `dvc repro` over the planted archive; returns it with the run's combined log."""
    project = make_project(tmp_path_factory.mktemp("leaks"), (*SMALL_DEMO, f"ingest.source={ARCHIVE}"))
    run_ok(["dvc", "repro", "demo_data"], project)
    shutil.copytree(project / "data/raw", project / ARCHIVE)
    plant(project / ARCHIVE)
    return project, run_ok(["dvc", "repro"], project)


def _identifiers(project: Path) -> set[str]:
    return without_common_words(planted_identifiers(project / ARCHIVE)) | planted_values()


def test_planted_files_reach_the_pipeline(planted_project: tuple[Path, str]) -> None:
    project, _ = planted_project
    linkage = (project / "private/linkage.csv").read_text()
    for name in ("WINTERBOTHAM.dcm", "NIFTIPAT8812345.nii.gz", "PUDDLEGLUM.png"):
        assert name in linkage  # the planted files were ingested, so their values were really exposed


def test_no_planted_identifier_leaves_the_archive(planted_project: tuple[Path, str]) -> None:
    project, log = planted_project
    identifiers = _identifiers(project)
    assert len(identifiers) > 60
    outputs = [path for path in (project / "data").iterdir() if path.name not in NOT_SCANNED]
    assert {path.name for path in outputs} >= {"ingested", "preprocessed", "model", "evaluation", "promotion"}
    assert (project / "data/evaluation/report/report.html").is_file()
    artifacts = _artifact_texts(project)
    roots = [*outputs, project / "registry", project / "dvc.lock"]
    assert scan_for_identifiers(roots, identifiers, [log, *artifacts]) == []


def _artifact_texts(project: Path) -> list[str]:
    """The Prefect artifacts `radflow retrain` would publish for this run, rendered by flows.artifacts."""
    from flows.artifacts import (
        champion_metrics,
        metrics_rows,
        promotion_markdown,
        read_json,
        warnings_markdown,
    )
    from flows.summary import flatten_numbers
    from tasks.common.record import read_record

    record = read_record(project / "data/evaluation")
    metrics = flatten_numbers(record)
    promotion = read_json(project / "data/promotion/promotion.json")
    assert metrics and promotion
    rows = metrics_rows(metrics, champion_metrics(project / "registry", promotion))
    return [json.dumps(rows), promotion_markdown(promotion), warnings_markdown(record)]


def test_source_paths_stay_in_the_private_folder(planted_project: tuple[Path, str]) -> None:
    project, log = planted_project
    archive = project / ARCHIVE
    relative = {str(p.relative_to(archive)) for p in archive.rglob("*") if p.is_file()} - {"labels.csv"}
    folders = {str(p.relative_to(archive)) for p in archive.rglob("*") if p.is_dir()}
    markers = {value for value in relative | folders if len(value) >= 12}  # e.g. MRN4200001/20221116
    outputs = [path for path in (project / "data").iterdir() if path.name not in NOT_SCANNED]
    assert scan_for_identifiers([*outputs, project / "registry"], markers, [log]) == []
    assert any(value in (project / "private/linkage.csv").read_text() for value in markers)


def test_two_projects_promote_into_one_registry_at_once(
    planted_project: tuple[Path, str], tmp_path: Path
) -> None:
    project, _ = planted_project
    shared = project / "registry"
    twin = tmp_path / "twin"
    shutil.copytree(project, twin, symlinks=True)
    edit_params(twin, f"paths.registry={shared}")
    before = len(Registry(shared).audit_log())

    runs = [
        subprocess.Popen(
            ["radflow", "stage", "promote"], cwd=folder, env=tool_env(), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )
        for folder in (project, twin)
    ]  # fmt: skip
    outputs = [process.communicate(timeout=600)[0] for process in runs]
    assert [process.returncode for process in runs] == [0, 0], "\n".join(outputs)[-5000:]

    registry = Registry(shared)
    assert len(registry.audit_log()) == before + 2  # both decisions recorded, neither lost
    for row in registry.versions():
        registry.verify(row["version"])
    committed = [row["version"] for row in registry.versions()]
    assert registry.aliases()["champion"] == (max(committed) if committed else None)
    assert list(shared.glob(".staging-*")) == []
    assert scan_for_identifiers([shared], _identifiers(project), outputs) == []
