"""Fails like a user mistake: a RadflowError, reported the way radflow's CLI reports it (exit 1).

A stage command of the tiny pipeline in tests/script_project.py."""

import sys

from tasks.common.errors import RadflowError, record_failure

print("loading configuration")
print("error: step.factor must be positive; got -1", file=sys.stderr)
sys.exit(record_failure(RadflowError("step.factor must be positive; got -1")))
