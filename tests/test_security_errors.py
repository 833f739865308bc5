"""Nothing private in an error (issue #21, item 3): an exception radflow does not expect is one line
naming its type and what to do, never its message (an OSError's names the file, here a folder named like
a patient), never the salt; a traceback only with RADFLOW_DEBUG=1, never without locals, and never in
the output a retrain flow run sends to the Prefect logs."""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path

import pytest

from flows.dvc_stages import StageFailed, run_stage
from tasks.common.errors import TransientError, from_os_error
from tests.defaults import params_under, write_params
from tests.project import tool_env
from tests.script_project import make_script_project

PLANTED = "MUELLER^ANNA-19640412"  # a file where radflow expects a folder, named the way patients are
SALT = "salt-value-that-must-never-be-printed-0123456789"
UNEXPECTED = "unexpected NotADirectoryError (ENOTDIR: Not a directory); check the project's files"


def ingest(project: Path, **env: str) -> str:
    """`radflow stage ingest` as DVC runs it; its output (stdout and stderr) once it has failed."""
    result = subprocess.run(
        ["radflow", "stage", "ingest"],
        cwd=project,
        env=tool_env() | {"RADFLOW_SALT": SALT, "COLUMNS": "200"} | env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    return result.stdout + result.stderr


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A project whose private folder would go below the planted file: ingest fails there, with the salt
    loaded (a local of the failing frame) and the path in the OSError."""
    params = params_under(tmp_path, "ingest.labels=folders")
    params["paths"]["private"] = str(tmp_path / PLANTED / "private")
    (tmp_path / PLANTED).write_text("not a folder")
    (tmp_path / "data" / "raw").mkdir(parents=True)
    return write_params(tmp_path, params)


def test_an_unexpected_error_is_one_line_without_the_path_or_the_salt(planted: Path) -> None:
    output = ingest(planted)
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines[-1].startswith(f"error: {UNEXPECTED}") and "RADFLOW_DEBUG=1" in lines[-1], output
    assert "Traceback" not in output and not any(line.startswith("error") for line in lines[:-1])
    assert "MUELLER" not in output and SALT not in output


def test_debug_shows_the_traceback_but_no_local_variables(planted: Path) -> None:
    output = ingest(planted, RADFLOW_DEBUG="1")
    assert "Traceback" in output and "NotADirectoryError" in output
    assert SALT not in output  # typer's pretty traceback shows no locals


@pytest.mark.slow  # a real `dvc repro` in a script project
def test_a_flow_runs_stage_prints_no_traceback_even_with_debug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_script_project(tmp_path / "project", extra=("ingest",))
    text = (
        (project / "params.yaml").read_text().replace("private: out/private", f"private: {PLANTED}/private")
    )
    (project / "params.yaml").write_text(text)
    (project / PLANTED).write_text("not a folder")
    monkeypatch.setenv("RADFLOW_DEBUG", "1")  # asked for, but a flow run's logs go to the Prefect UI
    monkeypatch.setenv("RADFLOW_SALT", SALT)
    logged: list[str] = []
    with pytest.raises(StageFailed) as failure:
        run_stage("ingest", project, logged.append)
    assert f"stage 'ingest' failed: {UNEXPECTED}" in str(failure.value)
    everything = "\n".join([*logged, str(failure.value)])
    assert "Traceback" not in everything and "MUELLER" not in everything and SALT not in everything


def test_a_transient_os_error_names_no_file() -> None:
    transient = from_os_error(OSError(errno.EIO, "Input/output error", f"/archive/{PLANTED}/1.dcm"))
    assert isinstance(transient, TransientError) and PLANTED not in str(transient)
    assert str(transient).startswith("EIO: Input/output error (transient; RADFLOW_DEBUG=1 shows which file)")
