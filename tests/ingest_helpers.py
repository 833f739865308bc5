"""Shared setup for the ingest tests: params pointing at a temporary archive and output folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tasks.ingest import IngestSettings, load_settings
from tasks.params import load_params

REPO_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def ingest_params(root: Path, **ingest: Any) -> dict[str, Any]:
    """params.yaml with `paths` under `root`, `ingest.source` = `root/raw`, plus `ingest` overrides."""
    params = load_params(REPO_PARAMS)
    params["paths"] = {key: str(root / key) for key in params["paths"]}
    params["ingest"].update({"source": str(root / "raw"), "workers": 2, **ingest})
    return params


def settings_for(root: Path, **ingest: Any) -> IngestSettings:
    return load_settings(ingest_params(root, **ingest))


def write_params(root: Path, params: dict[str, Any]) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
