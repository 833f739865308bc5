"""Files and channels (issue #21, items 5-7): the incoming sync copies regular files only, the private
folder and the salt are their owner's alone, a short salt is refused, and ingest talks to a Dask
scheduler on another machine only over TLS."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import dask.config
import pytest

from flows.sync import sync_incoming
from tasks.common.errors import RadflowError
from tasks.ingest.pseudonym import load_salt
from tasks.ingest.settings import IngestSettings
from tests.defaults import settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_sync_skips_symlinks_and_special_files_with_a_warning(tmp_path: Path) -> None:
    incoming, archive, private = tmp_path / "incoming", tmp_path / "archive", tmp_path / "private"
    (incoming / "study").mkdir(parents=True)
    private.mkdir()
    (private / "salt").write_text("the project's secret")
    (incoming / "study" / "image.dcm").write_bytes(b"a real study")
    (incoming / "study" / "salt.dcm").symlink_to(private / "salt")  # a link to a file
    (incoming / "everything").symlink_to(private, target_is_directory=True)  # a link to a folder
    os.mkfifo(incoming / "study" / "pipe.dcm")  # would block a reader forever
    report = sync_incoming(incoming, archive, settle_s=0)
    assert (report.new, report.skipped) == (1, 3)
    assert sorted(str(p.relative_to(archive)) for p in archive.rglob("*")) == ["study", "study/image.dcm"]
    warning = report.skipped_warning()
    assert "skipped 3 symlink(s) or non-regular file(s)" in warning and "salt" not in warning


def test_the_private_folder_and_the_generated_salt_are_the_owners_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RADFLOW_SALT", raising=False)
    previous = os.umask(0)  # the salt must not depend on the umask: it is created 0600, never chmod'ed
    try:
        salt = load_salt("RADFLOW_SALT", tmp_path / "private")
    finally:
        os.umask(previous)
    assert mode(tmp_path / "private") == 0o700 and mode(tmp_path / "private" / "salt") == 0o600
    assert len(salt) == 64 and load_salt("RADFLOW_SALT", tmp_path / "private") == salt  # kept
    assert [p.name for p in (tmp_path / "private").iterdir()] == ["salt"]  # no temporary left


def test_an_older_projects_loose_private_files_are_tightened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RADFLOW_SALT", raising=False)
    private = tmp_path / "private"
    private.mkdir(mode=0o755)
    (private / "salt").write_text("an older project's salt\n")
    (private / "salt").chmod(0o644)
    assert load_salt("RADFLOW_SALT", private) == b"an older project's salt"
    assert mode(private) == 0o700 and mode(private / "salt") == 0o600


def test_a_short_environment_salt_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RADFLOW_SALT", "x")  # a one-byte salt makes every pseudonym guessable
    with pytest.raises(RadflowError) as refused:
        load_salt("RADFLOW_SALT", tmp_path / "private")
    message = str(refused.value)
    assert "RADFLOW_SALT (ingest.salt_env) holds 1 bytes; a salt needs at least 32" in message
    assert "\n" not in message and not (tmp_path / "private").exists()


@pytest.mark.parametrize(
    "address", ["tcp://10.0.0.5:8786", "tls://10.0.0.5:8786", "ws://10.0.0.5:8786", "tcp://scheduler:8786"]
)
def test_a_dask_scheduler_elsewhere_needs_tls_with_dask_security_settings(address: str) -> None:
    with pytest.raises(RadflowError, match=r"ingest\.dask_address: invalid value") as refused:
        settings("ingest", IngestSettings, dask_address=address)
    assert "tls://HOST:PORT with Dask's TLS settings" in str(refused.value)


def test_a_local_or_tls_configured_dask_scheduler_is_accepted(tmp_path: Path) -> None:
    for local in ("tcp://127.0.0.1:8786", "tcp://localhost:8786", "tls://[::1]:8786", "inproc://x/1/2"):
        assert settings("ingest", IngestSettings, dask_address=local).dask_address == local
    tls = {
        "distributed.comm.tls.ca-file": str(tmp_path / "ca.pem"),
        "distributed.comm.tls.client.cert": str(tmp_path / "client.pem"),
        "distributed.comm.tls.client.key": str(tmp_path / "client.key"),
    }
    with dask.config.set(tls):
        assert settings("ingest", IngestSettings, dask_address="tls://10.0.0.5:8786")
