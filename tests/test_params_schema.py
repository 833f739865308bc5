"""params.yaml and the section classes cannot drift apart: the same keys on both sides, every key with a
declared valid range, and what a comment says about valid values (its choices, its `(A-B)` range, its
`0 = off`-style special values) is what the class accepts."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tasks.common.errors import RadflowError
from tasks.common.params import parse_section
from tests.defaults import REPO_PARAMS, repo_params
from tests.params_schema import SECTIONS, Arm, arms, fields_of

LINE = re.compile(r"^(?P<indent> *)(?P<key>\w+):(?P<value>[^#]*?)\s*(?:#\s*(?P<comment>.*))?$")
RANGE = re.compile(r"(?:\(|;\s)(-?\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)(?=[;),]|$)")  # "(0-1)", "(0-1; ..", "; 0-5"
SPECIAL = re.compile(r'(?<![\w.-])(-?\d+(?:\.\d+)?|null|"") = ')  # "0 = off", "null = none", '"" = hub'


def comments() -> dict[str, dict[str, str]]:
    """{section: {key: its comment}} from params.yaml's text (the comments YAML parsing drops)."""
    found: dict[str, dict[str, str]] = {"": {}}
    section = ""
    for line in REPO_PARAMS.read_text().splitlines():
        match = LINE.match(line)
        if not match:
            continue
        if not match["indent"]:
            section = match["key"]
            found.setdefault(section, {})
        if match["indent"] or match["value"]:  # a key, or the top-level seed
            found[section if match["indent"] else ""][match["key"]] = match["comment"] or ""
    return found


CASES = [(name, key) for name, cls in SECTIONS.items() for key in fields_of(cls)]


def numeric(field_arms: list[Arm]) -> list[Arm]:
    return [arm for arm in field_arms if arm.kind in (int, float)]


def test_params_yaml_and_the_classes_have_the_same_keys() -> None:
    params = repo_params()
    assert set(params) == {"seed", *SECTIONS}
    for name, cls in SECTIONS.items():
        assert set(params[name]) == set(fields_of(cls)), name
        parse_section(params, name, cls)  # and the defaults are valid


def test_every_key_has_a_comment() -> None:
    found = comments()
    assert found[""].get("seed")
    for name, key in CASES:
        assert found[name].get(key), f"{name}.{key} has no comment in params.yaml"


@pytest.mark.parametrize(("name", "key"), CASES, ids=[f"{n}.{k}" for n, k in CASES])
def test_every_key_declares_its_valid_range(name: str, key: str) -> None:
    """A number has a bound, a text a rule or words saying what it may be; choices and true/false are
    their own range."""
    for arm in arms(fields_of(SECTIONS[name])[key]):
        if arm.kind in (int, float):
            assert arm.low is not None or arm.high is not None, f"{name}.{key}: a number without a bound"
        elif arm.kind is list:
            assert arm.item is not None and (arm.item.kind == "literal" or arm.item.described), key
        elif arm.kind not in (bool, None, "literal"):  # str, Path, dict
            assert arm.described, f"{name}.{key}: say what is valid in Field(description=...)"


@pytest.mark.parametrize(("name", "key"), CASES, ids=[f"{n}.{k}" for n, k in CASES])
def test_the_comment_agrees_with_the_class(name: str, key: str) -> None:
    check_comment(name, key, comments()[name][key])


def check_comment(name: str, key: str, comment: str) -> None:
    """Fail when `comment` names a choice, a range or a special value that `name.key` does not have."""
    field_arms = arms(fields_of(SECTIONS[name])[key])
    choices = [str(choice) for arm in field_arms if arm.kind == "literal" for choice in arm.choices]
    choices += [
        str(c) for arm in field_arms if arm.item and arm.item.kind == "literal" for c in arm.item.choices
    ]
    for choice in choices:  # each choice is named in the comment ...
        assert re.search(rf"(?<![\w-]){re.escape(choice)}(?![\w-])", comment), (
            f"{choice!r} not in {comment!r}"
        )
    if choices and " | " in comment:  # ... and the comment's "a (..) | b | c" lists only choices
        pieces = comment.split(" | ")
        listed = [pieces[0].split(": ", 1)[-1], *pieces[1:]]
        assert {re.match(r"[\w-]+", piece.strip())[0] for piece in listed} <= set(choices), comment  # type: ignore[index]
    for low, high in RANGE.findall(comment):  # "(0-1)": the bounds the class declares
        (arm,) = numeric(field_arms)
        assert (arm.low, arm.high) == (float(low), float(high)), f"{name}.{key}: comment says {low}-{high}"
    for special in SPECIAL.findall(comment):  # "0 = off": a value the class accepts
        value: Any = {"null": None, '""': ""}.get(special, special)
        if isinstance(value, str) and value:
            value = float(value) if "." in value else int(value)
        params = repo_params()
        params[name][key] = value
        try:
            parse_section(params, name, SECTIONS[name])
        except RadflowError as error:
            pytest.fail(f"params.yaml says {name}.{key} may be {special}, the class refuses it: {error}")


@pytest.mark.parametrize(
    ("name", "key", "comment", "message"),
    [
        ("train", "dropout", "classifier dropout probability (0-0.8)", "comment says 0-0.8"),
        ("train", "optimizer", "adamw | sgd | rmsprop", "rmsprop"),
        ("train", "optimizer", "adamw (decoupled weight decay)", "'sgd' not in"),
        ("ingest", "workers", "worker processes; -1 = one per CPU core", "may be -1"),
        ("retrain", "retries", "retries of a stage; 0-9", "comment says 0-9"),
        ("pacs", "url", "DICOMweb base; null = no PACS", None),
    ],
)
def test_a_disagreeing_comment_is_caught(name: str, key: str, comment: str, message: str | None) -> None:
    """The comparison fails on a comment that promises another range, choice or special value."""
    if message is None:
        check_comment(name, key, comment)
        return
    with pytest.raises((AssertionError, pytest.fail.Exception), match=re.escape(message)):
        check_comment(name, key, comment)


def test_comments_are_read_per_section() -> None:
    found = comments()
    assert found["train"]["batch_size"] != found["evaluate"]["batch_size"]
    assert found[""]["seed"].startswith("global seed")
