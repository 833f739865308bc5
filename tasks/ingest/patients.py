"""Patient keys from file and folder names, for files whose header carries none (JPEG, PNG, NIfTI).

Without a patient key every image counts as its own patient, and a patient's other images can land in
the test split: image-level splits inflate accuracy by 29-55% (Yagis et al., 2021). So by default
(`ingest.patient_pattern: auto`) the naming conventions of the common public sets are recognised:

| convention | example (patient key in brackets) |
| --- | --- |
| Kaggle chest X-ray | `[person12]_bacteria_45.jpeg`, `[IM-0115]-0001.jpeg`, `[NORMAL2-IM-0003]-0001.jpeg` |
| NIH ChestX-ray14 | `[00000001]_000.png` |
| CheXpert | `[patient00001]/study1/view1_frontal.jpg` |
| MIMIC-CXR-JPG | `p10/[p10000032]/s50414267/<id>.jpg` |
| folder per patient | `PNEUMONIA/[patient042]/study1/view1.jpg` (the folder below the class folder) |

An explicit regex (named group `patient`, else the whole match) replaces the conventions. Python's
`re` refuses a group name used twice, which is what `person(?P<patient>\\d+)_|IM-(?P<patient>\\d+)-`
needs, so such a pattern is split into its top-level alternatives, each compiled on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tasks.common.errors import RadflowError

AUTO = "auto"
FOLDER = "folder"  # the convention name of "a folder per patient"
PATTERN = "pattern"  # the convention name of an explicit ingest.patient_pattern


@dataclass(frozen=True)
class Convention:
    """A public data set's file naming: `regex` is searched in the path relative to the source."""

    name: str  # the key written to the manifest's patient_source column
    title: str  # what the ingest summary shows
    regex: re.Pattern[str]


def _convention(name: str, title: str, regex: str) -> Convention:
    return Convention(name, title, re.compile(regex, re.IGNORECASE))


CONVENTIONS = (
    _convention(
        "kaggle-chest-xray",
        "Kaggle chest X-ray names",
        r"(?:^|/)(?:(?P<patient>person\d+)_(?:bacteria|virus)_\d+"
        r"|(?P<im>(?:NORMAL\d*-)?IM-\d+)-\d+)\.[a-z]+$",
    ),
    _convention("nih-chestxray14", "NIH ChestX-ray14 names", r"(?:^|/)(?P<patient>\d{8})_\d{3}\.png$"),
    _convention("chexpert", "CheXpert folders", r"(?:^|/)(?P<patient>patient\d+)/study\d+/[^/]+$"),
    _convention("mimic-cxr-jpg", "MIMIC-CXR-JPG folders", r"(?:^|/)p\d\d/(?P<patient>p\d+)/s\d+/[^/]+$"),
)
TITLES = {
    **{convention.name: convention.title for convention in CONVENTIONS},
    FOLDER: "a folder per patient",
    PATTERN: "ingest.patient_pattern",
    "csv": "the labels CSV's patient column",
    "header": "the DICOM header (PatientID)",
}


@dataclass(frozen=True)
class NamedPatient:
    """A patient key found in a path, and the convention that found it ("" when none did)."""

    key: str = ""
    source: str = ""


class PatientNames:
    """Finds patient keys in relative paths, by the public conventions (`auto`) or an explicit regex."""

    def __init__(self, setting: str | None) -> None:
        self.auto = setting == AUTO
        self.alternatives = [] if setting in (None, AUTO) else compile_pattern(setting)

    def find(self, relative: str, folder_depth: int) -> NamedPatient:
        """The patient key in `relative` (a POSIX path under the source). `folder_depth`: which of the
        path's parts would be a patient folder (the one below the class folder, or the top-most one
        that is not a split folder); it counts only when it is a folder, not the file itself."""
        if self.alternatives:
            name = relative.rsplit("/", 1)[-1]
            key = _search(self.alternatives, name) or _search(self.alternatives, relative)
            return NamedPatient(key, PATTERN) if key else NamedPatient()
        if not self.auto:
            return NamedPatient()
        for convention in CONVENTIONS:
            match = convention.regex.search(relative)
            if match:
                return NamedPatient(next(v for v in match.groups() if v), convention.name)
        parts = relative.split("/")
        if folder_depth < len(parts) - 1:
            return NamedPatient(parts[folder_depth], FOLDER)
        return NamedPatient()


def compile_pattern(pattern: str) -> list[re.Pattern[str]]:
    """The regex, or its top-level alternatives when they reuse a group name (as `patient` twice)."""
    try:
        return [re.compile(pattern)]
    except re.error as error:
        if "redefinition of group name" not in str(error):
            raise RadflowError(
                f"ingest.patient_pattern {pattern!r} is not a valid regular expression: {error}; "
                "give a regex with a named group 'patient', 'auto' or null"
            ) from None
    compiled = []
    for alternative in split_alternatives(pattern):
        try:
            compiled.append(re.compile(alternative))
        except re.error as error:
            raise RadflowError(
                f"ingest.patient_pattern {pattern!r}: alternative {alternative!r} is not a valid regular "
                f"expression ({error}); a group name may repeat only across top-level '|' alternatives"
            ) from None
    return compiled


def split_alternatives(pattern: str) -> list[str]:
    """`a|b(c|d)|[|]` -> ["a", "b(c|d)", "[|]"]: split at '|' outside groups, classes and escapes."""
    pieces, start, depth, in_class, position = [], 0, 0, False, 0
    while position < len(pattern):
        char = pattern[position]
        if char == "\\":
            position += 1  # the escaped character is literal
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern[position + 1 : position + 2] == "^":
                position += 1
            if pattern[position + 1 : position + 2] == "]":
                position += 1  # a leading ']' is a literal inside a class
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            pieces.append(pattern[start:position])
            start = position + 1
        position += 1
    return [*pieces, pattern[start:]]


def _search(alternatives: list[re.Pattern[str]], text: str) -> str:
    """The key of the leftmost match of any alternative (the first alternative on ties), as `re` would
    find it for the whole alternation; the `patient` group, else the whole match."""
    found = [match for regex in alternatives if (match := regex.search(text))]
    if not found:
        return ""
    match = min(found, key=lambda m: m.start())  # min keeps the first of equal starts
    return match.groupdict().get("patient") or match.group(0)
