"""Settings as a user gets them: the repository's params.yaml plus a test's own changes.

Code keeps no default values (params.yaml is the one source of every setting), so tests build their
settings objects and params files here instead of from dataclass defaults that could drift from what
users run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from tasks.common.params import load_params, parse_section

if TYPE_CHECKING:  # importing them loads torch: only the tests that build networks pay for it
    from models.config import ModelConfig
    from tasks.train.params import TrainParams

REPO_ROOT = Path(__file__).resolve().parents[1]
REPO_PARAMS = REPO_ROOT / "params.yaml"
T = TypeVar("T")


def repo_params(*overrides: str) -> dict[str, Any]:
    """A fresh copy of the repository's params.yaml with `SECTION.KEY=VALUE` overrides applied."""
    return load_params(REPO_PARAMS, overrides=list(overrides))


def params_under(root: Path, *overrides: str) -> dict[str, Any]:
    """The repository's params.yaml (plus overrides) with every `paths` entry moved under `root`."""
    params = repo_params(*overrides)
    params["paths"] = {key: str(root / key) for key in params["paths"]}
    return params


def write_params(folder: Path, params: dict[str, Any]) -> Path:
    """Write `params` as `folder/params.yaml` (the folder is created); returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return folder


def settings(section: str, cls: type[T], **changes: Any) -> T:
    """params.yaml's `section` parsed strictly into `cls`, then the given fields replaced."""
    return dataclasses.replace(parse_section(repo_params(), section, cls), **changes)  # type: ignore[type-var]


def train_params(**changes: Any) -> TrainParams:
    from tasks.train.params import TrainParams

    return settings("train", TrainParams, **changes)


def network_config(num_classes: int = 3, **changes: Any) -> ModelConfig:
    """The network params.yaml's train section describes, with the given fields replaced."""
    return dataclasses.replace(train_params().model_config(num_classes), **changes)
