"""The hostile-case generator itself: enough cases, every category, reproducible byte for byte."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pydicom
import pytest

from tests.fault.mutations import write_good_files, write_hostile_cases
from tests.project import file_contents

pytestmark = pytest.mark.fault

CATEGORIES = {
    "truncated-dicom", "truncated-nifti", "bitflip-dicom-header", "bitflip-dicom-pixels",
    "bitflip-nifti-header", "wrong-length", "absurd-dimensions", "bad-spacing", "wrong-vr",
    "recursive-sequence", "nan-inf-volume", "zero-byte", "huge-header", "symlink", "odd-name",
    "dir-named-like-file", "special-file", "bad-codec", "wrong-type",
}  # fmt: skip


def test_generator_makes_hundreds_of_named_cases_reproducibly(tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "raw", tmp_path / "b" / "raw"
    first.mkdir(parents=True)
    second.mkdir(parents=True)
    cases = write_hostile_cases(first, seed=7)
    assert write_hostile_cases(second, seed=7) == cases
    assert file_contents(first) == file_contents(second)

    assert len(cases) >= 300
    assert len({case.name for case in cases}) == len(cases)
    assert set(Counter(case.category for case in cases)) == CATEGORIES
    assert all(case.name.startswith(case.category) for case in cases)


def test_good_files_are_valid_and_hostile_cases_really_break_a_naive_reader(tmp_path: Path) -> None:
    good = write_good_files(tmp_path, seed=7)
    for path in good:
        if path.suffix == ".dcm":
            assert pydicom.dcmread(tmp_path / path).pixel_array.size > 0
    cases = write_hostile_cases(tmp_path, seed=7)
    truncated = [c for c in cases if c.category == "truncated-dicom"]
    failures = 0
    for case in truncated:
        try:
            pydicom.dcmread(tmp_path / case.path).pixel_array  # noqa: B018 - decoding is the point
        except Exception:
            failures += 1
    assert failures > len(truncated) // 2  # the mutations are hostile, not cosmetic
