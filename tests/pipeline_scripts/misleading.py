"""Prints text that once made the flow retry ("timed out"), then fails for good (exit 1).

A stage command of the tiny pipeline in tests/script_project.py."""

import sys

print("decode timed out: 3 file(s)")
sys.exit(1)
