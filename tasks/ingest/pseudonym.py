"""Salted one-way pseudonyms for patient, study and series identifiers.

The salt comes from the environment variable named by `ingest.salt_env` (at least 32 bytes), else from a
secret generated once into `paths.private/salt` (operator-only: the folder 0700, the file 0600 from the
moment it exists). It is never logged. HMAC-SHA256 makes a pseudonym
impossible to reverse or to recompute without the salt, and stable across runs with the same salt.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from tasks.common.atomic import temp_path
from tasks.common.errors import RadflowError
from tasks.common.paths import make_private

SALT_FILE = "salt"
MIN_SALT_BYTES = 32  # HMAC-SHA256 keys shorter than its 32-byte output make pseudonyms guessable sooner
MAKE_ONE = "python -c 'import secrets; print(secrets.token_hex(32))'"


def load_salt(env_var: str, private_dir: Path) -> bytes:
    """The salt from `env_var`, else from (or newly into) `private_dir/salt`."""
    value = os.environ.get(env_var, "")
    if value:
        if len(value.encode()) < MIN_SALT_BYTES:
            raise RadflowError(
                f"{env_var} (ingest.salt_env) holds {len(value.encode())} bytes; a salt needs at least "
                f"{MIN_SALT_BYTES}: make one with {MAKE_ONE}, or unset it to use paths.private/salt"
            )
        return value.encode()
    path = make_private(private_dir) / SALT_FILE
    if not path.exists():
        _create_salt(path)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:  # written by an older radflow, or by hand
        path.chmod(0o600)
    return path.read_text().strip().encode()


def _create_salt(path: Path) -> None:
    """Write a new random salt to `path`: mode 0600 from its creation (never readable by others, not
    even briefly) and whole when it appears. Published with a hard link, which unlike a rename never
    replaces a salt another process created meanwhile: its salt is the one everybody then reads."""
    tmp = temp_path(path)
    tmp.unlink(missing_ok=True)  # a killed writer's leftover under this pid
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


@functools.lru_cache(maxsize=4096)
def pseudonym(prefix: str, value: str, salt: bytes) -> str:
    """`<prefix>-<12 hex>`: HMAC-SHA256 of `value` under `salt`, truncated.

    Cached: a series' instances share their patient, study and series values (and the tables are
    rebuilt from every file's keys on each changed run), and they come one after another in path
    order. A few thousand entries cover that; 65,536 held ~20 MB of the stage's heap on a large
    archive, most of it per-file values never asked for again.
    """
    return f"{prefix}-{hmac.new(salt, value.encode(), hashlib.sha256).hexdigest()[:12]}"


def salt_check(salt: bytes) -> str:
    """A one-way check value that tells whether the salt changed since the last run."""
    return hmac.new(salt, b"radflow ingest state", hashlib.sha256).hexdigest()[:16]
