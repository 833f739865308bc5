"""Reading params.yaml once, applying `--set` overrides, and parsing sections into typed dataclasses.

Stages call `parse_section(params, "train", TrainParams)`; helpers receive the typed object and never
open params.yaml themselves. Unknown keys and wrong types are errors that name the valid choices.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tasks.common.errors import RadflowError

PARAMS_FILE = Path("params.yaml")
# libyaml's safe loader when PyYAML was built with it: every stage starts by loading params.yaml, and the
# C loader is several times faster (BENCHMARKS.md, code choices).
FastSafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
T = TypeVar("T")


def load_params(path: Path = PARAMS_FILE, overrides: list[str] | None = None) -> dict[str, Any]:
    """Load params.yaml and apply `SECTION.KEY=VALUE` overrides (values parsed as YAML scalars)."""
    if not path.exists():
        raise RadflowError(f"{path} not found (looked in {Path.cwd()}); run radflow from the project root")
    params = yaml.load(path.read_text(), Loader=FastSafeLoader) or {}
    for override in overrides or []:
        apply_override(params, override)
    seed = params.get("seed")  # the one top-level setting: every stage reads it as int(params["seed"])
    if "seed" in params and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise RadflowError(f"seed: expected an integer, got {seed!r}")
    return params


def apply_override(params: dict[str, Any], override: str) -> None:
    """Set one dotted key in place; the key must already exist so a typo cannot pass silently."""
    key, sep, raw_value = override.partition("=")
    if not sep or not key:
        raise RadflowError(f"override {override!r} is not of the form SECTION.KEY=VALUE")
    *parents, leaf = key.split(".")
    node = params
    for part in parents:
        if not isinstance(node.get(part), dict):
            raise RadflowError(f"override {override!r}: no section {part!r} in params.yaml")
        node = node[part]
    if leaf not in node:
        raise RadflowError(f"override {override!r}: unknown key {leaf!r}; valid keys: {sorted(node)}")
    node[leaf] = yaml.safe_load(raw_value)


Check = tuple[Callable[[Any], bool], str]  # (test of a value, what is valid, in words)


def check_values(section: str, settings: object, checks: dict[str, Check]) -> None:
    """A section's range checks, run from its dataclass's `__post_init__` (parse_section has checked
    types and choices): the first bad value raises one line naming what is valid."""
    for name, (ok, valid) in checks.items():
        value = getattr(settings, name)
        if not ok(value):
            raise RadflowError(f"{section}.{name}: invalid value {value!r}; valid: {valid}")


def parse_section(params: dict[str, Any], name: str, cls: type[T]) -> T:
    """Build dataclass `cls` from `params[name]`, rejecting unknown keys and wrong types."""
    if name not in params:
        raise RadflowError(f"params.yaml has no section {name!r}")
    return from_dict(params[name], cls, where=name)


def from_dict(data: Any, cls: type[T], where: str) -> T:
    """Strictly convert a mapping into dataclass `cls` (nested dataclasses allowed)."""
    if not isinstance(data, dict):
        raise RadflowError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise RadflowError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    values = {key: _coerce(value, hints[key], f"{where}.{key}") for key, value in data.items()}
    try:
        return cls(**values)
    except TypeError as error:  # a required key is missing
        raise RadflowError(f"{where}: {error}") from None


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check `value` against a type hint; ints are accepted where floats are expected."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(value, hint, where)  # type: ignore[arg-type]
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise RadflowError(f"{where}: invalid value {value!r}; valid choices: {list(choices)}")
        return value
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _coerce(value, option, where)
            except RadflowError:
                continue
        raise RadflowError(f"{where}: {value!r} does not match {hint}")
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise RadflowError(f"{where}: expected a list, got {value!r}")
        (item_hint, *_) = typing.get_args(hint) or (Any,)
        items = [_coerce(item, item_hint, f"{where}[{i}]") for i, item in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise RadflowError(f"{where}: expected a mapping, got {value!r}")
        return value
    if hint is Any:
        return value
    if hint is type(None):
        if value is not None:
            raise RadflowError(f"{where}: expected null, got {value!r}")
        return None
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is Path and isinstance(value, str):
        return Path(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise RadflowError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value
