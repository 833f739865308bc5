"""What the section classes declare, read back for the params tests: every section's class, each field's
accepted types (the arms of its union) with their bounds, choices and pattern."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import annotated_types
from pydantic.fields import FieldInfo

from flows.preflight import SECTIONS
from tasks.common.params import fields_of

__all__ = ["SECTIONS", "Arm", "arms", "fields_of"]


@dataclass(frozen=True)
class Arm:
    """One type a field accepts: `kind` is bool, int, float, str, Path, list, dict, None or "literal"."""

    kind: Any
    choices: tuple[Any, ...] = ()
    low: float | None = None  # bound below (inclusive when low_inclusive)
    low_inclusive: bool = True
    high: float | None = None
    high_inclusive: bool = True
    pattern: str | None = None
    min_length: int | None = None
    item: Arm | None = None  # a list's item type
    described: bool = False  # the field or type says in words what it accepts


def arms(info: FieldInfo) -> list[Arm]:
    """Every type `info`'s field accepts, with the constraints declared on it."""
    return _arms(info.annotation, list(info.metadata), bool(info.description))


def _arms(hint: Any, metadata: list[Any], described: bool) -> list[Arm]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        inner = [
            item
            for extra in args[1:]
            for item in (extra.metadata if isinstance(extra, FieldInfo) else [extra])
        ]
        said = any(isinstance(extra, FieldInfo) and extra.description for extra in args[1:])
        return _arms(args[0], [*metadata, *inner], described or said)
    if origin in (typing.Union, types.UnionType):
        return [
            arm
            for option in args
            for arm in _arms(option, metadata if option is not type(None) else [], described)
        ]
    if hint is type(None):
        return [Arm(None)]
    if origin is typing.Literal:
        return [Arm("literal", choices=args)]
    if origin in (list, tuple):
        return [Arm(list, item=_arms(args[0], [], False)[0])]
    if origin is dict:
        return [Arm(dict, described=described)]
    arm: dict[str, Any] = {"kind": hint, "described": described}
    for item in metadata:
        if isinstance(item, annotated_types.Ge):
            arm.update(low=item.ge, low_inclusive=True)
        elif isinstance(item, annotated_types.Gt):
            arm.update(low=item.gt, low_inclusive=False)
        elif isinstance(item, annotated_types.Le):
            arm.update(high=item.le, high_inclusive=True)
        elif isinstance(item, annotated_types.Lt):
            arm.update(high=item.lt, high_inclusive=False)
        elif hasattr(item, "pattern") and item.pattern:
            arm["pattern"] = item.pattern
        elif hasattr(item, "min_length") and item.min_length is not None:
            arm["min_length"] = item.min_length
    return [Arm(**arm)]


def accepts_type(arm: Arm, value: Any) -> bool:
    """Would `arm` accept `value`'s type (whatever its range)? ints are accepted where floats are."""
    if arm.kind is None:
        return value is None
    if arm.kind is bool:
        return isinstance(value, bool)
    if arm.kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if arm.kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if arm.kind in (str, Path, "literal"):
        return isinstance(value, str)
    if arm.kind is list:
        return isinstance(value, list)
    return isinstance(value, dict)
