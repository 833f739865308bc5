"""Shared setup for the ingest tests: params pointing at a temporary archive and output folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from tasks.common.params import load_params
from tasks.common.shards import read_image
from tasks.ingest.settings import IngestSettings, load_settings

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


def stored_images(ingested: Path) -> dict[str, np.ndarray]:
    """Every image the manifest lists, read from its shard: image id -> pixels."""
    manifest = pd.read_csv(ingested / "manifest.csv", dtype=str, keep_default_na=False)
    return {
        row.image_id: read_image(ingested / "images", row.shard, int(row.shard_offset))
        for row in manifest.itertuples()
    }
