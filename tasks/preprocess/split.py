"""Train/val/test assignment by patient, stratified by label, seeded; and the leakage guard.

Patients that share a study or an identical image (pixel_hash) are kept together, so the guard
below is an invariant of the seeded split and only a predefined split can trip it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from tasks.common.errors import RadflowError

SPLITS = ("train", "val", "test")
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
    if not (val_fraction >= 0 and test_fraction >= 0 and val_fraction + test_fraction < 1):
        raise RadflowError(
            f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must be >= 0 and sum below 1"
        )
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


def predefined_splits(index: pd.DataFrame) -> pd.Series:
    """The data set's own split column; every labelled row must have a valid one."""
    values = index["predefined_split"].fillna("").astype(str)
    bad = sorted(set(values) - set(SPLITS))
    if bad:
        raise RadflowError(
            f"predefined_split has value(s) {bad}; valid: {list(SPLITS)} on every labelled row"
        )
    return values


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
