"""What a green run may not go without: the real Orthanc PACS and the MLflow extra.

A skipped test reads as a pass in a green run, and the PACS tests are the only evidence for SECURITY.md's
PACS guarantees. So where green is evidence (CI sets `CI=true`; `make test` sets RADFLOW_REQUIRE_REAL=1)
a missing requirement fails the test that needs it. A developer's quick loop (`make test-fast`, a bare
`pytest`) may lack one: those tests are skipped with a reason starting NOT TESTED, and the session ends
with a banner counting them (tests/conftest.py), so the skip is never silent.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest

REQUIRE_ENV = "RADFLOW_REQUIRE_REAL"
NOT_TESTED = "NOT TESTED"  # starts the reason of every skip for a missing requirement


def required() -> bool:
    """Whether a missing requirement must fail the run (CI, `make test`) rather than skip."""
    return os.environ.get(REQUIRE_ENV) == "1" or os.environ.get("CI", "").lower() == "true"


def missing(reason: str) -> NoReturn:
    """Fail (CI, `make test`) or skip loudly (a quick loop) the test that needs what is missing."""
    if required():
        pytest.fail(f"{reason} (required here: CI=true or {REQUIRE_ENV}=1)", pytrace=False)
    pytest.skip(f"{NOT_TESTED}: {reason}")


def require_import(name: str, reason: str) -> ModuleType:
    """The module `name`, or `missing(reason)` where it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        pass  # failed or skipped outside the except block: the report shows `reason`, not the chained error
    missing(reason)
