"""The project's data locations, parsed once from params.yaml's `paths` section."""

from __future__ import annotations

import os
import stat
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, model_validator

from tasks.common.params import InvalidValue, Lax, parse_section, section

Folder = Annotated[Path, Lax, Field(description="a folder (relative to the project root, or absolute)")]


@section("paths")
class ProjectPaths:
    """Where each stage reads and writes; relative paths are relative to the project root."""

    ingested: Folder
    private: Folder
    preprocessed: Folder
    model: Folder
    checkpoints: Folder
    train_live: Folder
    evaluation: Folder
    promotion: Folder
    registry: Folder
    monitor: Folder

    @model_validator(mode="after")
    def folders_apart(self) -> ProjectPaths:
        """Each a folder of its own: DVC cannot track a stage output inside another, and the operator-only
        `private` folder must not sit inside an output that DVC caches or pushes."""
        places = {name: Path(os.path.normpath(path)) for name, path in asdict(self).items()}
        for name, path in places.items():
            if path == Path("."):
                raise InvalidValue(name, str(path), "a folder, not the project root")
        for name, path in places.items():
            inside = [other for other, at in places.items() if other != name and path.is_relative_to(at)]
            if inside:
                where = "the same folder as" if path == places[inside[0]] else "inside"
                raise InvalidValue(
                    name,
                    str(path),
                    f"a folder apart from every other path (it is {where} paths.{inside[0]}; "
                    f"all: {', '.join(map(str, places.values()))})",
                )
        return self


def project_paths(params: dict[str, Any]) -> ProjectPaths:
    """Parse params.yaml's `paths` section."""
    return parse_section(params, "paths", ProjectPaths)


def printable_path(path: str | os.PathLike[str]) -> str:
    """`path` as text any UTF-8 table can hold: a name that is not valid UTF-8 (a Latin-1 `M\\xfcller.dcm`
    from an old Windows share, which Python holds as lone surrogates) gets its bad bytes escaped."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def make_private(folder: Path) -> Path:
    """Create `folder` (paths.private) for its owner only (0700), tightening an existing one: it holds
    the salt and tables of source paths, which name patients. Returns the folder."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if stat.S_IMODE(folder.stat().st_mode) != 0o700:
        folder.chmod(0o700)
    return folder
