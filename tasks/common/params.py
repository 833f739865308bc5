"""Reading params.yaml once, applying `--set` overrides, and parsing sections into typed, checked objects.

Stages call `parse_section(params, "train", TrainParams)`; helpers receive the typed object and never
open params.yaml themselves. Each section is a `@section("name")` class: a frozen pydantic dataclass
whose fields declare their type, choices (Literal) and range (`Field(ge=..., lt=...)`); rules between
fields are its `model_validator`s. Whatever is wrong (an unknown key, a wrong type, a value out of range,
two values that do not fit together) is one `RadflowError` line before any work starts:
`SECTION.KEY: invalid value X; valid: <what the field accepts, in words>`.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass as pydantic_dataclass
from pydantic.fields import FieldInfo
from typing_extensions import dataclass_transform

from tasks.common.errors import RadflowError
from tasks.common.urls import redacted

PARAMS_FILE = Path("params.yaml")
# libyaml's safe loader when PyYAML was built with it: every stage starts by loading params.yaml, and the
# C loader is several times faster (BENCHMARKS.md, code choices).
FastSafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
T = TypeVar("T")
# Strict: a YAML string is not a number and `true` is not 1; an int is still accepted where a float is
# expected (pydantic's strict mode allows that one widening). NaN and infinity are never a valid setting.
SECTION_CONFIG = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
Seed = Annotated[int, Field(strict=True, ge=0, lt=2**32)]  # numpy, torch and scikit-learn all take it
Lax = Field(strict=False)  # for the types YAML does not have: a string becomes a Path, a list a tuple
EnvName = Annotated[
    str,
    Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="an environment variable name (A-Z, a-z, 0-9, _)"),
]
BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))  # annotated_types' names, in words


class InvalidValue(ValueError):
    """A rule a field's type and range cannot express, broken: raised by a section's validators and
    reported, like every other error, as `SECTION.KEY: invalid value X; valid: ...`."""

    def __init__(self, key: str, value: Any, valid: str) -> None:
        super().__init__(f"{key}: invalid value {value!r}; valid: {valid}")


@dataclass_transform(field_specifiers=(Field,), frozen_default=True)
def section(name: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: a frozen, strict pydantic dataclass for params.yaml's section `name`.

    It stays a dataclass (`dataclasses.replace`/`asdict` work, and a `replace` is checked again), and its
    constructor raises RadflowError with the one-line message instead of pydantic's ValidationError.
    """

    def build(cls: type[T]) -> type[T]:
        model = pydantic_dataclass(frozen=True, config=SECTION_CONFIG)(cls)
        validate = model.__init__

        @functools.wraps(validate)
        def checked_init(self: Any, *args: Any, **kwargs: Any) -> None:
            try:
                validate(self, *args, **kwargs)
            except ValidationError as error:
                given = dict(zip(fields_of(model), args, strict=False)) | kwargs
                raise RadflowError(error_line(name, model, given, error)) from None

        model.__init__ = checked_init  # type: ignore[method-assign]
        model.__section__ = name  # type: ignore[attr-defined]
        return model  # type: ignore[return-value]

    return build


def fields_of(cls: type) -> dict[str, FieldInfo]:
    """A section's fields in declaration order (pydantic's own record of them)."""
    return dict(cls.__pydantic_fields__)  # type: ignore[attr-defined]


def valid_text(field: FieldInfo) -> str:
    """What a field accepts, in words: its description when it has one, else its type and range."""
    return field.description or describe(field.annotation, field.metadata)


def describe(hint: Any, metadata: list[Any] | tuple[Any, ...] = ()) -> str:
    """`float` with Ge(0), Lt(1) -> "a number >= 0 and < 1"; Literal -> "a | b"; ... (or null)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:  # a field type used inside another (a list's items, a union's arm)
        described = [
            extra.description for extra in args[1:] if isinstance(extra, FieldInfo) and extra.description
        ]
        inner = [item for extra in args[1:] for item in _constraints(extra)]
        return described[0] if described else describe(args[0], [*metadata, *inner])
    if origin in (typing.Union, types.UnionType):
        text = ", or ".join(describe(arm) for arm in args if arm is not type(None))
        return f"{text}, or null" if type(None) in args else text
    if origin is typing.Literal:
        return " | ".join(str(choice) for choice in args)
    if origin in (list, tuple):
        return f"a list of: {describe(args[0])}"
    if origin is dict:
        return "a mapping"
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a text", Path: "a path"}
    limits = [
        f"{symbol} {getattr(item, attr)}"
        for item in metadata
        for attr, symbol in BOUNDS
        if hasattr(item, attr)
    ]
    return f"{words.get(hint, getattr(hint, '__name__', str(hint)))} {' and '.join(limits)}".strip()


def _constraints(extra: Any) -> list[Any]:
    return list(extra.metadata) if isinstance(extra, FieldInfo) else [extra]


def error_line(name: str, cls: type, given: dict[str, Any], error: ValidationError) -> str:
    """pydantic's first error as radflow's one line (no traceback, no pydantic URL)."""
    first = error.errors()[0]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, InvalidValue):
        return f"{name}.{cause}"
    fields = fields_of(cls)
    key = str(first["loc"][0]) if first["loc"] else ""
    if first["type"] == "unexpected_keyword_argument":
        return f"{name}.{key}: unknown key; valid keys: {', '.join(fields)}"
    if key not in fields:  # a rule that raised something else than InvalidValue: pydantic's words
        return f"{name}: {first['msg']}"
    if len(first["loc"]) > 2:  # deep inside a nested section (study.studies.NAME.variants.VARIANT)
        path = ".".join(str(part) for part in first["loc"])
        valid = first["msg"].removeprefix("Input should be ")
        return f"{name}.{path}: invalid value {_shown(first['input'])!r}; valid: {valid}"
    if first["type"] == "missing":
        return f"{name}.{key}: missing; valid: {valid_text(fields[key])}"
    value = _shown(given.get(key, first["input"]))
    return f"{name}.{key}: invalid value {value!r}; valid: {valid_text(fields[key])}"


def _shown(value: Any) -> Any:
    """A value as an error repeats it: a URL's credentials never are."""
    return redacted(value) if isinstance(value, str) else value


def load_params(path: Path = PARAMS_FILE, overrides: list[str] | None = None) -> dict[str, Any]:
    """Load params.yaml and apply `SECTION.KEY=VALUE` overrides (values parsed as YAML scalars)."""
    if not path.exists():
        raise RadflowError(f"{path} not found (looked in {Path.cwd()}); run radflow from the project root")
    params = yaml.load(path.read_text(), Loader=FastSafeLoader) or {}
    for override in overrides or []:
        apply_override(params, override)
    if "seed" in params:  # the one top-level setting: every stage reads it as int(params["seed"])
        try:
            TypeAdapter(Seed).validate_python(params["seed"])
        except ValidationError:
            raise RadflowError(f"seed: invalid value {params['seed']!r}; valid: {describe(Seed)}") from None
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


def parse_section(params: dict[str, Any], name: str, cls: type[T]) -> T:
    """Build section class `cls` (a `@section`) from `params[name]`: every value checked."""
    if name not in params:
        raise RadflowError(f"params.yaml has no section {name!r}")
    return parse(params[name], cls)


def parse(data: Any, cls: type[T]) -> T:
    """Build section class `cls` from a mapping (a params.yaml section, or one stored in a model's
    config.json), refusing what `cls` does not accept in the one-line form."""
    if not isinstance(data, dict):
        name, keys = cls.__section__, ", ".join(fields_of(cls))  # type: ignore[attr-defined]
        raise RadflowError(f"{name}: invalid value {data!r}; valid: a mapping of its keys ({keys})")
    return cls(**{str(key): value for key, value in data.items()})
