"""Ingest at scale: the stage's memory does not grow with the archive (issue #15: "no stage may need the
whole data set in RAM"), and its on-disk state is replaced whole or not at all."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import sqlite3
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tasks.ingest import assemble, listing, plan, runner, stage, workspace
from tasks.ingest.pseudonym import pseudonym
from tasks.ingest.stage import run_ingest
from tasks.ingest.state import STATE_FILE, states
from tests.ingest_helpers import settings_for

SALT = "memory-test-salt-0123456789abcdef"
SMALL = 150  # files; the large archive has 4x as many
SLACK = 150_000  # bytes of Python heap the larger run may add (main needed ~8 KB per file here: 3.8 MB)


def _archive(source: Path, files: int, first: int = 0) -> None:
    """`files` distinct 8x8 PNGs (numbered from `first`), two classes, a folder per patient (two
    images each)."""
    for index in range(first, first + files):
        pixels = np.zeros((8, 8), dtype=np.uint8)  # (H, W)
        pixels[0, :3] = (index % 256, index // 256, 1)  # distinct content, distinct image ids
        folder = source / ("normal", "abnormal")[index % 2] / f"patient{index // 2:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"img{index % 2}.png")


def _peak_heap(root: Path, files: int) -> int:
    """Peak traced Python heap of the stage process over a first ingest of `files` files (decode
    workers are separate processes; SQLite's page cache is bounded and not traced)."""
    _archive(root / "raw", files)
    settings = settings_for(root, labels="folders")
    tracemalloc.start()
    try:
        summary = run_ingest(settings, root / "ingested", root / "private")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert summary.images == files
    return peak


def test_the_stage_heap_does_not_grow_with_the_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What is bounded by design (a page of paths, a chunk of jobs, the pseudonym cache) is made
    small here, so that anything the stage keeps per file shows in the difference."""
    monkeypatch.setenv("RADFLOW_SALT", SALT)
    monkeypatch.setattr(listing, "BATCH", 16)
    monkeypatch.setattr(plan, "PAGE", 16)
    monkeypatch.setattr(runner, "CHUNK_BATCHES", 2)
    small_cache = functools.lru_cache(maxsize=64)(pseudonym.__wrapped__)
    monkeypatch.setattr(assemble, "pseudonym", small_cache)
    monkeypatch.setattr(stage, "pseudonym", small_cache)
    _peak_heap(tmp_path / "warm", 20)  # imports and caches the first run fills, outside the measurement
    small = _peak_heap(tmp_path / "small", SMALL)
    large = _peak_heap(tmp_path / "large", 4 * SMALL)
    print(f"heap peaks: {small} B for {SMALL} files, {large} B for {4 * SMALL}")
    assert large - small < SLACK, f"heap peak {small} B for {SMALL} files, {large} B for {4 * SMALL}"


def test_a_crash_before_the_state_is_renamed_leaves_the_previous_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the new state is written, before the rename: the old state is intact and whole,
    the next run uses it (decodes only what changed) and deletes the half-published leftover."""
    monkeypatch.setenv("RADFLOW_SALT", SALT)
    _archive(tmp_path / "raw", 3)
    settings = settings_for(tmp_path, labels="folders")
    ingested, private = tmp_path / "ingested", tmp_path / "private"
    assert run_ingest(settings, ingested, private).decoded == 3
    before = (private / STATE_FILE).read_bytes()
    _archive(tmp_path / "raw", 1, first=3)  # one more file
    leftover = private / f".{STATE_FILE}.99999-1.tmp"

    class Killed(BaseException):
        pass

    real_replace = os.replace  # patched for every module (workspace.os is os): shard renames go through

    def killed_before_rename(source: Path, target: Path) -> None:
        if Path(target).name == STATE_FILE:
            shutil.copyfile(source, leftover)  # what a SIGKILL here would leave behind
            raise Killed
        real_replace(source, target)

    monkeypatch.setattr(workspace.os, "replace", killed_before_rename)
    with pytest.raises(Killed):
        run_ingest(settings, ingested, private)
    monkeypatch.undo()
    monkeypatch.setenv("RADFLOW_SALT", SALT)
    assert (private / STATE_FILE).read_bytes() == before
    assert leftover.exists()

    rerun = run_ingest(settings, ingested, private)
    assert (rerun.decoded, rerun.reused, rerun.images) == (1, 3, 4)
    assert not leftover.exists() and not list(private.glob(".*.tmp"))
    assert len(_state(private)) == 4
    assert run_ingest(settings, ingested, private).decoded == 0


def _state(private: Path) -> list[tuple[str, object]]:
    with contextlib.closing(sqlite3.connect(private / STATE_FILE)) as db:
        return list(states(db, "main"))
