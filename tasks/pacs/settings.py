"""The `pacs` section of params.yaml, parsed once into a strict dataclass, and the endpoint it names.

Credentials never live in params.yaml: `auth_env` names the environment variable that holds them
("user:password" for HTTP basic authentication, anything else is sent as a bearer token).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from pydicom.datadict import dictionary_VR, tag_for_keyword

from tasks.common.errors import RadflowError
from tasks.common.params import parse_section

AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # DICOM AE: 1-16 printable characters, no backslash
VALID_URLS = "http(s)://host:port/dicom-web (DICOMweb) or dimse://CALLED_AET@host:port (DIMSE)"


@dataclass(frozen=True)
class PacsSettings:
    """params.yaml `pacs` section (see the comments there for meanings, units and typical values)."""

    url: str | None
    calling_aet: str
    auth_env: str
    folder: str
    filters: dict[str, str]
    lookback_days: int | None
    change_feed: bool
    retrieve: Literal["get", "move"]
    move_port: int
    listen_host: str
    connect_timeout_s: float
    timeout_s: float
    max_instances: int
    receive_port: int
    receive_aets: list[str]
    report_disclaimer: str


@dataclass(frozen=True)
class Endpoint:
    """Where the PACS is: a DICOMweb base URL, or a DIMSE called AE title at host:port."""

    kind: Literal["dicomweb", "dimse"]
    url: str  # as configured: names the PACS in state and messages (it holds no patient data)
    host: str
    port: int
    called_aet: str = ""  # DIMSE only


def load_pacs_settings(params: dict[str, Any]) -> PacsSettings:
    """Parse and check params.yaml's `pacs` section (strict: unknown keys and wrong types are errors)."""
    settings = parse_section(params, "pacs", PacsSettings)
    titles = [("calling_aet", settings.calling_aet)]
    titles += [(f"receive_aets[{i}]", title) for i, title in enumerate(settings.receive_aets)]
    for where, title in titles:
        if not AE_TITLE.match(title):
            raise RadflowError(f"pacs.{where}: {title!r} is not an AE title (1-16 printable characters)")
    for keyword, value in settings.filters.items():
        if tag_for_keyword(keyword) is None:
            raise RadflowError(
                f"pacs.filters: unknown DICOM keyword {keyword!r}; use study-level attributes such as "
                "ModalitiesInStudy, StudyDescription, InstitutionName"
            )
        if not isinstance(value, str) or dictionary_VR(keyword) == "SQ":
            raise RadflowError(f"pacs.filters.{keyword}: expected a text value, got {value!r}")
    if settings.max_instances < 1:
        raise RadflowError(f"pacs.max_instances: must be at least 1, got {settings.max_instances}")
    if settings.lookback_days is not None and settings.lookback_days < 0:
        raise RadflowError(f"pacs.lookback_days: must be >= 0 or null, got {settings.lookback_days}")
    return settings


def endpoint(settings: PacsSettings) -> Endpoint:
    """The endpoint `pacs.url` names; an unset or malformed URL is a configuration error."""
    if not settings.url:
        raise RadflowError(f"pacs.url is not set; set it in params.yaml to {VALID_URLS}")
    parts = urlsplit(settings.url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme in ("http", "https") and parts.hostname:
        if parts.username or parts.password:
            raise RadflowError(
                f"pacs.url must not carry credentials; put them in the environment variable "
                f"{settings.auth_env} (pacs.auth_env) instead"
            )
        return Endpoint("dicomweb", settings.url.rstrip("/"), parts.hostname, port or 443)
    if parts.scheme == "dimse" and parts.hostname and parts.username and port:
        if not AE_TITLE.match(parts.username):
            raise RadflowError(f"pacs.url: called AE title {parts.username!r} is not valid (1-16 characters)")
        return Endpoint("dimse", settings.url, parts.hostname, port, parts.username)
    raise RadflowError(f"pacs.url {settings.url!r} is not understood; valid forms: {VALID_URLS}")


def credentials(settings: PacsSettings) -> tuple[str, str] | str | None:
    """(user, password), a bearer token, or None when `auth_env` is unset or empty."""
    value = os.environ.get(settings.auth_env, "")
    if not value:
        return None
    user, colon, password = value.partition(":")
    return (user, password) if colon else value
