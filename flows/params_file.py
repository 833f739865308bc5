"""Writing `--set SECTION.KEY=VALUE` overrides into params.yaml by changing only the lines they set.

A YAML round trip (ruamel, as `dvc exp run -S` uses) rewrites untouched lines too — `null` becomes empty,
quotes appear and vanish — so `git diff params.yaml` would show noise instead of the change. Here each
override replaces just the value text on its key's line, keeping indentation and the trailing comment,
and the result is checked by parsing it again.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tasks.common.atomic import write_text
from tasks.common.errors import RadflowError
from tasks.common.params import FastSafeLoader, apply_override

INDENT = 2  # params.yaml nests sections by two spaces


def _key_line(lines: list[str], dotted: str) -> int:
    """Index of the line that defines `dotted` (e.g. train.epochs), following the section nesting."""
    start, end = 0, len(lines)
    names = dotted.split(".")
    for depth, name in enumerate(names):
        indent = " " * (depth * INDENT)
        pattern = re.compile(rf"^{indent}{re.escape(name)}:(\s|$)")
        found = next((i for i in range(start, end) if pattern.match(lines[i])), None)
        if found is None:
            raise RadflowError(f"--set {dotted}: no line defines it in params.yaml; edit the file by hand")
        if depth == len(names) - 1:
            return found
        # The section's lines: those after its key indented deeper than it (blank lines included).
        inner = indent + " " * INDENT
        start = found + 1
        end = next((i for i in range(start, end) if lines[i].strip() and not lines[i].startswith(inner)), end)
    raise RadflowError(f"--set {dotted!r}: not of the form SECTION.KEY=VALUE")


def _with_value(line: str, raw_value: str) -> str:
    """`line` with the text between `key:` and its comment replaced by `raw_value`."""
    match = re.match(r"^(\s*[^:#]+:)(\s*)([^#\n]*?)(\s*#.*)?$", line)
    if match is None:
        raise RadflowError(f"cannot rewrite the params.yaml line {line.strip()!r}; edit the file by hand")
    key, _, old_value, comment = match.groups()
    if not comment:
        return f"{key} {raw_value}"
    # Keep the comment where it was: pad the new value to the old value's width where it fits.
    width = len(old_value)
    return f"{key} {raw_value.ljust(width)}{comment}"


def write_overrides(path: Path, overrides: list[str]) -> None:
    """Set each `SECTION.KEY=VALUE` in the file at `path`, changing only those lines."""
    text = path.read_text()
    lines = text.split("\n")
    expected = yaml.load(text, Loader=FastSafeLoader) or {}
    for override in overrides:
        dotted, _, raw_value = override.partition("=")
        apply_override(expected, override)
        index = _key_line(lines, dotted)
        lines[index] = _with_value(lines[index], raw_value.strip())
    result = "\n".join(lines)
    try:
        reads_back = yaml.load(result, Loader=FastSafeLoader) == expected
    except yaml.YAMLError:
        reads_back = False
    if not reads_back:
        raise RadflowError(
            f"--set {', '.join(overrides)}: params.yaml did not read back as intended "
            "(a value that spans several lines?); edit the file by hand"
        )
    write_text(path, result)
