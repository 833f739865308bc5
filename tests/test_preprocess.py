"""Preprocess stage: the tensor store, patient-level seeded splits and the leakage guard."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tasks.common.errors import RadflowError
from tasks.common.shards import ShardWriter
from tasks.preprocess.split import check_no_leakage, linked_groups
from tasks.preprocess.stage import PreprocessParams, preprocess
from tasks.preprocess.transform import Window, image_to_tensor
from tests.defaults import settings

SETTINGS = settings("preprocess", PreprocessParams, image_size=32, val_fraction=0.2, test_fraction=0.2)


def noise_image(number: int, rng: np.random.Generator) -> np.ndarray:
    """Image `number` of write_ingested: noise, every third one RGB and wider than high, the others taller."""
    shape = (40, 48, 3) if number % 3 == 2 else (48, 40)
    return rng.normal(1000, 200, shape).astype(np.float32)


def block_image(number: int, rng: np.random.Generator) -> np.ndarray:
    """(32, 32): 100, with a 2 x 8 block of 300 whose place (of 60) tells the image apart."""
    pixels = np.full((32, 32), 100, np.uint16)
    top, left = 2 * (number % 15), 8 * (number // 15 % 4)
    pixels[top : top + 2, left : left + 8] = 300
    return pixels


def write_ingested(
    root: Path,
    patients: int = 20,
    per_patient: int = 3,
    image: Callable[[int, np.random.Generator], np.ndarray] = noise_image,
    **overrides: list[str],
) -> Path:
    """A tiny ingest output: manifest.csv + one image shard per patient, images made by `image`."""
    rng = np.random.default_rng(0)
    rows = []
    (root / "images").mkdir(parents=True)
    for p in range(patients):
        shard = ShardWriter(root / "images")
        for i in range(per_patient):
            image_id = f"{p:08x}{i:08x}"
            offset, _ = shard.add(image_id, image(p * per_patient + i, rng))
            rows.append(
                {
                    "image_id": image_id,
                    "shard_offset": offset,
                    "patient_id": f"P-{p:012x}",
                    "patient_source": "header",
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
    assert classes == {
        "classes": ["effusion", "normal", "pneumonia"],
        "image_size": 32,
        "patients_recognised": True,
        "images_without_patient": 0,
        "split_source": "radflow, by patient",
        "split_notes": [],
    }
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


def _splits(index: pd.DataFrame) -> dict[str, str]:
    return index.set_index("image_id")["split"].to_dict()


def _notes(folder: Path) -> list[str]:
    return json.loads((folder / "classes.json").read_text())["split_notes"]


def test_predefined_split_is_honoured(tmp_path: Path) -> None:
    splits = [["train", "val", "test"][(i // 3) % 3] for i in range(60)]
    ingested = write_ingested(tmp_path / "ok", predefined_split=splits)
    index = preprocess(ingested, tmp_path / "out", replace(SETTINGS, min_val_images=10), seed=1)
    assert _splits(index) == {
        f"{i // 3:08x}{i % 3:08x}": s for i, s in enumerate(splits) if i % 3 < 2 or (i // 3) % 4
    }
    facts = json.loads((tmp_path / "out" / "classes.json").read_text())
    assert facts["split_source"] == "data set folders" and facts["split_notes"] == []


def test_a_patient_in_two_predefined_splits_is_kept_whole_in_the_most_held_out(tmp_path: Path) -> None:
    leaky = [["train", "test", "val"][i % 3] for i in range(60)]  # every patient in three splits
    ingested = write_ingested(tmp_path / "leaky", predefined_split=leaky)
    index = preprocess(ingested, tmp_path / "out", replace(SETTINGS, min_val_images=0), seed=1)
    assert set(index["split"]) == {"test"}  # no train left: the guard holds, the note says why
    assert "kept with the rest of their patient's images" in _notes(tmp_path / "out")[0]


def test_a_small_val_and_a_missing_test_split_are_carved_from_train_by_patient(tmp_path: Path) -> None:
    # Kaggle-like: a tiny val folder (patient 0 only), no test folder at all.
    splits = ["val" if i < 3 else "train" for i in range(60)]
    ingested = write_ingested(tmp_path / "ingested", predefined_split=splits)
    index = preprocess(ingested, tmp_path / "out", replace(SETTINGS, min_val_images=20), seed=1)
    assert index.groupby("patient_id")["split"].nunique().max() == 1
    assert _splits(index)["0000000000000000"] == "val"  # the data set's own val stays val
    patients = index.groupby("split")["patient_id"].nunique()
    assert patients["test"] == 3 and patients["val"] == 1 + 3  # 20% of each class's train patients, rounded
    notes = _notes(tmp_path / "out")
    assert "no test folder" in notes[0] and "preprocess.test_fraction=0.2" in notes[0]
    assert "val split holds 2 images, fewer than preprocess.min_val_images=20" in notes[1]


def test_images_without_a_patient_id_are_recorded_for_the_report(tmp_path: Path) -> None:
    ingested = write_ingested(tmp_path / "ingested", patient_source=[""] * 6 + ["header"] * 54)
    preprocess(ingested, tmp_path / "out", SETTINGS, seed=1)
    facts = json.loads((tmp_path / "out" / "classes.json").read_text())
    assert (
        facts["patients_recognised"] is False and facts["images_without_patient"] == 5
    )  # one of the 6 is unlabeled
    assert "metrics may be optimistic" in facts["split_notes"][0]


def test_leakage_guard_refuses_a_shared_study_across_splits() -> None:
    index = pd.DataFrame(
        {
            "patient_id": ["P-1", "P-2"],
            "study_id": ["S-1", "S-1"],
            "pixel_hash": ["a", "b"],
            "split": ["train", "test"],
        }
    )
    with pytest.raises(RadflowError, match="study_id value"):
        check_no_leakage(index)


def test_image_to_tensor_by_hand() -> None:
    """Percentile window to [0, 1] (an outlier does not set it), longest side to S by area, centre pad
    with 0, RGB to luma; S = 32, the 0.5 / 99.5 percentiles of params.yaml, the whole image's window with
    a hard top clip (MONAI's)."""
    settings = replace(SETTINGS, window="image", top_clip="hard").transform_settings()
    tall = np.full((32, 16), 100, np.uint16)
    tall[:, :8] = 300  # bright left half: stays left, between 8 columns of padding each side
    expected = np.zeros((32, 32), np.float16)
    expected[:, 8:16] = 1
    np.testing.assert_array_equal(image_to_tensor(tall, settings), expected[None])

    checkered = np.where(np.indices((64, 32)).sum(axis=0) % 2 == 0, 100, 300)  # halved: each 2x2 -> 0.5
    expected = np.zeros((32, 32), np.float16)
    expected[:, 8:24] = 0.5
    np.testing.assert_array_equal(image_to_tensor(checkered.astype(np.uint16), settings), expected[None])

    rgb = np.full((32, 32, 3), 50, np.uint8)
    rgb[:16] = 200  # a bright gray top half
    expected = np.zeros((32, 32), np.float16)
    expected[:16] = 1
    np.testing.assert_array_equal(image_to_tensor(rgb, settings), expected[None])

    marked = np.full((32, 32), 100, np.uint16)
    marked[4:8, 8:16] = 300  # 32 of 1024 pixels: above the 99.5th percentile's reach
    marked[20, 20] = 65535  # one burnt-in text pixel: clipped, not the top of the window
    expected = np.zeros((32, 32), np.float16)
    expected[4:8, 8:16] = expected[20, 20] = 1
    np.testing.assert_array_equal(image_to_tensor(marked, settings), expected[None])


def brain_like(finding: float) -> np.ndarray:
    """(64, 64): air 0 (top half), tissue 0.5, a 'white matter' band at 1.0 (10 % of the pixels) and a
    3 x 3 px finding of `finding` inside it: the band, not the finding, sets the 99.5th percentile."""
    image = np.zeros((64, 64), np.float32)
    image[32:] = 0.5
    image[52:58] = 1.0
    image[54:57, 30:33] = finding
    return image


def test_the_soft_top_clip_keeps_a_bright_3_px_finding_that_the_hard_clip_flattens() -> None:
    hard = replace(SETTINGS, image_size=64, top_clip="hard").transform_settings()
    soft = replace(SETTINGS, image_size=64, top_clip="soft", headroom=0.5).transform_settings()
    for window in ("image", "foreground"):
        flat = image_to_tensor(brain_like(1.5), replace(hard, window=window))[0].astype(np.float32)
        kept = image_to_tensor(brain_like(1.5), replace(soft, window=window))[0].astype(np.float32)
        assert flat[55, 31] == flat[53, 10] == 1.0  # clipped to the band's value: the finding is gone
        assert kept[53, 10] == pytest.approx(1.0, abs=2e-3)  # the band: the window's top, as before
        # 1 + 0.5 tanh(0.5 / 0.5) = 1.38: the finding stands 0.38 above the brightest normal tissue.
        assert kept[55, 31] == pytest.approx(1 + 0.5 * np.tanh(1.0), abs=5e-3)
        assert kept[40, 10] == pytest.approx(flat[40, 10], abs=1e-3)  # below the top: unchanged
    burnt_in = brain_like(1.5)
    burnt_in[60, 60] = 65535.0  # one text pixel: compressed into the headroom, the scale kept
    out = image_to_tensor(burnt_in, soft)[0].astype(np.float32)
    assert 1.45 < out[60, 60] <= 1.5 and out[53, 10] == pytest.approx(1.0, abs=2e-3)


def test_the_foreground_window_does_not_depend_on_how_much_air_is_in_the_frame() -> None:
    """The same body (values 0.3-1, each value as often) on 50 % or 75 % air: the foreground window maps
    it the same; the whole image's window does not (its 99.5th percentile moves with the air)."""
    values = np.tile(np.linspace(0.3, 1.0, 256, dtype=np.float32), 4).reshape(16, 64)
    little_air, much_air = np.zeros((64, 64), np.float32), np.zeros((64, 64), np.float32)
    little_air[32:] = np.tile(values, (2, 1))  # the body twice over: 50 % air
    much_air[48:] = values  # 75 % air
    cases: list[tuple[Window, bool]] = [("foreground", True), ("image", False)]
    for window, same in cases:
        settings = replace(SETTINGS, image_size=64, window=window, top_clip="hard").transform_settings()
        a = image_to_tensor(little_air, settings)[0, 48:]
        b = image_to_tensor(much_air, settings)[0, 48:]
        assert np.array_equal(a, b) == same, window


def test_each_store_row_holds_its_own_image(tmp_path: Path) -> None:
    """Row r of images.npy is index.csv's image of row r: told apart by where its bright block is."""
    ingested = write_ingested(tmp_path / "ingested", image=block_image)
    index = preprocess(ingested, tmp_path / "out", SETTINGS, seed=1)
    store = np.load(tmp_path / "out" / "images.npy", mmap_mode="r")  # (N, 1, 32, 32)
    assert len(index) == 55 and sorted(index["row"]) == list(range(55))
    for row, image_id in zip(index["row"], index["image_id"], strict=True):
        number = int(image_id[:8], 16) * 3 + int(image_id[8:], 16)  # patient, image -> image number
        expected = (block_image(number, np.random.default_rng()) == 300).astype(np.float16)  # 0 / 1
        np.testing.assert_array_equal(store[row, 0], expected, err_msg=f"row {row}, image {image_id}")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"val_fraction": 0.5, "test_fraction": 0.6},
            r"preprocess.test_fraction: invalid value 0.6; valid: below 1 - preprocess.val_fraction \(0.5\)",
        ),
        (
            {"test_fraction": 1.2},
            r"preprocess.test_fraction: invalid value 1.2; valid: a number >= 0 and < 1",
        ),
        ({"image_size": 4}, r"preprocess.image_size: invalid value 4; valid: an integer >= 16"),
        (
            {"lower_percentile": 60.0, "upper_percentile": 40.0},
            r"preprocess.lower_percentile: invalid value 60.0; valid: below preprocess.upper_percentile "
            r"\(40.0\)",
        ),
        ({"min_val_images": -1}, "preprocess.min_val_images: invalid value -1"),
        ({"headroom": 0.0}, "preprocess.headroom: invalid value 0.0; valid: a number > 0 and <= 10"),
    ],
)
def test_bad_values_are_refused_before_any_work(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(RadflowError, match=message):
        replace(SETTINGS, **changes)


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
