"""SIGKILL during ingest, then rerun: the result is byte-identical to an uninterrupted run.

The killed run dies (with its worker processes) once its first images are on disk; whatever it left
must never be taken as complete. The kill cannot come too late on a loaded machine: the test-only decode
hook holds the last file's decode (`decode-hang`, under a time limit longer than the test), so the run
is still going whenever the marker (a shard on disk) appears; nothing races a clock. (Training's
kill-and-resume is tested in tests/test_train.py, the registry's in tests/test_registry.py and
tests/fault/test_fault_registry.py.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tasks.ingest.decode import FAULT_ENV
from tasks.ingest.state import STATE_FILE, states
from tests.defaults import repo_params, write_params
from tests.dicom_factory import identity, write_dicom, write_nifti
from tests.project import run, tool_env

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.timeout(1500)]

FILES = 240
HELD = "vol3.nii.gz"  # listed last: the killed run's decode of it hangs until the kill
TIMEOUT_S = 3600  # ingest.timeout_s: longer than the test, so the held decode never times out


def _archive(source: Path) -> None:
    rng = np.random.default_rng(5)
    for index in range(FILES):
        who = identity(patient_id=f"CRASH{index // 4:04d}", sop_uid=f"1.2.826.0.1.3680043.8.498.9{index:04d}")
        label = ("normal", "abnormal")[index % 2]
        pixels = rng.integers(0, 4096, size=(64, 64)).astype(np.uint16)  # (H, W)
        write_dicom(source / label / f"img{index:04d}.dcm", pixels, who=who)
    for index in range(4):
        write_nifti(source / "normal" / f"vol{index}.nii.gz", rng.normal(size=(32, 32, 5)).astype(np.float32))


def _project(root: Path, source: Path) -> Path:
    return write_params(
        root,
        repo_params(
            f"ingest.source={source}",
            "ingest.labels=folders",
            "ingest.workers=2",
            f"ingest.timeout_s={TIMEOUT_S}",
        ),
    )


def _outputs(project: Path) -> dict[str, bytes]:
    """Every file ingest produced (tables, images, private reports), by relative path, and the state's
    files and images as stored (not its header: it signs this project's paths and mtimes; nor the
    database's bytes: their layout depends on the order rows came in); not the salt (per project)."""
    folders = [project / "data/ingested", project / "private"]
    outputs = {
        str(path.relative_to(project)): path.read_bytes()
        for folder in folders
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != "salt"
    }
    with contextlib.closing(sqlite3.connect(project / "private" / STATE_FILE)) as db:
        outputs[f"private/{STATE_FILE}"] = repr(list(states(db, "main"))).encode()
    return outputs


def test_ingest_killed_mid_run_then_rerun_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    source = tmp_path / "archive"
    _archive(source)
    reference = _project(tmp_path / "reference", source)
    result = run(["radflow", "stage", "ingest"], reference, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    killed = _project(tmp_path / "killed", source)
    images = killed / "data/ingested/images"
    process = subprocess.Popen(
        ["radflow", "stage", "ingest"],
        cwd=killed,
        env=tool_env() | {FAULT_ENV: f"decode-hang:{HELD}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill takes the decoding workers too
    )
    deadline = time.monotonic() + 600  # a bound on a stuck test, not a timing: the run waits for the kill
    while process.poll() is None and time.monotonic() < deadline:
        if images.is_dir() and any(images.glob("*.npys")):
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL, "ingest ended before the kill (it cannot, held)"
    assert any(images.glob("*.npys")), "no shard was written before the held file"
    assert not (killed / "data/ingested/manifest.csv").exists()  # nothing claims the run completed
    for shard in images.glob("*.npys"):
        _read_every_record(shard)  # a shard under its final name is whole (written, then renamed)

    rerun = run(["radflow", "stage", "ingest"], killed, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    expected, actual = _outputs(reference), _outputs(killed)
    assert sorted(actual) == sorted(expected)
    assert [name for name in sorted(actual) if actual[name] != expected[name]] == []


def _read_every_record(shard: Path) -> None:
    """Read a shard record by record to its end; raises if any record is cut short."""
    with open(shard, "rb") as handle:
        end = os.fstat(handle.fileno()).st_size
        while handle.tell() < end:
            np.lib.format.read_array(handle, allow_pickle=False)
