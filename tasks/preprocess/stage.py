"""Preprocess stage: ingested images -> a memory-mappable (N, 1, S, S) float16 store + patient-level splits.

Reads `paths.ingested` (manifest.csv + the image shards in images/) and writes `paths.preprocessed`:
images.npy, index.csv and classes.json (docs/CONTRACTS.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import torch
from pydantic import Field, model_validator
from rich.console import Console

from tasks.common.atomic import atomic_open, atomic_path, write_json
from tasks.common.classes import SUBGROUPS, check_negative_class
from tasks.common.errors import RadflowError
from tasks.common.params import InvalidValue, parse_section, section
from tasks.common.paths import project_paths
from tasks.common.shards import read_image
from tasks.preprocess.split import assign_splits, check_no_leakage, predefined_splits
from tasks.preprocess.transform import TopClip, TransformSettings, Window, build_transform, image_to_tensor

__all__ = ["PreprocessParams", "TransformSettings", "image_to_tensor", "main", "preprocess"]

PROFILED = ("body_part", "photometric", "spacing_row")  # kept for the training profile (OOD screen, drift)
INDEX_COLUMNS = (
    "row", "image_id", "patient_id", "study_id", "label", "label_index", "split", "pixel_hash", *SUBGROUPS,
    *PROFILED,
)  # fmt: skip
console = Console(stderr=True)


@section("preprocess")
class PreprocessParams:
    """params.yaml `preprocess` section."""

    image_size: Annotated[int, Field(ge=16)]  # pixels
    val_fraction: Annotated[float, Field(ge=0, lt=1)]
    test_fraction: Annotated[float, Field(ge=0, lt=1)]
    lower_percentile: Annotated[float, Field(ge=0, lt=100)]
    upper_percentile: Annotated[float, Field(gt=0, le=100)]
    window: Window
    top_clip: TopClip
    headroom: Annotated[float, Field(gt=0, le=10)]  # image units above the window's top
    min_val_images: Annotated[int, Field(ge=0)]

    @model_validator(mode="after")
    def _fit_together(self) -> PreprocessParams:
        if self.val_fraction + self.test_fraction >= 1:
            raise InvalidValue(
                "test_fraction",
                self.test_fraction,
                f"below 1 - preprocess.val_fraction ({self.val_fraction}): train needs patients too",
            )
        if self.lower_percentile >= self.upper_percentile:
            raise InvalidValue(
                "lower_percentile",
                self.lower_percentile,
                f"below preprocess.upper_percentile ({self.upper_percentile})",
            )
        return self

    def transform_settings(self, image_size: int | None = None) -> TransformSettings:
        """The transform of this section; `image_size` overrides the side (predict: the model's own)."""
        return TransformSettings(
            image_size or self.image_size,
            self.lower_percentile,
            self.upper_percentile,
            self.window,
            self.top_clip,
            self.headroom,
        )


def build_index(
    manifest: pd.DataFrame, settings: PreprocessParams, seed: int
) -> tuple[pd.DataFrame, list[str], dict[str, Any]]:
    """Labelled manifest rows -> (index table, sorted class names, what the report must say about
    patients and splits: classes.json's extra fields)."""
    labelled = manifest[manifest["label"].fillna("").astype(str) != ""].copy()
    if labelled.empty:
        raise RadflowError("the manifest has no labelled image; check ingest.labels")
    for column in ("study_id", "pixel_hash", "predefined_split", "patient_source", *SUBGROUPS, *PROFILED):
        labelled[column] = labelled[column].fillna("").astype(str) if column in labelled else ""
    labelled["label"] = labelled["label"].astype(str)
    classes = sorted(labelled["label"].unique())
    labelled = labelled.sort_values("image_id").reset_index(drop=True)
    labelled["row"] = np.arange(len(labelled))
    labelled["label_index"] = labelled["label"].map({name: i for i, name in enumerate(classes)})
    fractions = (settings.val_fraction, settings.test_fraction)
    if (labelled["predefined_split"] != "").any():
        labelled["split"], notes = predefined_splits(labelled, fractions, settings.min_val_images, seed)
    else:
        labelled["split"], notes = assign_splits(labelled, *fractions, seed), []
    check_no_leakage(labelled)
    return labelled[list(INDEX_COLUMNS)], classes, split_facts(labelled, notes)


def split_facts(labelled: pd.DataFrame, notes: list[str]) -> dict[str, Any]:
    """classes.json's account of patients and splits, which evaluate shows in the report and model card.

    `patients_recognised` is false when any labelled image had no patient id (it was its own patient):
    the split is then per image for those, and the metrics may be optimistic.
    """
    without = int((labelled["patient_source"] == "").sum())
    if without:
        notes = [
            f"{without} of {len(labelled)} images have no patient id: each was treated as its own patient, "
            "so the split is per image for them and the test metrics may be optimistic",
            *notes,
        ]
    predefined = (labelled["predefined_split"] != "").any()
    return {
        "patients_recognised": without == 0,
        "images_without_patient": without,
        "split_source": "data set folders" if predefined else "radflow, by patient",
        "split_notes": notes,
    }


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
    index, classes, facts = build_index(manifest, settings, seed)
    located = manifest.set_index("image_id").loc[index["image_id"]]
    write_store(
        list(zip(located["shard"], located["shard_offset"].astype(int), strict=True)),
        ingested / "images",
        out / "images.npy",
        settings.transform_settings(),
    )
    with atomic_open(out / "index.csv") as handle:
        index.to_csv(handle, index=False)
    write_json(out / "classes.json", {"classes": classes, "image_size": settings.image_size, **facts})
    counts = index.groupby("split")["patient_id"].agg(["nunique", "size"])
    console.print(
        f"preprocess: {len(index)} images ({len(manifest) - len(index)} unlabeled left out), "
        + ", ".join(
            f"{split} {row['size']} images/{row['nunique']} patients" for split, row in counts.iterrows()
        )
        + f"; splits from {facts['split_source']}"
    )
    for note in facts["split_notes"]:
        console.print(f"[bold yellow]note:[/] {note}")
    return index


def main(params: dict[str, Any]) -> None:
    """Stage entry point (`radflow stage preprocess`)."""
    settings = parse_section(params, "preprocess", PreprocessParams)
    paths = project_paths(params)
    # Per-image ops on ~65k pixels: thread start-up costs more than it saves (BENCHMARKS.md, code choices).
    torch.set_num_threads(1)
    check_negative_class(params, paths.ingested)  # a bad evaluate.negative_class fails before training
    preprocess(paths.ingested, paths.preprocessed, settings, int(params["seed"]))
