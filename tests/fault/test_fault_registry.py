"""Promotion under fire: SIGKILL from outside at arbitrary moments, and two writers at once.

The registry is driven by real separate processes (`tests.fault.registry_worker`), so the crashes are
real SIGKILLs and the concurrency is real flock contention. After every fault the registry must load,
the champion must be a committed version, and every committed version must verify its checksums.
(The fault-hook points, tampered files and a held lock are covered in tests/test_registry.py.)
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
from tests.defaults import REPO_ROOT
from tests.fault.registry_worker import register
from tests.project import tool_env

pytestmark = [pytest.mark.fault, pytest.mark.timeout(600)]


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A tiny candidate: real safetensors weights and a config, as train writes them."""
    folder = tmp_path / "model"
    folder.mkdir()
    save_file({"fc.weight": np.arange(64, dtype=np.float32).reshape(8, 8)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"architecture": {"name": "tiny"}, "classes": ["a", "b"]}))
    return folder


def _worker(root: Path, model: Path, count: int) -> subprocess.Popen[str]:
    """Start a registering process (count 0: until killed); its stdout lists the versions it wrote."""
    command = [sys.executable, "-m", "tests.fault.registry_worker", str(root), str(model), str(count)]
    env = {key: value for key, value in tool_env().items() if key != FAULT_ENV}
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
