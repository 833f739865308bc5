"""The `study` section of params.yaml, strictly parsed, and the runs a study is made of."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from flows.preflight import check_params
from flows.study.params import StudyDefinition, StudyParams
from tasks.common.errors import RadflowError
from tasks.common.params import apply_override, parse_section

NAME = re.compile(r"[A-Za-z0-9_]+")  # study and variant names: parts of git ref names (exp names)
SEED_KEY = "train.seed"  # what a study varies across seeds: training only, never the patient split
TARGET = "evaluate"  # the stage a run stops at: a study never runs promote


@dataclass(frozen=True)
class Run:
    """One experiment of a study: a variant at one training seed."""

    variant: str
    seed: int
    overrides: tuple[str, ...]  # SECTION.KEY=VALUE, the study's common ones first, train.seed last

    @property
    def label(self) -> str:
        return f"{self.variant} (seed {self.seed})"

    def name(self, study: str) -> str:
        """The DVC experiment's name, by which a finished run is found again."""
        return f"{study}-{self.variant}-s{self.seed}"


def parse_study_section(params: dict[str, Any]) -> StudyParams:
    """The `study` section, parsed strictly (each entry of `studies` a StudyDefinition)."""
    return parse_section(params, "study", StudyParams)


def pick_study(settings: StudyParams, name: str | None) -> tuple[str, StudyDefinition]:
    """The named study (default: `study.default`), or an error naming the defined ones."""
    chosen = settings.default if name is None else name
    if chosen not in settings.studies:
        raise RadflowError(
            f"unknown study {chosen!r}; studies in params.yaml: {', '.join(sorted(settings.studies))}"
        )
    return chosen, settings.studies[chosen]


def plan_runs(name: str, study: StudyDefinition, params: dict[str, Any]) -> list[Run]:
    """Every run of the study, variants in their params.yaml order and seeds within each; each run's
    overrides are applied to a copy of `params` and every section parsed, so a typo or a bad value stops
    the study before anything is queued."""
    where = f"study.studies.{name}"
    problems = [
        f"{label} {value!r}: valid: letters, digits and _"
        for label, value in [("study name", name), *(("variant name", v) for v in study.variants)]
        if not NAME.fullmatch(value)
    ]
    problems += [
        f"{where}.variants.{variant}: invalid value {overrides!r}; valid: a list of SECTION.KEY=VALUE strings"
        for variant, overrides in study.variants.items()
        if not isinstance(overrides, list) or not all(isinstance(item, str) for item in overrides)
    ]
    if study.reference not in study.variants:
        problems.append(
            f"{where}.reference {study.reference!r}: valid: one of its variants {sorted(study.variants)}"
        )
    if len(study.variants) < 2:
        problems.append(f"{where}.variants: valid: at least two variants (the reference and another)")
    if not study.seeds or len(set(study.seeds)) != len(study.seeds) or min(study.seeds) < 0:
        problems.append(f"{where}.seeds {study.seeds!r}: valid: distinct integers >= 0, at least one")
    if problems:
        raise RadflowError("; ".join(problems))
    runs = []
    for variant, overrides in study.variants.items():
        for override in [*study.common, *overrides]:
            if override.partition("=")[0].strip() == SEED_KEY:
                raise RadflowError(
                    f"{where}: {override!r}: the study sets {SEED_KEY} from its seeds; remove it"
                )
        for seed in study.seeds:
            run = Run(variant, seed, (*study.common, *overrides, f"{SEED_KEY}={seed}"))
            check_overrides(params, run.overrides, f"{where}.variants.{variant}")
            runs.append(run)
    return runs


def run_params(params: dict[str, Any], overrides: tuple[str, ...]) -> dict[str, Any]:
    """A copy of params with the run's overrides applied: what its experiment's params.yaml holds."""
    applied = copy.deepcopy(params)
    for override in overrides:
        apply_override(applied, override)
    return applied


def check_overrides(params: dict[str, Any], overrides: tuple[str, ...], where: str) -> None:
    """Parse every pipeline section of the run's params, as its stages will: a bad value fails now."""
    try:
        check_params(run_params(params, overrides))
    except RadflowError as error:
        raise RadflowError(f"{where}: {error}") from None
