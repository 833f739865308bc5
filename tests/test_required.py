"""A missing Orthanc or MLflow extra fails a CI / `make test` run and is skipped loudly elsewhere: checked by
running pytest on a two-test file with the Orthanc binary off PATH and mlflow hidden, and `make
pacs-server` with no way to install Orthanc."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.required import REQUIRE_ENV

ROOT = Path(__file__).resolve().parents[1]

# The real fixtures (tests/conftest.py, loaded as a plugin); mlflow hidden as if the extra were missing.
NEEDS_BOTH = """
import sys

sys.modules["mlflow"] = None  # import mlflow now raises ImportError


def test_needs_orthanc(orthanc):
    pass


def test_needs_the_mlflow_extra(mlflow):
    pass
"""


def _env(path: Path, **extra: str) -> dict[str, str]:
    """This process's environment with PATH = `path` only and neither switch set, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", REQUIRE_ENV)}
    return {**env, "PATH": str(path), "PYTHONPATH": str(ROOT), **extra}


def _pytest_without_orthanc(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_needs_both.py").write_text(NEEDS_BOTH)
    empty = tmp_path / "bin"
    empty.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-rs"]
    return subprocess.run(
        [*command, "--rootdir", str(tmp_path), "test_needs_both.py"],
        cwd=tmp_path,
        env=_env(empty, **extra),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.parametrize("switch", [{"CI": "true"}, {REQUIRE_ENV: "1"}], ids=["CI", "make-test"])
def test_missing_orthanc_and_mlflow_fail_where_green_is_evidence(
    tmp_path: Path, switch: dict[str, str]
) -> None:
    run = _pytest_without_orthanc(tmp_path, **switch)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "2 errors" in run.stdout and "skipped" not in run.stdout.splitlines()[-1], run.stdout  # in setup
    assert "orthanc + orthanc-dicomweb are not installed" in run.stdout
    assert "radflow[mlflow] extra is not installed" in run.stdout


def test_missing_orthanc_and_mlflow_skip_loudly_in_a_quick_loop(tmp_path: Path) -> None:
    run = _pytest_without_orthanc(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 skipped" in run.stdout, run.stdout
    assert "2 test(s) NOT TESTED for a missing requirement" in run.stdout


def test_make_pacs_server_fails_when_orthanc_cannot_be_installed(tmp_path: Path) -> None:
    make, id_ = shutil.which("make"), shutil.which("id")
    assert make is not None and id_ is not None, "make and id are needed for `make test` itself"
    bin_dir = tmp_path / "bin"  # no Orthanc and no apt-get: nothing can install it
    bin_dir.mkdir()
    (bin_dir / "id").symlink_to(id_)
    run = subprocess.run(
        [make, "-s", "-C", str(ROOT), "pacs-server"],
        env=_env(bin_dir),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode != 0, run.stdout + run.stderr
    assert "ERROR: Orthanc is not installed" in run.stdout
