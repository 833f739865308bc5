"""Where DVC keeps a registry version's weights: the dvc.yaml artifact, and DVC's hash of a model folder.

A registry version folder holds byte-identical copies of the candidate's model.safetensors and
config.json, so DVC's directory hash of those two files is the hash dvc.lock recorded for the train
stage's output when that candidate was produced. That lets a version be matched to the commits whose
dvc.lock holds it without fetching anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from models.store import CONFIG_FILE, WEIGHTS_FILE
from tasks.common.errors import RadflowError
from tasks.common.hashing import file_md5

PROJECT_FILE = "dvc.yaml"
LOCK_FILE = "dvc.lock"


@dataclass(frozen=True)
class ModelArtifact:
    """The `artifacts:` entry of dvc.yaml of type model: its name (GTO's) and path (the train output)."""

    name: str
    path: str


def model_artifact(project: Path) -> ModelArtifact:
    """The one model artifact dvc.yaml declares (it names the GTO tags and what `dvc artifacts get` fetches),
    read through DVC so `${paths.model}` resolves exactly as DVC resolves it."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    if not (project / PROJECT_FILE).is_file():
        raise RadflowError(f"no {PROJECT_FILE} in {project}: run radflow from the project root")
    try:
        with Repo(str(project)) as repo:
            declared = repo.artifacts.read().get(PROJECT_FILE, {})
    except DvcException as error:
        raise RadflowError(f"cannot read the artifacts of {project / PROJECT_FILE}: {error}") from None
    found = [
        ModelArtifact(name, artifact.path) for name, artifact in declared.items() if artifact.type == "model"
    ]
    if len(found) != 1:
        raise RadflowError(
            f"{project / PROJECT_FILE} must declare exactly one artifact of type model under `artifacts:` "
            f"(found {[artifact.name for artifact in found]})"
        )
    return found[0]


def model_dir_md5(folder: Path) -> str:
    """DVC's directory hash (`<md5>.dir`) of a model folder holding exactly the two model files."""
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.meta import Meta
    from dvc_data.hashfile.tree import Tree

    tree = Tree()
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        tree.add((name,), Meta(), HashInfo("md5", file_md5(folder / name)))
    tree.digest()
    return str(tree.hash_info.value)


def lock_md5(lock_text: str, path: str, *, kind: str = "outs", stage: str | None = None) -> str | None:
    """The md5 dvc.lock records for `path` among the `kind` ("outs" or "deps") of `stage` (default: any
    stage), or None."""
    stages: dict[str, Any] = (yaml.safe_load(lock_text) or {}).get("stages") or {}
    for name, entry in stages.items():
        if stage not in (None, name):
            continue
        for item in entry.get(kind, []):
            if item.get("path") == path:
                return item.get("md5")
    return None
