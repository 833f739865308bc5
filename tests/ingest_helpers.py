"""Shared setup for the ingest tests: params pointing at a temporary archive and output folders."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tasks.common.shards import read_image
from tasks.ingest.settings import IngestSettings, load_settings
from tests.defaults import params_under

if TYPE_CHECKING:
    from distributed import LocalCluster


def ingest_params(root: Path, **ingest: Any) -> dict[str, Any]:
    """params.yaml with `paths` under `root`, `ingest.source` = `root/raw`, plus `ingest` overrides."""
    params = params_under(root)
    params["ingest"].update({"source": str(root / "raw"), "workers": 2, **ingest})
    return params


def settings_for(root: Path, **ingest: Any) -> IngestSettings:
    return load_settings(ingest_params(root, **ingest))


def stored_images(ingested: Path) -> dict[str, np.ndarray]:
    """Every image the manifest lists, read from its shard: image id -> pixels."""
    manifest = pd.read_csv(ingested / "manifest.csv", dtype=str, keep_default_na=False)
    return {
        row.image_id: read_image(ingested / "images", row.shard, int(row.shard_offset))
        for row in manifest.itertuples()
    }


def loopback_cluster(processes: bool) -> LocalCluster:
    """A one-worker Dask cluster on 127.0.0.1 (two threads; `processes`: a worker process under a nanny,
    daemonic as on a real cluster, else a worker in this process); use it as a context manager."""
    from distributed import LocalCluster  # imported by the two tests that use it, as ingest does

    return LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=processes,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    )
