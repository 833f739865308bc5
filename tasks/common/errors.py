"""radflow's error types, and how a failing stage tells the retrain flow whether to try again.

`RadflowError` is a user-facing failure (bad configuration, missing input, refused model): the CLI prints
its message and exits 1, never a traceback. `TransientError` is one a later attempt may not hit (a lock
held by another run, storage that is not ready): exit status 75 (sysexits.h EX_TEMPFAIL). The retrain flow
retries on that exit status only. DVC reports a stage's failure only as text, so the stage also writes its
verdict as JSON to the file named by $RADFLOW_STAGE_STATUS when the flow sets it.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

EX_TEMPFAIL = 75
STATUS_ENV = "RADFLOW_STAGE_STATUS"
# OS errors a retry can outlast: I/O hiccups, network file systems, resources briefly busy.
TRANSIENT_ERRNOS = frozenset(
    {
        errno.EIO,
        errno.EAGAIN,
        errno.EBUSY,
        errno.ESTALE,
        errno.ETIMEDOUT,
        errno.ECONNRESET,
        errno.ECONNREFUSED,
        errno.ECONNABORTED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
    }
)


class RadflowError(Exception):
    """A user-facing failure (bad configuration, missing input, refused model) — never a traceback."""


class TransientError(RadflowError):
    """A failure a later attempt may not hit (lock held by another run, storage not ready): exit 75."""


def from_os_error(error: OSError) -> TransientError | None:
    """The TransientError an OS error amounts to, or None when retrying cannot help (e.g. ENOENT)."""
    if error.errno not in TRANSIENT_ERRNOS:
        return None
    where = f" ({error.filename})" if error.filename else ""
    return TransientError(f"{error.strerror or error}{where}")


def exit_code(error: RadflowError) -> int:
    return EX_TEMPFAIL if isinstance(error, TransientError) else 1


def record_failure(error: RadflowError) -> int:
    """Write the failure for the retrain flow (when it asked, via $RADFLOW_STAGE_STATUS); its exit code."""
    code = exit_code(error)
    target = os.environ.get(STATUS_ENV)
    if target:
        Path(target).write_text(json.dumps({"exit_code": code, "error": str(error)}))
    return code
