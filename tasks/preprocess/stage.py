"""Preprocess stage: ingested images -> a memory-mappable (N, 1, S, S) float16 store + patient-level splits.

Reads `paths.ingested` (manifest.csv + the image shards in images/) and writes `paths.preprocessed`:
images.npy, index.csv and classes.json (docs/CONTRACTS.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.console import Console

from tasks.common.atomic import atomic_open, atomic_path, write_json
from tasks.common.classes import SUBGROUPS, check_negative_class
from tasks.common.errors import RadflowError
from tasks.common.params import parse_section
from tasks.common.paths import project_paths
from tasks.common.shards import read_image
from tasks.preprocess.split import assign_splits, check_no_leakage, predefined_splits
from tasks.preprocess.transform import TransformSettings, build_transform, image_to_tensor

__all__ = ["PreprocessParams", "TransformSettings", "image_to_tensor", "main", "preprocess"]

INDEX_COLUMNS = (
    "row", "image_id", "patient_id", "study_id", "label", "label_index", "split", "pixel_hash", *SUBGROUPS,
)  # fmt: skip
console = Console(stderr=True)


@dataclass(frozen=True)
class PreprocessParams:
    """params.yaml `preprocess` section."""

    image_size: int
    val_fraction: float
    test_fraction: float
    lower_percentile: float
    upper_percentile: float
    use_predefined_split: bool

    def transform_settings(self) -> TransformSettings:
        return TransformSettings(self.image_size, self.lower_percentile, self.upper_percentile)


def build_index(
    manifest: pd.DataFrame, settings: PreprocessParams, seed: int
) -> tuple[pd.DataFrame, list[str]]:
    """Labelled manifest rows -> index table (without `row` order changes) and the sorted class names."""
    labelled = manifest[manifest["label"].fillna("").astype(str) != ""].copy()
    if labelled.empty:
        raise RadflowError("the manifest has no labelled image; check ingest.labels")
    for column in ("study_id", "pixel_hash", "predefined_split", *SUBGROUPS):
        labelled[column] = labelled[column].fillna("").astype(str) if column in labelled else ""
    labelled["label"] = labelled["label"].astype(str)
    classes = sorted(labelled["label"].unique())
    labelled = labelled.sort_values("image_id").reset_index(drop=True)
    labelled["row"] = np.arange(len(labelled))
    labelled["label_index"] = labelled["label"].map({name: i for i, name in enumerate(classes)})
    use_predefined = settings.use_predefined_split and (labelled["predefined_split"] != "").any()
    labelled["split"] = (
        predefined_splits(labelled)
        if use_predefined
        else assign_splits(labelled, settings.val_fraction, settings.test_fraction, seed)
    )
    check_no_leakage(labelled)
    return labelled[list(INDEX_COLUMNS)], classes


def write_store(
    places: list[tuple[str, int]], images_dir: Path, target: Path, settings: TransformSettings
) -> None:
    """Transform each image, given as (shard, offset) in ingest's store, into one (N, 1, S, S) float16
    .npy, written in place through a memmap."""
    transform = build_transform(settings)
    size = settings.image_size
    with atomic_path(target) as tmp:
        store = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.float16, shape=(len(places), 1, size, size)
        )
        for row, (shard, offset) in enumerate(places):
            try:
                pixels = read_image(images_dir, shard, offset)
            except (OSError, ValueError) as error:
                raise RadflowError(
                    f"image at {shard}:{offset} in {images_dir} is unreadable ({error}); rerun ingest"
                ) from None
            store[row] = image_to_tensor(pixels, settings, transform)
        store.flush()
        del store


def preprocess(ingested: Path, out: Path, settings: PreprocessParams, seed: int) -> pd.DataFrame:
    """Run the stage between two folders; returns the index table."""
    manifest_path = ingested / "manifest.csv"
    if not manifest_path.is_file():
        raise RadflowError(f"no manifest at {manifest_path}; run the ingest stage first")
    manifest = pd.read_csv(manifest_path, dtype=str, keep_default_na=False)
    index, classes = build_index(manifest, settings, seed)
    located = manifest.set_index("image_id").loc[index["image_id"]]
    write_store(
        list(zip(located["shard"], located["shard_offset"].astype(int), strict=True)),
        ingested / "images",
        out / "images.npy",
        settings.transform_settings(),
    )
    with atomic_open(out / "index.csv") as handle:
        index.to_csv(handle, index=False)
    write_json(out / "classes.json", {"classes": classes, "image_size": settings.image_size})
    counts = index.groupby("split")["patient_id"].agg(["nunique", "size"])
    console.print(
        f"preprocess: {len(index)} images ({len(manifest) - len(index)} unlabeled left out), "
        + ", ".join(
            f"{split} {row['size']} images/{row['nunique']} patients" for split, row in counts.iterrows()
        )
    )
    return index


def main(params: dict[str, Any]) -> None:
    """Stage entry point (`radflow stage preprocess`)."""
    settings = parse_section(params, "preprocess", PreprocessParams)
    paths = project_paths(params)
    # Per-image ops on ~65k pixels: thread start-up costs more than it saves (10x slower on a busy CPU).
    torch.set_num_threads(1)
    check_negative_class(params, paths.ingested)  # a bad evaluate.negative_class fails before training
    preprocess(paths.ingested, paths.preprocessed, settings, int(params["seed"]))
