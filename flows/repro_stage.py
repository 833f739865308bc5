"""`python -m flows.repro_stage STAGE`: DVC's `repro --single-item STAGE`, with a typed verdict.

The retrain flow runs each stage through this module rather than the `dvc` command because DVC reports a
stage's exit status only inside its error text. Here DVC runs in-process: whether the stage ran or was up
to date comes from `Repo.reproduce`'s return value, a busy DVC repository is a `LockError`, and a failed
stage command leaves its own verdict in $RADFLOW_STAGE_STATUS (tasks.common.errors). The verdict is
rewritten to that file as JSON — {"outcome": ran|skipped|failed, "exit_code", "error"} — and becomes this
process's exit status: 0, 1, or 75 for a failure a retry may outlast.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from tasks.common.errors import STATUS_ENV, RadflowError, TransientError, exit_code


def stage_verdict(status_file: Path) -> dict[str, Any] | None:
    """What the failed stage command wrote, if it is a radflow stage that got as far as failing cleanly."""
    try:
        verdict: dict[str, Any] = json.loads(status_file.read_text())
    except (OSError, ValueError):
        return None
    return verdict


def reproduce(stage: str, status_file: Path) -> dict[str, Any]:
    """Run one stage with DVC (dependencies are the flow's business); the verdict as a dict."""
    from dvc.exceptions import ReproductionError
    from dvc.lock import LockError
    from dvc.repo import Repo

    status_file.unlink(missing_ok=True)
    try:
        with Repo(".") as repo:
            ran = repo.reproduce(stage, single_item=True)
    except LockError as error:  # another DVC process holds the repository: it will let go
        return failure(TransientError(f"the DVC repository is busy ({error}); try again"))
    except ReproductionError as error:
        own = stage_verdict(status_file)
        if own is not None:
            return {"outcome": "failed", "exit_code": int(own["exit_code"]), "error": str(own["error"])}
        cause = error.__cause__ or error  # e.g. "failed to run: radflow stage train, exited with -9"
        return failure(RadflowError(str(cause)))
    return {"outcome": "ran" if ran else "skipped", "exit_code": 0, "error": None}


def failure(error: RadflowError) -> dict[str, Any]:
    return {"outcome": "failed", "exit_code": exit_code(error), "error": str(error)}


def main(argv: list[str]) -> int:
    (stage,) = argv
    status_file = Path(os.environ[STATUS_ENV])
    verdict = reproduce(stage, status_file)
    status_file.write_text(json.dumps(verdict))
    return int(verdict["exit_code"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
