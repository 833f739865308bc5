"""The project's data locations, parsed once from params.yaml's `paths` section."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.common.params import parse_section


@dataclass(frozen=True)
class ProjectPaths:
    """Where each stage reads and writes; relative paths are relative to the project root."""

    ingested: Path
    private: Path
    preprocessed: Path
    model: Path
    checkpoints: Path
    train_live: Path
    evaluation: Path
    promotion: Path
    registry: Path


def project_paths(params: dict[str, Any]) -> ProjectPaths:
    """Parse params.yaml's `paths` section."""
    return parse_section(params, "paths", ProjectPaths)
