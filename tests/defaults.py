"""Settings as a user gets them: the repository's params.yaml plus a test's own changes.

Code keeps no default values (params.yaml is the one source of every setting), so tests build their
settings objects here instead of from dataclass defaults that could drift from what users run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

from models.config import ModelConfig
from tasks.common.params import load_params, parse_section
from tasks.train.params import TrainParams

REPO_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
T = TypeVar("T")


def repo_params() -> dict[str, Any]:
    """A fresh copy of the repository's params.yaml (callers may change it)."""
    return load_params(REPO_PARAMS)


def settings(section: str, cls: type[T], **changes: Any) -> T:
    """params.yaml's `section` parsed strictly into `cls`, then the given fields replaced."""
    return dataclasses.replace(parse_section(repo_params(), section, cls), **changes)  # type: ignore[type-var]


def train_params(**changes: Any) -> TrainParams:
    return settings("train", TrainParams, **changes)


def network_config(num_classes: int = 3, **changes: Any) -> ModelConfig:
    """The network params.yaml's train section describes, with the given fields replaced."""
    return dataclasses.replace(train_params().model_config(num_classes), **changes)
