"""Waits (bounded) for a release file when the test asks for it, so two runs overlap for sure.

A stage command of the tiny pipeline in tests/script_project.py."""

import pathlib
import time

pathlib.Path("out").mkdir(exist_ok=True)
runs = pathlib.Path("gate_runs.log")
runs.write_text(runs.read_text() + "ran\n" if runs.exists() else "ran\n")
if pathlib.Path("hold").exists():
    pathlib.Path("gate_started").touch()
    deadline = time.time() + 300
    while not pathlib.Path("release").exists() and time.time() < deadline:
        time.sleep(0.2)
pathlib.Path("out/gate.txt").write_text(pathlib.Path("out/count.txt").read_text())
