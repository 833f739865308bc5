"""The model registry store: immutable numbered versions, `champion`/`previous` aliases, an audit log.

Layout under the registry root:
    versions/v0001/  model.safetensors, config.json, metrics.json, model_card.md, lineage.json,
                     decision.json, checksums.json (SHA-256 of every other file)
    index.json       the commit point: committed versions (+ SHA-256 of their checksums.json), the
                     champion history (`champion` is its last entry, `previous` the one before), and
                     the number of decisions so far with the last one
    audit.jsonl      append-only, one JSON object per decision
    .lock            flock'ed by every writer

A version is staged in a temporary folder, fsync'ed and renamed into `versions/`; only then is
index.json atomically replaced. A crash at any point leaves the old index, so readers see the registry
exactly as it was; the next writer sweeps the orphaned folder away. Every decision is committed in
the index first and appended to the audit log after: a crash in between leaves the log one line short,
which readers make up from the index and the next writer appends.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from models.registry.lock import registry_lock
from tasks.common.atomic import write_json
from tasks.common.errors import RadflowError
from tasks.common.hashing import file_sha256

MODEL_FILES = ("model.safetensors", "config.json")  # copied from the candidate model folder
CHECKSUMS = "checksums.json"
ALIASES = ("champion", "previous")
# Test hook: "registry-mid-write", "registry-before-commit" or "registry-before-audit" kills the process.
FAULT_ENV = "RADFLOW_FAULT"


@dataclass(frozen=True)
class RegisteredModel:
    """A verified registry version: its folder holds model.safetensors + config.json for models.load_model."""

    version: int
    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]


def _fsync_path(path: Path) -> None:
    """Flush a file's or a folder's metadata to disk (a rename is durable only once its folder is)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fault_point(name: str) -> None:
    """Crash here, as a power cut would, when the test hook names this point."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Registry:
    """The registry API; the only code that writes under `paths.registry`."""

    def __init__(self, root: Path, lock_timeout_s: float = 60.0) -> None:
        self.root = root
        self.lock_timeout_s = lock_timeout_s

    # ----- reading -------------------------------------------------------------------------------
    def _index(self) -> dict[str, Any]:
        path = self.root / "index.json"
        if not path.exists():
            return {"versions": {}, "champion_history": []}
        index: dict[str, Any] = json.loads(path.read_text())
        return index

    def _folder(self, version: int) -> Path:
        return self.root / "versions" / f"v{version:04d}"

    def aliases(self) -> dict[str, int | None]:
        """{"champion": N or None, "previous": M or None}."""
        history = self._index()["champion_history"]
        return {
            "champion": history[-1] if history else None,
            "previous": history[-2] if len(history) > 1 else None,
        }

    def versions(self) -> list[dict[str, Any]]:
        """Committed versions, oldest first, each with its creation time, headline metrics and aliases."""
        index = self._index()
        aliases = self.aliases()
        rows = []
        for key, entry in sorted(index["versions"].items(), key=lambda item: int(item[0])):
            version = int(key)
            names = [name for name, target in aliases.items() if target == version]
            rows.append({"version": version, **entry, "aliases": names})
        return rows

    def resolve(self, ref: str | int) -> int:
        """A version number from `champion`, `previous`, `3`, `v3` or `v0003`."""
        index = self._index()
        known = sorted(int(key) for key in index["versions"])
        text = str(ref).strip().lower()
        if text in ALIASES:
            target = self.aliases()[text]
            if target is None:
                raise RadflowError(
                    f"the registry at {self.root} has no {text!r} version yet; versions: {known}"
                )
            return target
        digits = text.removeprefix("v")
        if digits.isdigit() and int(digits) in known:
            return int(digits)
        raise RadflowError(f"no registry version {ref!r}; valid: {', '.join(ALIASES)} or one of {known}")

    def verify(self, version: int) -> Path:
        """Check every file of a version against its SHA-256; refuse (RadflowError) on any mismatch."""
        folder = self._folder(version)
        expected_manifest = self._index()["versions"][str(version)]["checksums_sha256"]
        manifest_path = folder / CHECKSUMS
        if not manifest_path.is_file() or file_sha256(manifest_path) != expected_manifest:
            raise RadflowError(
                f"registry version {version}: {CHECKSUMS} is missing or altered; refusing to use it"
            )
        checksums: dict[str, str] = json.loads(manifest_path.read_text())
        present = {path.name for path in folder.iterdir()} - {CHECKSUMS}
        if present != set(checksums):
            raise RadflowError(
                f"registry version {version}: files {sorted(present)} differ from "
                f"the recorded {sorted(checksums)}"
            )
        for name, digest in checksums.items():
            if file_sha256(folder / name) != digest:
                raise RadflowError(
                    f"registry version {version}: checksum mismatch in {name}; refusing to use it"
                )
        return folder

    def load(self, ref: str | int) -> RegisteredModel:
        """A version verified against its checksums, ready for `models.load_model(result.path)`."""
        version = self.resolve(ref)
        folder = self.verify(version)
        return RegisteredModel(
            version=version,
            path=folder,
            config=json.loads((folder / "config.json").read_text()),
            metrics=json.loads((folder / "metrics.json").read_text()),
        )

    def show(self, ref: str | int) -> dict[str, Any]:
        """Everything recorded about a version (after verifying it): metrics, lineage, decision, aliases."""
        model = self.load(ref)
        entry = next(row for row in self.versions() if row["version"] == model.version)
        return {
            **entry,
            "config": model.config,
            "metrics": model.metrics,
            "lineage": json.loads((model.path / "lineage.json").read_text()),
            "decision": json.loads((model.path / "decision.json").read_text()),
        }

    def audit_log(self) -> list[dict[str, Any]]:
        """All decisions, oldest first: the log's lines (a torn line from a crash mid-append is
        skipped), plus the last committed decision when a crash kept it from the log."""
        entries = self._logged()
        index = self._index()
        if len(entries) < index.get("decisions", 0):
            entries.append(index["last_decision"])
        return entries

    def _logged(self) -> list[dict[str, Any]]:
        path = self.root / "audit.jsonl"
        if not path.exists():
            return []
        entries = []
        for line in path.read_text().splitlines():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return entries

    # ----- writing (always under the lock) --------------------------------------------------------
    def _locked_index(self) -> dict[str, Any]:
        """The index, for a writer holding the lock: first appends a decision a crash kept from the log."""
        index = self._index()
        logged = len(self._logged())
        if "decisions" not in index:  # a registry from before decisions were counted
            index["decisions"] = logged
        elif logged < index["decisions"]:
            self._append_audit(index["last_decision"])
        return index

    def _append_audit(self, entry: dict[str, Any]) -> None:
        with open(self.root / "audit.jsonl", "a") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _commit(self, index: dict[str, Any], decision: dict[str, Any]) -> None:
        """Replace index.json atomically (the commit point) with `decision` counted in it, then log it."""
        entry = {"time": _now(), **decision}
        index["decisions"] += 1
        index["last_decision"] = entry
        self.root.mkdir(parents=True, exist_ok=True)
        write_json(self.root / "index.json", index)
        _fsync_path(self.root)
        _fault_point("registry-before-audit")
        self._append_audit(entry)

    def _sweep(self, index: dict[str, Any]) -> None:
        """Remove staging folders and uncommitted version folders left by a crashed writer."""
        for leftover in self.root.glob(".staging-*"):
            shutil.rmtree(leftover)
        versions_dir = self.root / "versions"
        for folder in versions_dir.glob("v*") if versions_dir.exists() else []:
            if str(int(folder.name[1:])) not in index["versions"]:
                shutil.rmtree(folder)

    def record(self, event: dict[str, Any]) -> None:
        """Append a decision that changes nothing else (e.g. a candidate that failed the gate)."""
        with registry_lock(self.root, self.lock_timeout_s):
            self._commit(self._locked_index(), event)

    def register_champion(
        self,
        model_dir: Path,
        *,
        metrics: dict[str, Any],
        model_card: str,
        lineage: dict[str, Any],
        decision: dict[str, Any],
    ) -> int:
        """Store a candidate that passed the gate as the next version and make it champion."""
        return self.register(
            model_dir,
            metrics=metrics,
            model_card=model_card,
            lineage=lineage,
            decision=decision,
            champion=True,
            audit={"event": "promoted", "decision": decision},
        )

    def register(
        self,
        model_dir: Path,
        *,
        metrics: dict[str, Any],
        model_card: str,
        lineage: dict[str, Any],
        decision: dict[str, Any],
        champion: bool,
        audit: dict[str, Any],
    ) -> int:
        """Store a model as the next immutable version (champion or not); returns its number.

        `audit` is the decision's log entry; the version and the champion before are added to it.
        """
        missing = [name for name in MODEL_FILES if not (model_dir / name).is_file()]
        if missing:
            raise RadflowError(f"cannot register {model_dir}: missing {missing}")
        with registry_lock(self.root, self.lock_timeout_s):
            index = self._locked_index()
            self._sweep(index)
            version = max((int(key) for key in index["versions"]), default=0) + 1
            staging = self.root / f".staging-{version:04d}-{os.getpid()}"
            staging.mkdir(parents=True)
            for name in MODEL_FILES:
                shutil.copyfile(model_dir / name, staging / name)
            _fault_point("registry-mid-write")
            documents = {"metrics.json": metrics, "lineage.json": lineage, "decision.json": decision}
            for name, document in documents.items():
                (staging / name).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
            (staging / "model_card.md").write_text(model_card)
            checksums = {path.name: file_sha256(path) for path in sorted(staging.iterdir())}
            (staging / CHECKSUMS).write_text(json.dumps(checksums, indent=2, sort_keys=True) + "\n")
            for path in staging.iterdir():
                _fsync_path(path)
            _fsync_path(staging)
            (self.root / "versions").mkdir(exist_ok=True)
            staging.rename(self._folder(version))
            _fsync_path(self.root / "versions")
            _fault_point("registry-before-commit")
            before = self.aliases()["champion"]
            index["versions"][str(version)] = {
                "created": _now(),
                "checksums_sha256": file_sha256(self._folder(version) / CHECKSUMS),
                "weights_sha256": checksums["model.safetensors"],
                "roc_auc": metrics.get("roc_auc"),
            }
            if champion:
                index["champion_history"].append(version)
            self._commit(index, {**audit, "version": version, "champion_before": before})
        return version

    def find_weights(self, weights_sha256: str) -> list[int]:
        """Committed versions whose model.safetensors has this SHA-256, oldest first (retraining with
        other settings can reproduce the same weights, so there may be several)."""
        return sorted(
            int(key)
            for key, entry in self._index()["versions"].items()
            if entry["weights_sha256"] == weights_sha256
        )

    def promote(self, ref: str | int, reason: str) -> int:
        """Make an existing version champion by hand (the old champion becomes `previous`)."""
        with registry_lock(self.root, self.lock_timeout_s):
            version = self.resolve(ref)
            self.verify(version)
            before = self.aliases()["champion"]
            if version == before:
                raise RadflowError(f"version {version} is already the champion")
            index = self._locked_index()
            index["champion_history"].append(version)
            self._commit(
                index,
                {"event": "manual_promote", "version": version, "champion_before": before, "reason": reason},
            )
        return version

    def rollback(self, reason: str) -> int:
        """Undo the last champion change: `previous` becomes champion again; returns the new champion."""
        with registry_lock(self.root, self.lock_timeout_s):
            index = self._locked_index()
            history = index["champion_history"]
            if len(history) < 2:
                raise RadflowError(
                    f"nothing to roll back to: the registry at {self.root} has no previous champion"
                )
            self.verify(history[-2])
            before = history.pop()
            self._commit(
                index,
                {"event": "rollback", "version": history[-1], "champion_before": before, "reason": reason},
            )
        return int(history[-1])
