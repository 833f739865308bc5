"""A real Orthanc PACS for tests: throwaway configuration and storage, free ports, loopback only.

Orthanc 1.10 has no bind-address option (it listens on every interface; `RemoteAccessAllowed: false`
covers HTTP only), so where the machine allows it Orthanc runs in a private network namespace whose
only interface is its own loopback, and the test process's main thread joins that namespace while the
server lives (threads and child processes it starts, such as pynetdicom's or `radflow pull`, inherit
it). Nothing outside this process tree can reach the server. Elsewhere it falls back to the host's
loopback, with DIMSE limited to known AEs on 127.0.0.1 and HTTP to local clients, and says so loudly.
The server is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.loopback import free_port

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
USER, PASSWORD = "radflow", "orthanc-test-password"
AUTH = f"{USER}:{PASSWORD}"  # RADFLOW_PACS_AUTH for this server
PACS_AET = "ORTHANC"
RADFLOW_AET = "RADFLOW"  # the calling AE Orthanc knows (DicomModalities)
CLONE_NEWNET = 0x40000000
START_TIMEOUT_S = 60

# Brings the loopback interface of a fresh network namespace up, then becomes Orthanc.
NAMESPACE_LAUNCHER = 'ip link set lo up && exec Orthanc "$0"'


def missing_reason() -> str | None:
    """Why the Orthanc tests cannot run here, or None when they can (`make test` installs Orthanc as root)."""
    if shutil.which("Orthanc") is None or not DICOMWEB_PLUGIN.exists():
        return (
            "no Orthanc PACS for the PACS tests: Debian packages orthanc + orthanc-dicomweb are not "
            "installed (`make test` installs them when run as root; else: apt-get install orthanc "
            "orthanc-dicomweb)"
        )
    return None


@dataclass(frozen=True)
class Orthanc:
    """A running test server: where to reach it and how to authenticate."""

    http_port: int
    dicom_port: int
    move_port: int  # where Orthanc sends C-MOVE results for RADFLOW_AET
    pid: int

    @property
    def dicomweb_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/dicom-web"

    @property
    def dimse_url(self) -> str:
        return f"dimse://{PACS_AET}@127.0.0.1:{self.dicom_port}"

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def get(self, path: str) -> object:
        """Orthanc's REST API (JSON), authenticated."""
        response = requests.get(f"{self.rest}{path}", auth=(USER, PASSWORD), timeout=30)
        response.raise_for_status()
        return response.json()

    def upload(self, files: list[Path]) -> None:
        """Store Part 10 files through the REST API (as a modality or another PACS would deliver them)."""
        for path in files:
            response = requests.post(
                f"{self.rest}/instances", data=path.read_bytes(), auth=(USER, PASSWORD), timeout=30
            )
            response.raise_for_status()

    def clear(self) -> None:
        """Delete every study, so each test starts from an empty archive."""
        for study in self.get("/studies"):  # type: ignore[attr-defined]
            requests.delete(f"{self.rest}/studies/{study}", auth=(USER, PASSWORD), timeout=30)


def configuration(root: Path, http_port: int, dicom_port: int, move_port: int) -> dict[str, object]:
    """A throwaway Orthanc configuration: storage in `root`, authentication on, only RADFLOW_AET at
    127.0.0.1 may use DIMSE, DICOMweb with `Host` naming the port (WADO-RS links break without it)."""
    return {
        "Name": "radflow-test",
        "StorageDirectory": str(root / "storage"),
        "IndexDirectory": str(root / "storage"),
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": PACS_AET,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD},
        "DicomCheckCalledAet": True,
        "DicomCheckModalityHost": True,
        "DicomAlwaysAllowEcho": True,  # as by default: unknown AEs get an association, then refusals
        "DicomAlwaysAllowStore": False,
        "DicomAlwaysAllowFind": False,
        "DicomAlwaysAllowGet": False,
        "DicomAlwaysAllowMove": False,
        "DicomModalities": {"radflow": [RADFLOW_AET, "127.0.0.1", move_port]},
        "StableAge": 1,
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "Host": f"127.0.0.1:{http_port}", "Ssl": False},
        "HttpDescribeErrors": True,
        "SaveJobs": False,
    }


class _Namespace:
    """The main thread's network namespace, switched with setns(2) (Python 3.11 has no os.setns)."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)

    def enter(self, pid: int) -> None:
        target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        try:
            self._set(target)
        finally:
            os.close(target)

    def leave(self) -> None:
        self._set(self._home)
        os.close(self._home)

    def _set(self, fd: int) -> None:
        if self._libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns failed")


def _namespaces_work() -> bool:
    """Whether this process may create a network namespace and join it (root, not a locked-down box)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, timeout=30, check=False
    )
    return probe.returncode == 0


@contextlib.contextmanager
def running_orthanc(root: Path, overrides: dict[str, object] | None = None) -> Iterator[Orthanc]:
    """Start Orthanc on free ports with its configuration (plus `overrides`, e.g. DICOM TLS) and storage
    under `root`; stop it by PID."""
    isolated = _namespaces_work()
    if not isolated:
        warnings.warn(
            "Orthanc runs on the host's loopback (no private network namespace here): its ports listen "
            "on every interface for the duration of the tests; DIMSE is limited to known AEs on "
            "127.0.0.1 and HTTP to local clients",
            stacklevel=2,
        )
    namespace = _Namespace() if isolated else None
    # In a fresh namespace every port is free; on the host, ask the kernel for free ones.
    http_port, dicom_port, move_port = (8042, 4242, 11113) if isolated else (free_port() for _ in range(3))
    root.mkdir(parents=True, exist_ok=True)
    config = root / "orthanc.json"
    settings = configuration(root, http_port, dicom_port, move_port) | (overrides or {})
    config.write_text(json.dumps(settings, indent=2))
    command = ["unshare", "-n", "sh", "-c", NAMESPACE_LAUNCHER, str(config)] if isolated else ["Orthanc"]
    log = open(root / "orthanc.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        command if isolated else [*command, str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    server = Orthanc(http_port, dicom_port, move_port, process.pid)
    try:
        if namespace is not None:
            _wait_for_namespace(process)
            namespace.enter(process.pid)
        _wait_until_up(server, process, root / "orthanc.log")
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
        if namespace is not None:
            namespace.leave()


def _wait_for_namespace(process: subprocess.Popen[bytes]) -> None:
    """Wait until the launcher has exec'd Orthanc (after `ip link set lo up`), so the namespace is ready."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{process.pid}/exe").endswith("Orthanc"):
                return
        time.sleep(0.05)
    raise RuntimeError("Orthanc did not start in its network namespace")


def _wait_until_up(server: Orthanc, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{server.rest}/system", auth=(USER, PASSWORD), timeout=2).ok:
                return
        time.sleep(0.2)
    raise RuntimeError(f"Orthanc did not answer within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
