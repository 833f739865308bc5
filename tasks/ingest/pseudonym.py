"""Salted one-way pseudonyms for patient, study and series identifiers.

The salt comes from the environment variable named by `ingest.salt_env`, else from a secret generated
once into `paths.private/salt` (operator-only). It is never logged. HMAC-SHA256 makes a pseudonym
impossible to reverse or to recompute without the salt, and stable across runs with the same salt.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from tasks.common.atomic import write_text

SALT_FILE = "salt"


def load_salt(env_var: str, private_dir: Path) -> bytes:
    """The salt from `env_var`, else from (or newly into) `private_dir/salt`."""
    value = os.environ.get(env_var, "")
    if value:
        return value.encode()
    path = private_dir / SALT_FILE
    if not path.exists():
        write_text(path, secrets.token_hex(32) + "\n")
        path.chmod(0o600)
    return path.read_text().strip().encode()


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
