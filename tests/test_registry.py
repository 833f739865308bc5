"""Registry: immutable checksummed versions, aliases, crash safety, locking, tamper refusal, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

import models
from flows.cli import app
from models.registry import FAULT_ENV, Registry
from models.registry.lock import registry_lock
from tasks.common.errors import RadflowError
from tests.defaults import REPO_ROOT
from tests.tiny_pipeline import constant_model, save_candidate


def _register_with_auc(registry: Registry, model_dir: Path, auc: float) -> int:
    return registry.register_champion(
        model_dir,
        metrics={"roc_auc": auc},
        model_card="# card\n",
        lineage={"git": {"commit": None}},
        decision={"promoted": True},
    )


@pytest.fixture
def candidate(tmp_path: Path) -> Path:
    model_dir = tmp_path / "model"
    save_candidate(constant_model(), model_dir)
    return model_dir


def _all_checksums_match(registry: Registry) -> None:
    for row in registry.versions():
        registry.verify(row["version"])


def test_register_load_aliases_rollback(tmp_path: Path, candidate: Path) -> None:
    registry = Registry(tmp_path / "registry")
    assert registry.versions() == [] and registry.aliases() == {"champion": None, "previous": None}
    assert _register_with_auc(registry, candidate, 0.8) == 1
    assert _register_with_auc(registry, candidate, 0.9) == 2
    assert registry.aliases() == {"champion": 2, "previous": 1}
    loaded = registry.load("champion")
    assert loaded.version == 2 and loaded.metrics == {"roc_auc": 0.9}
    network, config = models.load_model(loaded.path)  # safetensors + config, no pickle
    assert config == json.loads((candidate / "config.json").read_text())
    registered, trained = network.state_dict(), models.load_model(candidate)[0].state_dict()
    assert registered.keys() == trained.keys()
    assert all(torch.equal(registered[name], trained[name]) for name in trained)  # the same weights
    assert registry.resolve("v1") == registry.resolve("1") == registry.resolve("previous") == 1
    assert registry.rollback("test") == 1
    assert registry.aliases()["champion"] == 1
    assert registry.promote(2, "test") == 2
    with pytest.raises(RadflowError, match="already the champion"):
        registry.promote("2", "again")
    events = [entry["event"] for entry in registry.audit_log()]
    assert events == ["promoted", "promoted", "rollback", "manual_promote"]
    with pytest.raises(RadflowError, match=r"valid: champion, previous or one of \[1, 2\]"):
        registry.resolve("7")


def test_rollback_without_previous_is_refused(tmp_path: Path, candidate: Path) -> None:
    registry = Registry(tmp_path / "registry")
    _register_with_auc(registry, candidate, 0.8)
    with pytest.raises(RadflowError, match="nothing to roll back"):
        registry.rollback("test")


@pytest.mark.parametrize("tamper", ["weights", "checksums", "extra_file"])
def test_tampered_version_is_refused(tmp_path: Path, candidate: Path, tamper: str) -> None:
    registry = Registry(tmp_path / "registry")
    _register_with_auc(registry, candidate, 0.8)
    folder = registry.load("champion").path
    if tamper == "weights":
        data = bytearray((folder / "model.safetensors").read_bytes())
        data[-1] ^= 0xFF
        (folder / "model.safetensors").write_bytes(bytes(data))
    elif tamper == "checksums":  # rewriting the manifest to match a tampered file is caught too
        (folder / "metrics.json").write_text('{"roc_auc": 0.99}\n')
        checksums = json.loads((folder / "checksums.json").read_text())
        checksums["metrics.json"] = "0" * 64
        (folder / "checksums.json").write_text(json.dumps(checksums))
    else:
        (folder / "payload.pkl").write_bytes(b"not allowed")
    with pytest.raises(RadflowError, match=r"refusing|differ"):
        registry.load("champion")


def _crashing_writer(root: Path, model_dir: Path, fault: str) -> int:
    """Register one champion in a separate process (tests.fault.registry_worker) with the fault hook
    set; returns its exit code (-9: it SIGKILL'ed itself where the hook says)."""
    command = [sys.executable, "-m", "tests.fault.registry_worker", str(root), str(model_dir), "1"]
    env = {**os.environ, FAULT_ENV: fault, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(command, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, check=False).returncode


@pytest.mark.parametrize("fault", ["registry-mid-write", "registry-before-commit"])
def test_crash_mid_write_leaves_registry_as_it_was(tmp_path: Path, candidate: Path, fault: str) -> None:
    root = tmp_path / "registry"
    registry = Registry(root)
    _register_with_auc(registry, candidate, 0.8)
    _register_with_auc(registry, candidate, 0.85)
    before = (registry.versions(), registry.aliases(), len(registry.audit_log()))
    assert _crashing_writer(root, candidate, fault) == -9  # SIGKILL'ed itself in the middle of the write
    assert (registry.versions(), registry.aliases(), len(registry.audit_log())) == before
    assert registry.load("champion").version == 2
    _all_checksums_match(registry)
    # The next writer sweeps the debris and gets the next number.
    assert _register_with_auc(registry, candidate, 0.9) == 3
    _all_checksums_match(registry)
    assert not list(root.glob(".staging-*"))


def test_a_crash_between_commit_and_audit_loses_no_decision(tmp_path: Path, candidate: Path) -> None:
    root = tmp_path / "registry"
    registry = Registry(root)
    _register_with_auc(registry, candidate, 0.8)
    assert _crashing_writer(root, candidate, "registry-before-audit") == -9  # after commit, before the log
    assert registry.aliases()["champion"] == 2  # committed
    assert len((root / "audit.jsonl").read_text().splitlines()) == 1  # the log itself is a line short...
    assert [entry["version"] for entry in registry.audit_log()] == [1, 2]  # ...readers are not
    registry.record({"event": "rejected", "version": None})  # the next writer appends the lost line first
    logged = [json.loads(line) for line in (root / "audit.jsonl").read_text().splitlines()]
    assert [(entry["event"], entry["version"]) for entry in logged] == [
        ("promoted", 1),
        ("promoted", 2),
        ("rejected", None),
    ]
    assert registry.audit_log() == logged


def test_second_writer_waits_then_fails_clearly(tmp_path: Path, candidate: Path) -> None:
    root = tmp_path / "registry"
    with registry_lock(root, timeout_s=1), pytest.raises(RadflowError, match="locked by another radflow run"):
        _register_with_auc(Registry(root, lock_timeout_s=0.5), candidate, 0.8)
    assert _register_with_auc(Registry(root), candidate, 0.8) == 1


def test_cli_list_show_promote_rollback(project_in_cwd: dict[str, Any], candidate: Path) -> None:
    params = project_in_cwd
    runner = CliRunner()
    empty = runner.invoke(app, ["registry", "list"])
    assert empty.exit_code == 0 and "empty" in empty.output
    registry = Registry(Path(params["paths"]["registry"]))
    _register_with_auc(registry, candidate, 0.8)
    _register_with_auc(registry, candidate, 0.9)
    listed = runner.invoke(app, ["registry", "list"])
    assert listed.exit_code == 0 and "champion" in listed.output and "0.900" in listed.output
    shown = runner.invoke(app, ["registry", "show", "1", "--json"])
    assert shown.exit_code == 0 and json.loads(shown.output)["metrics"] == {"roc_auc": 0.8}
    assert runner.invoke(app, ["registry", "rollback"]).exit_code == 0
    assert registry.aliases()["champion"] == 1
    assert runner.invoke(app, ["registry", "promote", "2"]).exit_code == 0
    missing = runner.invoke(app, ["registry", "show", "9"])
    assert missing.exit_code == 1 and "no registry version" in missing.output
