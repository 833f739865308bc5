"""Fails with a TransientError (exit 75) on its first attempt only, like an I/O hiccup.

A stage command of the tiny pipeline in tests/script_project.py."""

import pathlib
import sys

from tasks.common.errors import TransientError, record_failure

attempts = pathlib.Path("flaky_attempts.log")
attempts.write_text((attempts.read_text() if attempts.exists() else "") + "try\n")
if attempts.read_text().count("try") == 1:
    print("error: storage not ready", file=sys.stderr)
    sys.exit(record_failure(TransientError("storage not ready")))
pathlib.Path("out").mkdir(exist_ok=True)
pathlib.Path("out/flaky.txt").write_text("ok")
