"""JSON without NaN: what metrics files and registry records are written through."""

from __future__ import annotations

import math
from typing import Any


def finite_or_none(value: Any) -> Any:
    """JSON has no NaN: an undefined metric (e.g. a one-class subgroup) is written as null."""
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite_or_none(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
