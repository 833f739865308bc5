"""What the labels mean beyond their names: which class is the negative ("no finding") one, and which
index columns define the subgroups evaluation reports on.

Class names are restricted to letters, digits, space and `_-.+()`: they are written into model configs
that other tools execute (a MONAI bundle's `inference.json` evaluates any string starting with `$`,
resolves `@` references and `%` macros), and into reports and tables.

One resolver serves preprocess (which checks the setting against the data's classes before any image
is transformed, so a bad value fails before training, not after it), evaluate and predict (which must
agree on what "abnormal" means).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.common.errors import RadflowError

AUTO = "auto"
# Class names `auto` recognises as the negative class, compared case-insensitively with `_`/`-` as spaces.
NEGATIVE_NAMES = ("normal", "negative", "no finding", "clear", "healthy")
# Index columns (from the DICOM header, pseudonymised or banded) evaluation reports subgroups for.
SUBGROUPS = ("modality", "view", "manufacturer", "sex", "age_band")
SAFE_CLASS_NAME = re.compile(r"[\w .+()-]+")  # \w: letters (any script), digits and _
VALID_CLASS_NAME = "letters, digits, space and _-.+() only"


def is_safe_class_name(name: str) -> bool:
    """Whether `name` may be a class name (SAFE_CLASS_NAME, whole)."""
    return SAFE_CLASS_NAME.fullmatch(name) is not None


def _plain(name: str) -> str:
    return " ".join(name.replace("_", " ").replace("-", " ").lower().split())


def resolve_negative_class(setting: Any, classes: list[str]) -> str:
    """The class `evaluate.negative_class` names among the data's `classes` (exact, else ignoring case).

    `auto` picks the one class named like a negative finding (NEGATIVE_NAMES). Anything that does not
    resolve to exactly one class is a configuration error naming the valid choices.
    """
    if not isinstance(setting, str):
        raise RadflowError(
            f"evaluate.negative_class: expected a class name, got {setting!r}; valid: {[AUTO, *classes]}"
        )
    if setting in classes:
        return setting
    if setting == AUTO:
        matches = [name for name in classes if _plain(name) in NEGATIVE_NAMES]
        wanted = f"a class named like {' / '.join(NEGATIVE_NAMES)} (any case)"
    else:
        matches = [name for name in classes if _plain(name) == _plain(setting)]
        wanted = f"the class {setting!r}"
    if len(matches) == 1:
        return matches[0]
    found = f"several match: {matches}" if matches else "none found"
    raise RadflowError(
        f"evaluate.negative_class {setting!r}: the data needs {wanted}, {found}; "
        f"set evaluate.negative_class to one of {classes}"
    )


def check_negative_class(params: dict[str, Any], ingested: Path) -> None:
    """Resolve params' `evaluate.negative_class` against the labels in ingest's manifest (if it exists;
    the caller reports a missing manifest itself), so a bad value stops the pipeline before training."""
    manifest = ingested / "manifest.csv"
    if not manifest.is_file():
        return
    labels = pd.read_csv(manifest, usecols=["label"], dtype=str, keep_default_na=False)["label"]
    classes = sorted(set(labels) - {""})
    if classes:
        resolve_negative_class((params.get("evaluate") or {}).get("negative_class"), classes)
