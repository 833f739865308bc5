"""Preprocess stage: the tensor store, patient-level seeded splits and the leakage guard."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.common.errors import RadflowError
from tasks.common.shards import ShardWriter, read_image
from tasks.preprocess.split import linked_groups
from tasks.preprocess.stage import PreprocessParams, preprocess
from tasks.preprocess.transform import image_to_tensor
from tests.defaults import settings

SETTINGS = settings("preprocess", PreprocessParams, image_size=32, val_fraction=0.2, test_fraction=0.2)


def write_ingested(root: Path, patients: int = 20, per_patient: int = 3, **overrides: list[str]) -> Path:
    """A tiny ingest output: manifest.csv + one image shard per patient, with a few RGB and non-square
    images."""
    rng = np.random.default_rng(0)
    rows = []
    (root / "images").mkdir(parents=True)
    for p in range(patients):
        shard = ShardWriter(root / "images")
        for i in range(per_patient):
            image_id = f"{p:08x}{i:08x}"
            shape = (40, 48, 3) if i == 2 else (48, 40)
            offset, _ = shard.add(image_id, rng.normal(1000, 200, shape).astype(np.float32))
            rows.append(
                {
                    "image_id": image_id,
                    "shard_offset": offset,
                    "patient_id": f"P-{p:012x}",
                    "study_id": f"S-{p:06x}{i // 2:06x}",
                    "label": ["normal", "effusion", "pneumonia"][p % 3] if i < 2 or p % 4 else "",
                    "modality": "DX",
                    "pixel_hash": f"{p:032x}{i:032x}",
                    "predefined_split": "",
                }
            )
        name = shard.finish()
        for row in rows[-per_patient:]:
            row["shard"] = name
    manifest = pd.DataFrame(rows)
    for column, values in overrides.items():
        manifest[column] = values
    manifest.to_csv(root / "manifest.csv", index=False)
    return root


def test_store_index_and_classes(tmp_path: Path) -> None:
    ingested = write_ingested(tmp_path / "ingested")
    index = preprocess(ingested, tmp_path / "out", SETTINGS, seed=1)
    store = np.load(tmp_path / "out" / "images.npy", mmap_mode="r")
    assert store.dtype == np.float16 and store.shape == (len(index), 1, 32, 32)
    assert float(store.min()) >= 0.0 and float(store.max()) <= 1.0
    written = pd.read_csv(tmp_path / "out" / "index.csv")
    assert list(written["row"]) == list(range(len(written)))
    assert (written["label"] != "").all() and len(written) == 60 - 5  # unlabeled rows left out
    classes = json.loads((tmp_path / "out" / "classes.json").read_text())
    assert classes == {"classes": ["effusion", "normal", "pneumonia"], "image_size": 32}
    assert set(written["split"]) == {"train", "val", "test"}
    # every class appears in every split (stratified) and no patient spans two splits
    assert written.groupby("split")["label"].nunique().eq(3).all()
    assert written.groupby("patient_id")["split"].nunique().max() == 1


def test_split_is_reproducible_from_seed(tmp_path: Path) -> None:
    ingested = write_ingested(tmp_path / "ingested")
    first = preprocess(ingested, tmp_path / "a", SETTINGS, seed=7)["split"].tolist()
    again = preprocess(ingested, tmp_path / "b", SETTINGS, seed=7)["split"].tolist()
    other = preprocess(ingested, tmp_path / "c", SETTINGS, seed=8)["split"].tolist()
    assert first == again and first != other


def test_patients_sharing_an_image_stay_together(tmp_path: Path) -> None:
    # Image 0 of every patient is the same picture: all patients must land in one split.
    hashes = [("same" if i % 3 == 0 else f"h{i}") for i in range(60)]
    ingested = write_ingested(tmp_path / "ingested", pixel_hash=hashes)
    index = preprocess(ingested, tmp_path / "out", SETTINGS, seed=1)
    assert index["split"].nunique() == 1


def test_predefined_split_is_honoured_and_guarded(tmp_path: Path) -> None:
    splits = [["train", "val", "test"][(i // 3) % 3] for i in range(60)]
    ingested = write_ingested(tmp_path / "ok", predefined_split=splits)
    index = preprocess(ingested, tmp_path / "out", SETTINGS, seed=1)
    assert index.set_index("image_id")["split"].to_dict() == {
        f"{i // 3:08x}{i % 3:08x}": s for i, s in enumerate(splits) if i % 3 < 2 or (i // 3) % 4
    }
    leaky = [["train", "test"][i % 2] for i in range(60)]  # a patient's images in two splits
    ingested = write_ingested(tmp_path / "leaky", predefined_split=leaky)
    with pytest.raises(RadflowError, match="patient_id value"):
        preprocess(ingested, tmp_path / "out2", SETTINGS, seed=1)


def test_image_to_tensor_matches_the_store(tmp_path: Path) -> None:
    ingested = write_ingested(tmp_path / "ingested", patients=3)
    index = preprocess(ingested, tmp_path / "out", SETTINGS, seed=1)
    store = np.load(tmp_path / "out" / "images.npy", mmap_mode="r")
    manifest = pd.read_csv(ingested / "manifest.csv", dtype=str).set_index("image_id")
    for row, image_id in zip(index["row"], index["image_id"], strict=True):
        shard, offset = manifest.loc[image_id, ["shard", "shard_offset"]]
        pixels = read_image(ingested / "images", shard, int(offset))
        np.testing.assert_array_equal(image_to_tensor(pixels, SETTINGS.transform_settings()), store[row])


def test_bad_fractions_are_refused(tmp_path: Path) -> None:
    ingested = write_ingested(tmp_path / "ingested", patients=3)
    with pytest.raises(RadflowError, match="val_fraction"):
        preprocess(ingested, tmp_path / "out", replace(SETTINGS, val_fraction=0.5, test_fraction=0.6), seed=1)


def test_split_does_not_depend_on_the_pseudonym_salt() -> None:
    """Another salt renames every patient; each image must still land in the same split."""
    from tasks.preprocess.split import assign_splits

    rows = [
        {"image_id": f"{p:02d}{i}", "patient_id": f"P-{p:02d}", "study_id": f"S-{p:02d}",
         "pixel_hash": f"{p:02d}{i}", "label": "abc"[p % 3]}
        for p in range(30) for i in range(2)
    ]  # fmt: skip
    index = pd.DataFrame(rows)
    resalted = index.assign(
        patient_id=index["patient_id"].map(lambda pid: f"P-{hash(pid) % 10**6:06d}"),
        study_id=index["study_id"].map(lambda sid: f"S-{hash(sid) % 10**6:06d}"),
    )
    first = assign_splits(index, 0.2, 0.2, seed=3)
    second = assign_splits(resalted, 0.2, 0.2, seed=3)
    assert list(first) == list(second)
    assert set(first) == {"train", "val", "test"}


def test_patients_linked_by_a_study_or_an_identical_image_form_one_group() -> None:
    index = pd.DataFrame(
        {
            "patient_id": ["A", "A", "B", "C", "C", "D", "E"],
            "study_id": ["s1", "s2", "s2", "s3", "", "", ""],  # A and B share study s2
            "pixel_hash": ["h1", "h2", "h3", "h4", "h5", "h5", ""],  # C and D hold the same image
        }
    )
    groups = linked_groups(index)
    assert groups[0] == groups[1] == groups[2]
    assert groups[3] == groups[4] == groups[5]
    assert len({groups[0], groups[3], groups[6]}) == 3  # E is linked to nobody
