"""Promotion under fire: SIGKILL mid-write, two writers at once, a held lock, tampered model files.

The registry is driven by real separate processes (`tests.fault.registry_worker`), so the crashes are
real SIGKILLs and the concurrency is real flock contention. After every fault the registry must load,
the champion must be a committed version, and every committed version must verify its checksums.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from models.registry import FAULT_ENV, Registry
from models.registry.lock import registry_lock
from tasks.errors import RadflowError
from tests.fault.registry_worker import register
from tests.project import REPO_ROOT, tool_env

pytestmark = pytest.mark.fault


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A tiny candidate: real safetensors weights and a config, as train writes them."""
    folder = tmp_path / "model"
    folder.mkdir()
    save_file({"fc.weight": np.arange(64, dtype=np.float32).reshape(8, 8)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"architecture": {"name": "tiny"}, "classes": ["a", "b"]}))
    return folder


def _worker(
    root: Path, model: Path, count: int, timeout_s: float = 60, fault: str | None = None
) -> subprocess.Popen[str]:
    env = tool_env()
    env.pop(FAULT_ENV, None)
    if fault:
        env[FAULT_ENV] = fault
    command = [
        sys.executable,
        "-m",
        "tests.fault.registry_worker",
        str(root),
        str(model),
        str(count),
        str(timeout_s),
    ]
    return subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _finish(process: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str]:
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def assert_consistent(root: Path) -> Registry:
    """The registry loads, every committed version verifies, and the champion is one of them."""
    registry = Registry(root)
    committed = [row["version"] for row in registry.versions()]
    assert committed == list(range(1, len(committed) + 1))
    for version in committed:
        registry.verify(version)
    champion = registry.aliases()["champion"]
    if committed:
        assert champion in committed
        assert registry.load("champion").version == champion
    else:
        assert champion is None
    return registry


def _no_leftovers(root: Path, registry: Registry) -> None:
    committed = {f"v{row['version']:04d}" for row in registry.versions()}
    assert {p.name for p in (root / "versions").iterdir()} == committed
    assert list(root.glob(".staging-*")) == []


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["registry-mid-write", "registry-before-commit"])
def test_crash_at_a_fault_point_leaves_the_registry_as_it_was(
    tmp_path: Path, model_dir: Path, fault: str
) -> None:
    root = tmp_path / "registry"
    register(Registry(root), model_dir, 1)
    index_before = (root / "index.json").read_bytes()

    code, output = _finish(_worker(root, model_dir, 1, fault=fault))
    assert code == -signal.SIGKILL, output
    assert (root / "index.json").read_bytes() == index_before
    assert assert_consistent(root).aliases() == {"champion": 1, "previous": None}

    register(Registry(root), model_dir, 1)  # the next writer sweeps the debris away
    registry = assert_consistent(root)
    assert registry.aliases() == {"champion": 2, "previous": 1}
    _no_leftovers(root, registry)


@pytest.mark.slow
def test_sigkill_at_random_moments_never_corrupts_the_registry(tmp_path: Path, model_dir: Path) -> None:
    root, rng = tmp_path / "registry", random.Random(3)
    for _ in range(4):
        process = _worker(root, model_dir, 0)  # registers until killed
        assert process.stdout is not None
        reported = [int(process.stdout.readline())]  # it is inside the write loop now
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(process.pid, signal.SIGKILL)
        rest, _ = process.communicate(timeout=30)
        reported += [int(line) for line in rest.split()]
        registry = assert_consistent(root)
        committed = {row["version"] for row in registry.versions()}
        assert set(reported) <= committed  # a version reported as written is really there
        assert registry.aliases()["champion"] == max(committed)
    register(Registry(root), model_dir, 1)
    _no_leftovers(root, assert_consistent(root))


@pytest.mark.slow
def test_two_writers_at_once_take_turns(tmp_path: Path, model_dir: Path) -> None:
    root = tmp_path / "registry"
    first, second = _worker(root, model_dir, 4), _worker(root, model_dir, 4)
    (code_a, out_a), (code_b, out_b) = _finish(first), _finish(second)
    assert code_a == code_b == 0, out_a + out_b
    versions_a, versions_b = {int(v) for v in out_a.split()}, {int(v) for v in out_b.split()}
    assert versions_a.isdisjoint(versions_b) and versions_a | versions_b == set(range(1, 9))
    registry = assert_consistent(root)
    assert [e["version"] for e in registry.audit_log() if e["event"] == "promoted"] == list(range(1, 9))
    _no_leftovers(root, registry)


@pytest.mark.slow
def test_a_held_lock_makes_the_other_writer_fail_with_a_clear_message(
    tmp_path: Path, model_dir: Path
) -> None:
    root = tmp_path / "registry"
    register(Registry(root), model_dir, 1)
    with registry_lock(root, timeout_s=5):
        code, output = _finish(_worker(root, model_dir, 1, timeout_s=1))
    assert code == 1
    assert "locked by another radflow run" in output and "Traceback" not in output
    assert assert_consistent(root).aliases()["champion"] == 1


@pytest.mark.parametrize("tamper", ["weights", "checksums", "extra-file"])
def test_a_model_whose_checksum_does_not_match_is_refused(
    tmp_path: Path, model_dir: Path, tamper: str
) -> None:
    root = tmp_path / "registry"
    register(Registry(root), model_dir, 1)
    folder = root / "versions" / "v0001"
    if tamper == "weights":
        data = bytearray((folder / "model.safetensors").read_bytes())
        data[-1] ^= 0x01  # one bit of one weight
        (folder / "model.safetensors").write_bytes(bytes(data))
    elif tamper == "checksums":
        checksums = json.loads((folder / "checksums.json").read_text())
        checksums["model.safetensors"] = "0" * 64
        (folder / "checksums.json").write_text(json.dumps(checksums))
    else:
        (folder / "payload.pkl").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(RadflowError, match=r"refusing|differ from"):
        Registry(root).load("champion")
