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
from typing import Any, Literal
from urllib.parse import urlsplit

from pydicom.datadict import dictionary_VR, tag_for_keyword

from tasks.common.errors import RadflowError
from tasks.common.params import Check, check_values, parse_section

AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # DICOM AE: 1-16 printable characters, no backslash
VALID_URLS = "http(s)://host:port/dicom-web (DICOMweb) or dimse://CALLED_AET@host:port (DIMSE)"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MB = 1024 * 1024  # the unit of the *_mb settings
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


def network(text: str) -> Network | None:
    """An address or CIDR network of pacs.receive_hosts (a bare address is a /32 or /128), else None."""
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


CHECKS: dict[str, Check] = {  # what parse_section's types and choices do not catch
    "lookback_days": (lambda v: v is None or v >= 0, "a number of days >= 0, or null"),
    "max_instances": (lambda v: v >= 1, "an integer >= 1"),
    "move_port": (lambda v: 1 <= v <= 65535, "a TCP port, 1-65535"),
    "receive_port": (lambda v: 1 <= v <= 65535, "a TCP port, 1-65535"),
    "connect_timeout_s": (lambda v: 0 < v <= 3600, "a number of seconds, > 0 and <= 3600"),
    "timeout_s": (lambda v: 0 < v <= 3600, "a number of seconds, > 0 and <= 3600"),
    "receive_hosts": (
        lambda v: all(network(host) for host in v),
        "a list of addresses or CIDR networks, e.g. [127.0.0.1, 10.20.0.0/16]",
    ),
    "receive_modalities": (
        lambda v: set(v) <= set(IMAGE_CLASSES),
        f"a list of modality codes from {sorted(IMAGE_CLASSES)}",
    ),
    "max_instance_mb": (lambda v: 0 < v <= 100_000, "a number of MB, > 0 and <= 100000"),
    "min_free_disk_mb": (lambda v: v >= 0, "a number of MB >= 0"),
    "request_deadline_s": (lambda v: 0 < v <= 86_400, "a number of seconds, > 0 and <= 86400"),
    "max_query_results": (lambda v: 1 <= v <= 10_000_000, "an integer from 1 to 10000000"),
    "max_change_pages": (lambda v: 1 <= v <= 1_000_000, "an integer from 1 to 1000000"),
}


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
    receive_hosts: list[str]
    receive_modalities: list[str]
    max_instance_mb: float
    min_free_disk_mb: float
    tls_cert: str | None
    tls_key: str | None
    tls_ca: str | None
    request_deadline_s: float
    max_query_results: int
    max_change_pages: int
    report_disclaimer: str

    def __post_init__(self) -> None:
        check_values("pacs", self, CHECKS)
        tls = (self.tls_cert, self.tls_key, self.tls_ca)
        if any(tls) and not all(tls):
            raise RadflowError(
                "pacs.tls_cert, pacs.tls_key, pacs.tls_ca: set all three (PEM files: this host's "
                "certificate, its private key, the CA that signs the peers' certificates) or none"
            )
        _check_url(self)

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
    return settings


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
