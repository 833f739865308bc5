"""radflow's error types, and how a failing stage tells the retrain flow whether to try again.

`RadflowError` is a user-facing failure (bad configuration, missing input, refused model): the CLI prints
its message and exits 1, never a traceback. `TransientError` is one a later attempt may not hit (a lock
held by another run, storage that is not ready): exit status 75 (sysexits.h EX_TEMPFAIL). The retrain flow
retries on that exit status only. DVC reports a stage's failure only as text, so the stage also writes its
verdict as JSON to the file named by $RADFLOW_STAGE_STATUS when the flow sets it.

Any other exception is a bug or an environment problem. Its message is not shown: an OSError's names
the file it failed on, and hospital file names carry patient names. It becomes one line naming its type
and what to do (`unexpected`); the traceback is printed only on request ($RADFLOW_DEBUG=1, never in a
flow run, whose logs go to the Prefect UI and whose failure message goes to the webhook).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path

EX_TEMPFAIL = 75
STATUS_ENV = "RADFLOW_STAGE_STATUS"
DEBUG_ENV = "RADFLOW_DEBUG"  # "1": the CLI lets an unexpected exception through, traceback and all
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
    return TransientError(f"{_os_reason(error)} (transient; {DEBUG_ENV}=1 shows which file)")


def _os_reason(error: OSError) -> str:
    """`EIO: Input/output error` — the errno alone, never the file name the message carries."""
    if not error.errno:
        return type(error).__name__
    return f"{errno.errorcode.get(error.errno, error.errno)}: {os.strerror(error.errno)}"


def unexpected(error: Exception) -> RadflowError:
    """One line for an exception nobody expected: its type and what to do, never its message."""
    kind = type(error).__name__
    if isinstance(error, OSError):
        kind = f"{kind} ({_os_reason(error)})"
    return RadflowError(
        f"unexpected {kind}; check the project's files, permissions and free disk space, then run again "
        f"with {DEBUG_ENV}=1 for the full traceback (it may show file names: keep it private)"
    )


def debug_requested() -> bool:
    """Whether the user asked for tracebacks ($RADFLOW_DEBUG=1)."""
    return os.environ.get(DEBUG_ENV) == "1"


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """Re-raise any exception that is not a RadflowError as `unexpected`'s one line, its chain dropped:
    for code whose errors go to logs others read (a flow run's tasks and the flow itself)."""
    try:
        yield
    except RadflowError:
        raise
    except Exception as error:
        raise unexpected(error) from None


def exit_code(error: RadflowError) -> int:
    return EX_TEMPFAIL if isinstance(error, TransientError) else 1


def record_failure(error: RadflowError) -> int:
    """Write the failure for the retrain flow (when it asked, via $RADFLOW_STAGE_STATUS); its exit code."""
    code = exit_code(error)
    target = os.environ.get(STATUS_ENV)
    if target:
        Path(target).write_text(json.dumps({"exit_code": code, "error": str(error)}))
    return code
