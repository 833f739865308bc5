"""The `pacs` section of params.yaml, parsed once into a strict dataclass, and the endpoint it names.

Credentials never live in params.yaml: `auth_env` names the environment variable that holds them
("user:password" for HTTP basic authentication, anything else is sent as a bearer token).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydicom.datadict import dictionary_VR, tag_for_keyword

from tasks.common.errors import RadflowError
from tasks.common.params import EnvName, InvalidValue, parse_section, section

AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # DICOM AE: 1-16 printable characters, no backslash
VALID_URLS = "http(s)://host:port/dicom-web (DICOMweb) or dimse://CALLED_AET@host:port (DIMSE)"
AeTitle = Annotated[
    str, Field(pattern=AE_TITLE.pattern, description="an AE title (1-16 printable characters, no backslash)")
]
Port = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[float, Field(gt=0)]
FILTERS = "a mapping of study-level DICOM keywords (ModalitiesInStudy, StudyDescription, ...) to text"


@section("pacs")
class PacsSettings:
    """params.yaml `pacs` section (see the comments there for meanings, units and typical values)."""

    url: Annotated[str | None, Field(pattern=r"^(https?|dimse)://", description=f"{VALID_URLS}, or null")]
    calling_aet: AeTitle
    auth_env: EnvName
    folder: Annotated[str, Field(min_length=1, description="a sub-folder name of ingest.source")]
    filters: Annotated[dict[str, str], Field(description=FILTERS)]
    lookback_days: Annotated[int, Field(ge=0)] | None
    change_feed: bool
    retrieve: Literal["get", "move"]
    move_port: Port
    listen_host: Annotated[str, Field(min_length=1, description="an interface address, e.g. 127.0.0.1")]
    connect_timeout_s: Seconds
    timeout_s: Seconds
    max_instances: Annotated[int, Field(ge=1)]
    receive_port: Port
    receive_aets: list[AeTitle]
    report_disclaimer: Annotated[str, Field(description='a text stated in every report, or "" (none)')]

    @field_validator("filters")
    @classmethod
    def _study_keywords(cls, filters: dict[str, str]) -> dict[str, str]:
        for keyword in filters:
            if tag_for_keyword(keyword) is None or dictionary_VR(keyword) == "SQ":
                raise InvalidValue(
                    "filters", filters, f"{FILTERS}; {keyword!r} is not a keyword with a text value"
                )
        return filters


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
    return parse_section(params, "pacs", PacsSettings)


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
