"""Sums the archive's text and scales it by a param: changes when new studies or params change.

A stage command of the tiny pipeline in tests/script_project.py."""

import pathlib

import yaml

factor = yaml.safe_load(pathlib.Path("params.yaml").read_text())["step"]["factor"]
total = sum(len(f.read_text()) for f in sorted(pathlib.Path("raw").rglob("*.txt")))
pathlib.Path("out").mkdir(exist_ok=True)
pathlib.Path("out/count.txt").write_text(str(total * factor))
print("counted", total)
