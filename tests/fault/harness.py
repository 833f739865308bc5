"""Shared plumbing for the fault suite: a command run whose peak memory is measured (the whole process
tree's largest resident set, via a wrapper's RUSAGE_CHILDREN), and its tables read back."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tests.project import tool_env

# Runs `argv[1:]`, then prints the largest resident set (KiB on Linux) among all processes it waited for.
_MEASURE = (
    "import json, resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[1:])\n"
    "print(json.dumps({'rc': code, 'maxrss_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n"
)


@dataclass(frozen=True)
class Measured:
    """A finished command: exit code, combined output, and peak resident memory of its process tree."""

    returncode: int
    output: str
    max_rss_mib: float


def run_measured(command: list[str], cwd: Path, timeout: float) -> Measured:
    """Run `command` in `cwd` under the memory-measuring wrapper; a hang raises TimeoutExpired."""
    completed = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command],
        cwd=cwd,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    output = completed.stdout.rsplit("\n", 2)[0] + completed.stderr
    return Measured(summary["rc"], output, summary["maxrss_kib"] / 1024)


def read_csv(path: Path) -> pd.DataFrame:
    """A CSV with every column as text and empty cells as '' (not NaN)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)
