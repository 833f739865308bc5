"""Train/val/test assignment by patient, stratified by label, seeded; a data set's own split made safe;
and the leakage guard.

Patients that share a study or an identical image (pixel_hash) are kept together, in the seeded split
and in a predefined one alike, so the guard below is an invariant of both.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from tasks.common.errors import RadflowError

SPLITS = ("train", "val", "test")  # least to most held out
LEAK_KEYS = ("patient_id", "study_id", "pixel_hash")


def linked_groups(index: pd.DataFrame) -> pd.Series:
    """Group label per row: connected components of patients linked by a shared study or image."""
    patients, patient_codes = np.unique(index["patient_id"].astype(str).to_numpy(), return_inverse=True)
    edges = []  # (patient code, patient code) pairs that must stay together
    for key in ("study_id", "pixel_hash"):
        values = index[key].astype(str).to_numpy()
        known = values != ""  # an empty id links nothing
        _, key_codes = np.unique(values[known], return_inverse=True)
        first_patient = pd.Series(patient_codes[known]).groupby(key_codes).transform("first").to_numpy()
        edges.append(np.stack([first_patient, patient_codes[known]]))
    rows, cols = np.concatenate(edges, axis=1) if edges else (np.empty(0, int), np.empty(0, int))
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(patients), len(patients)))
    _, component = connected_components(graph, directed=False)
    # Name each group by its first patient, so a group label is a patient id as before.
    first_of_component = pd.Series(patients).groupby(component).transform("first").to_numpy()
    return pd.Series(first_of_component[patient_codes], index=index.index)


def assign_splits(index: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int) -> pd.Series:
    """Split label per row. Groups are stratified by their most frequent label (ties: first by name)."""
    groups = linked_groups(index)
    group_label = index.groupby(groups)["label"].agg(
        lambda labels: labels.value_counts().sort_index().idxmax()
    )
    # Groups are ordered by their smallest image id (a content hash), not by pseudonym, so the split
    # depends only on the data and the seed — not on the installation's secret pseudonym salt.
    content_key = index.groupby(groups)["image_id"].min()
    rng = np.random.default_rng(seed)
    assignment: dict[str, str] = {}
    for _, members in group_label.groupby(group_label):
        names = rng.permutation(sorted(members.index, key=content_key.__getitem__))
        n_test = round(len(names) * test_fraction)
        n_val = round(len(names) * val_fraction)
        for position, name in enumerate(names):
            assignment[name] = (
                "test" if position < n_test else "val" if position < n_test + n_val else "train"
            )
    return groups.map(assignment)


def predefined_splits(
    index: pd.DataFrame, fractions: tuple[float, float], min_val_images: int, seed: int
) -> tuple[pd.Series, list[str]]:
    """The data set's own split per row, made usable, and what was changed, in words.

    - Patients linked across the data set's splits are kept whole in the most held-out one (test, then
      val): the official test set stays whole, and no patient is in two splits.
    - Labelled images outside every split folder join train.
    - No test folder: `test_fraction` of the train patients become test (stratified, seeded).
    - A val split smaller than `min_val_images` (Kaggle's chest X-ray set holds 16 images) is too small
      to choose an operating threshold on: `val_fraction` of the train patients join it.
    """
    val_fraction, test_fraction = fractions
    values = index["predefined_split"].fillna("").astype(str)
    bad = sorted(set(values) - {"", *SPLITS})
    if bad:
        raise RadflowError(f"predefined_split has value(s) {bad}; valid: {list(SPLITS)} or empty")
    given = values.replace("", "train")
    rank = given.map(SPLITS.index)
    split = rank.groupby(linked_groups(index)).transform("max").map(lambda r: SPLITS[r])
    notes = []
    moved = split != given
    if moved.any():
        notes.append(
            f"{int(moved.sum())} images of patients the data set's own folders put in two splits were "
            "kept with the rest of their patient's images, in the most held-out split"
        )
    outside = int((values == "").sum())
    if outside:
        notes.append(f"{outside} labelled images outside the data set's split folders joined train")
    if not (split == "test").any():
        split = _carve(index, split, "test", test_fraction, seed)
        notes.append(
            f"the data set has no test folder: preprocess.test_fraction={test_fraction} of the train "
            f"patients ({int((split == 'test').sum())} images) became the test split"
        )
    held = int((split == "val").sum())
    if held < min_val_images:
        split = _carve(index, split, "val", val_fraction, seed)
        notes.append(
            f"the data set's val split holds {held} images, fewer than preprocess.min_val_images="
            f"{min_val_images}: preprocess.val_fraction={val_fraction} of the train patients joined it "
            f"({int((split == 'val').sum())} val images now)"
        )
    return split, notes


def _carve(index: pd.DataFrame, split: pd.Series, target: str, fraction: float, seed: int) -> pd.Series:
    """Move `fraction` of the train patients (by linked group, stratified by label, seeded) to `target`."""
    train = split == "train"
    fractions = (fraction, 0.0) if target == "val" else (0.0, fraction)
    chosen = assign_splits(index[train], *fractions, seed)
    carved = split.copy()
    carved[chosen.index[chosen == target]] = target
    return carved


def check_no_leakage(index: pd.DataFrame) -> None:
    """Raise if any patient, study or identical image appears in more than one split."""
    problems = []
    for key in LEAK_KEYS:
        spread = index[index[key].astype(str) != ""].groupby(key)["split"].nunique()
        leaking = spread[spread > 1]
        if len(leaking):
            problems.append(f"{len(leaking)} {key} value(s) in several splits (e.g. {leaking.index[0]})")
    if problems:
        raise RadflowError("split leakage: " + "; ".join(problems))
