"""The `pacs` section of params.yaml, parsed once into a strict dataclass, and the endpoint it names.

Credentials never live in params.yaml: `auth_env` names the environment variable that holds them
("user:password" for HTTP basic authentication, anything else is sent as a bearer token). A URL that
carries credentials is refused when the section is parsed (before anything is written or sent), and so
is plain `http://` to another host while credentials are configured: they would cross the network in
clear text.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
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

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MB = 1024 * 1024  # the unit of the *_mb settings
HOSTS = "a list of addresses or CIDR networks, e.g. [127.0.0.1, 10.20.0.0/16]"
# Modality codes of pacs.receive_modalities -> the storage SOP classes (pynetdicom.sop_class names) each
# admits: the image objects ingest decodes. Everything else (SR, RT, waveforms, documents) is refused.
IMAGE_CLASSES: dict[str, tuple[str, ...]] = {
    "CR": ("ComputedRadiographyImageStorage",),
    "DX": ("DigitalXRayImageStorageForPresentation", "DigitalXRayImageStorageForProcessing"),
    "MG": (
        "DigitalMammographyXRayImageStorageForPresentation",
        "DigitalMammographyXRayImageStorageForProcessing",
    ),
    "CT": ("CTImageStorage", "EnhancedCTImageStorage", "LegacyConvertedEnhancedCTImageStorage"),
    "MR": ("MRImageStorage", "EnhancedMRImageStorage", "LegacyConvertedEnhancedMRImageStorage"),
    "US": ("UltrasoundImageStorage", "UltrasoundMultiFrameImageStorage"),
    "SC": (
        "SecondaryCaptureImageStorage",
        "MultiFrameGrayscaleByteSecondaryCaptureImageStorage",
        "MultiFrameGrayscaleWordSecondaryCaptureImageStorage",
        "MultiFrameTrueColorSecondaryCaptureImageStorage",
    ),
    "PT": ("PositronEmissionTomographyImageStorage",),
    "NM": ("NuclearMedicineImageStorage",),
    "XA": ("XRayAngiographicImageStorage",),
    "RF": ("XRayRadiofluoroscopicImageStorage",),
}
MODALITIES = f"a list of modality codes from {sorted(IMAGE_CLASSES)}"


def network(text: str) -> Network | None:
    """An address or CIDR network of pacs.receive_hosts (a bare address is a /32 or /128), else None."""
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


@section("pacs")
class PacsSettings:
    """params.yaml `pacs` section (see the comments there for meanings, units and typical values)."""

    # checked by _check_url, which never echoes the URL (it may hold a password)
    url: Annotated[str | None, Field(description=f"{VALID_URLS}, or null")]
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
    receive_hosts: list[Annotated[str, Field(description="an address or CIDR network, e.g. 10.20.0.0/16")]]
    receive_modalities: list[
        Annotated[str, Field(description=f"a modality code from {sorted(IMAGE_CLASSES)}")]
    ]
    max_instance_mb: Annotated[float, Field(gt=0, le=100_000)]
    min_free_disk_mb: Annotated[float, Field(ge=0)]
    tls_cert: Annotated[str | None, Field(min_length=1, description="a PEM file, or null (no TLS)")]
    tls_key: Annotated[str | None, Field(min_length=1, description="a PEM file, or null (no TLS)")]
    tls_ca: Annotated[str | None, Field(min_length=1, description="a PEM file, or null (no TLS)")]
    request_deadline_s: Annotated[float, Field(gt=0, le=86_400)]
    max_query_results: Annotated[int, Field(ge=1, le=10_000_000)]
    max_change_pages: Annotated[int, Field(ge=1, le=1_000_000)]
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

    @field_validator("receive_hosts")
    @classmethod
    def _networks(cls, hosts: list[str]) -> list[str]:
        if not all(network(host) for host in hosts):
            raise InvalidValue("receive_hosts", hosts, HOSTS)
        return hosts

    @field_validator("receive_modalities")
    @classmethod
    def _image_modalities(cls, codes: list[str]) -> list[str]:
        if not set(codes) <= set(IMAGE_CLASSES):
            raise InvalidValue("receive_modalities", codes, MODALITIES)
        return codes

    @model_validator(mode="after")
    def _tls_and_url(self) -> PacsSettings:
        tls = (self.tls_cert, self.tls_key, self.tls_ca)
        if any(tls) and not all(tls):
            raise RadflowError(
                "pacs.tls_cert, pacs.tls_key, pacs.tls_ca: set all three (PEM files: this host's "
                "certificate, its private key, the CA that signs the peers' certificates) or none"
            )
        _check_url(self)
        return self

    @property
    def max_instance_bytes(self) -> int:
        return int(self.max_instance_mb * MB)


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


def _check_url(settings: PacsSettings) -> None:
    """No credentials in pacs.url (they would be saved in params.yaml and shown in messages), and no
    credentials over plain http:// to another host. The URL is not echoed: it may hold a password."""
    if not settings.url:
        return
    parts = urlsplit(settings.url)
    # dimse://CALLED_AET@host: the "user" part is the PACS's AE title, not a credential
    if parts.password is not None or (parts.username is not None and parts.scheme != "dimse"):
        raise RadflowError(
            "pacs.url must not carry credentials; remove them from the URL and put them in the environment "
            f"variable {settings.auth_env} (pacs.auth_env) instead"
        )
    if parts.scheme not in ("http", "https", "dimse"):
        raise RadflowError(f"pacs.url: invalid value (not shown); valid: {VALID_URLS}, or null")
    if parts.scheme == "http" and credentials(settings) and not _is_loopback(parts.hostname or ""):
        raise RadflowError(
            f"pacs.url: http:// would send the credentials in {settings.auth_env} (pacs.auth_env) in "
            "clear text to another host; use https:// (http:// is accepted only for a PACS on this "
            "host, 127.0.0.1 or localhost)"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def endpoint(settings: PacsSettings) -> Endpoint:
    """The endpoint `pacs.url` names; an unset or malformed URL is a configuration error (credentials
    in it were refused when the section was parsed)."""
    if not settings.url:
        raise RadflowError(f"pacs.url is not set; set it in params.yaml to {VALID_URLS}")
    parts = urlsplit(settings.url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme in ("http", "https") and parts.hostname:
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
