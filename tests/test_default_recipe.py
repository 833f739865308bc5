"""The default recipe holds the README's figure: `dvc repro` on a fresh clone with params.yaml exactly as
shipped (the full demo archive, every epoch, the real promotion gate), none of the SMALL_DEMO shortcuts
the other pipeline tests take to stay quick.

README.md ("Small data sets: what to expect") says the demo reaches test ROC-AUC ~0.99; the floor below
leaves room for the run-to-run spread of 60-odd test patients, not for a recipe that stopped learning.
About 3 minutes on 2 free cores.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.registry import Registry
from tests.project import make_project, run_ok

README_DEMO_FLOOR = 0.95  # README: "the demo: test ROC-AUC ~0.99"


@pytest.mark.slow
def test_the_default_demo_reaches_the_readme_figure_and_is_promoted(tmp_path: Path) -> None:
    project = make_project(tmp_path, overrides=())  # params.yaml as shipped
    # A bound on a stuck run, not a timing: 30 epochs took over an hour on 2 cores shared by 8 people.
    run_ok(["dvc", "repro"], project, timeout=4 * 3600)

    metrics = json.loads((project / "data/evaluation/metrics.json").read_text())
    assert metrics["roc_auc"] >= README_DEMO_FLOOR, metrics
    assert metrics["learned"] is True, metrics
    detail = json.loads((project / "data/evaluation/metrics_detail.json").read_text())
    assert detail["beats_baseline"] is True and detail["learning_warnings"] == [], detail

    promotion = json.loads((project / "data/promotion/promotion.json").read_text())  # the real gate
    assert promotion["promoted"] is True and promotion["version"] == 1, promotion
    champion = Registry(project / "registry").load("champion")
    assert champion.version == 1 and champion.metrics["roc_auc"] == metrics["roc_auc"]
