"""What `radflow predict --model` names: a registry version/alias, or a model folder fetched elsewhere.

A deploy host has no registry: it gets the champion with `dvc artifacts get REPO NAME --stage champion`
(DVC checks the files against dvc.lock's hashes on the way). A folder is checked against what the
registry recorded wherever that is available: its own checksums.json (a copied version folder), and the
local registry when it knows these weights, so a folder that claims a version but differs is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from models.registry.store import ALIASES, CHECKSUMS, Registry
from models.store import CONFIG_FILE, WEIGHTS_FILE, read_config
from tasks.common.errors import RadflowError
from tasks.common.hashing import file_sha256


@dataclass(frozen=True)
class ModelSource:
    """A model folder ready for `models.load_model`, and how predictions name it."""

    path: Path
    label: str  # "v3", or "<folder> (sha256 <12 hex>, unregistered here)"
    version: int | None


def _is_registry_ref(text: str) -> bool:
    text = text.strip().lower()
    return text in ALIASES or text.removeprefix("v").isdigit()


def _differs(folder: Path, checksums: dict[str, str]) -> list[str]:
    """The model files in `folder` whose SHA-256 is not the one recorded in `checksums`."""
    return [
        name
        for name in (WEIGHTS_FILE, CONFIG_FILE)
        if name in checksums and file_sha256(folder / name) != checksums[name]
    ]


def resolve_model(ref: str, registry_root: Path) -> ModelSource:
    """A registry ref (verified by the registry) or a model folder (verified where records exist)."""
    folder = Path(ref)
    if not folder.is_dir():
        registered = Registry(registry_root).load(ref)  # refuses a version whose checksums do not match
        return ModelSource(registered.path, f"v{registered.version}", registered.version)
    if _is_registry_ref(ref):
        raise RadflowError(
            f"--model {ref!r} is both a registry reference and a folder; for the folder write ./{ref}"
        )
    read_config(folder)  # a clear error when the folder holds no model
    manifest = folder / CHECKSUMS
    if manifest.is_file() and (changed := _differs(folder, json.loads(manifest.read_text()))):
        raise RadflowError(f"{folder}: {changed} differ from its {CHECKSUMS}; refusing to use it")
    weights = file_sha256(folder / WEIGHTS_FILE)
    registry = Registry(registry_root)
    known = registry.find_weights(weights) if (registry_root / "index.json").is_file() else []
    if not known:
        return ModelSource(folder, f"{folder.name} (sha256 {weights[:12]}, unregistered here)", None)
    matching = [
        version
        for version in known
        if not _differs(folder, json.loads((registry.verify(version) / CHECKSUMS).read_text()))
    ]
    if not matching:
        raise RadflowError(
            f"{folder}: its weights are registry version(s) {known} but its {CONFIG_FILE} differs from "
            "theirs; refusing to use it"
        )
    return ModelSource(folder, f"v{matching[-1]}", matching[-1])
