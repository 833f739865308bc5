"""The `study` section of params.yaml as section classes (ranges on the fields, one error line)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from tasks.common.params import InvalidValue, Lax, Seed, section

Overrides = list[Annotated[str, Field(strict=True, description="a SECTION.KEY=VALUE override")]]


# Not strict as a whole, so that a YAML mapping becomes one (a strict dataclass accepts only an instance);
# each field is strict on its own.
@pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class StudyDefinition:
    """One named study (see the comments in params.yaml)."""

    reference: Annotated[str, Field(strict=True, description="the name of one of its variants")]
    metric: Literal["roc_auc"]
    seeds: list[Seed]
    common: Overrides
    variants: dict[str, Overrides]


@section("study")
class StudyParams:
    """params.yaml `study` section."""

    default: Annotated[str, Field(description="the name of one of study.studies")]
    jobs: Annotated[int, Field(ge=1)]
    bootstrap_samples: Annotated[int, Field(ge=100)]
    folder: Annotated[Path, Lax, Field(description="a folder (relative to the project root, or absolute)")]
    studies: Annotated[
        dict[str, StudyDefinition],
        Lax,
        Field(min_length=1, description="a mapping of study names to studies (reference, metric, seeds...)"),
    ]

    @model_validator(mode="after")
    def _default_is_defined(self) -> StudyParams:
        if self.default not in self.studies:
            raise InvalidValue("default", self.default, f"one of the studies: {sorted(self.studies)}")
        return self
