"""A tiny throwaway DVC project (real git, real DVC) whose stages are the scripts in tests/pipeline_scripts/.

Three trivial stages (count -> gate -> evaluate) plus optional extra ones, so the retrain flow's tests
exercise DVC's real ordering, skipping and error reporting without the ML stages. The scripts are real
files, linted like all code.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.defaults import repo_params

SCRIPTS = Path(__file__).parent / "pipeline_scripts"  # the stage commands

# Listed out of order on purpose: the flow must follow DVC's dependency order, not the file's.
DVC_YAML = """
stages:
  evaluate:
    cmd: python scripts/evaluate.py
    deps: [out/gate.txt, scripts/evaluate.py]
    outs: [out/evaluation/report, out/promotion]
    metrics: [{out/evaluation/metrics.json: {cache: false}}]
  count:
    cmd: python scripts/count.py
    deps: [raw, scripts/count.py]
    params: [step]
    outs: [out/count.txt]
  gate:
    cmd: python scripts/gate.py
    deps: [out/count.txt, scripts/gate.py]
    outs: [out/gate.txt]
"""
EXTRA_STAGES = {
    "broken": "  broken:\n    cmd: python scripts/broken.py\n    deps: [out/gate.txt]\n",
    "flaky": (
        "  flaky:\n    cmd: python scripts/flaky.py\n    deps: [out/gate.txt]\n    outs: [out/flaky.txt]\n"
    ),
    "misleading": "  misleading:\n    cmd: python scripts/misleading.py\n    deps: [out/gate.txt]\n",
    # Real radflow commands: a registry change (takes the registry lock) and ingest (quarantine limit).
    "promote_by_hand": "  promote_by_hand:\n    cmd: radflow registry promote 1\n",
    "ingest": "  ingest:\n    cmd: radflow stage ingest\n    deps: [raw]\n    outs: [out/ingested]\n",
}
STAGES = ["count", "gate", "evaluate"]


def make_script_project(
    root: Path, retrain: dict[str, object] | None = None, extra: tuple[str, ...] = ()
) -> Path:
    """A git + DVC project with the three script stages plus `extra` ones (names of EXTRA_STAGES), a
    `raw/` archive and a radflow-style params.yaml (`retrain` overrides its retrain section)."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(SCRIPTS, root / "scripts", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "raw").mkdir()
    (root / "raw" / "study1.txt").write_text("1")
    paths = {key: f"out/{key}" for key in ("ingested", "private", "preprocessed", "model", "checkpoints")}
    paths |= {key: f"out/{key}" for key in ("train_live", "evaluation", "promotion", "monitor")}
    defaults = repo_params()  # every section, so the flow's preflight check of params.yaml passes
    params = {
        **defaults,
        "seed": 1,
        "paths": paths | {"registry": "registry"},
        "ingest": defaults["ingest"] | {"source": "raw", "labels": "folders", "workers": 1},
        "promote": defaults["promote"] | {"lock_timeout_s": 0.5},
        "step": {"factor": 2},
        "retrain": defaults["retrain"] | {"retries": 2, "retry_delay_s": 0.2, **(retrain or {})},
    }
    (root / "params.yaml").write_text("# tiny project\n" + yaml.safe_dump(params, sort_keys=False))
    (root / "dvc.yaml").write_text(DVC_YAML + "".join(EXTRA_STAGES[name] for name in extra))
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(command, cwd=root, check=True)
    return root
