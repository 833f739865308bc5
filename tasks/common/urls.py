"""URLs from params.yaml: never carrying credentials, and shown in messages without them.

params.yaml is committed to git and a retrain run's overrides pass through the Prefect API, so a
password in a URL would be stored in both. Credentials come from the environment instead (each
setting's comment names the variable).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit, urlunsplit

from tasks.common.errors import RadflowError


def redacted(url: str) -> str:
    """`url` with anything before `@` in its host part replaced by `***`, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unreadable URL>"
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


def is_loopback(host: str | None) -> bool:
    """Whether `host` is this machine (localhost, 127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(where: str, url: str, schemes: tuple[str, ...] | None, instead: str) -> None:
    """Refuse a URL with credentials in it (user:password@), or one whose scheme is not in `schemes`
    (None: any); `instead` says where credentials go. The message never repeats the credentials."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise RadflowError(f"{where}: {redacted(url)} is not a valid URL") from None
    if "@" in parts.netloc:
        raise RadflowError(f"{where}: {redacted(url)} carries credentials; remove them and {instead}")
    if schemes is not None and parts.scheme not in schemes:
        raise RadflowError(f"{where}: {url!r} is not a {' or '.join(schemes)} URL")


def check_plaintext(where: str, url: str, sends_credentials: bool) -> None:
    """Refuse sending credentials over plain http:// to another machine (loopback is fine)."""
    parts = urlsplit(url)
    if sends_credentials and parts.scheme == "http" and not is_loopback(parts.hostname):
        raise RadflowError(
            f"{where}: credentials would cross the network unencrypted to {parts.hostname}; use https://"
        )
