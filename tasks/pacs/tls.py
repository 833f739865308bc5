"""DICOM TLS (PS3.15 Annex B, the BCP 195 profile) for radflow's DIMSE associations, both ways.

One certificate, key and CA from params.yaml (`pacs.tls_cert`, `pacs.tls_key`, `pacs.tls_ca`) serve
every role: radflow presents its certificate and verifies the peer's against the CA, as a listener
(`radflow receive`, the C-MOVE listener: a sender without a certificate signed by that CA cannot
associate) and as a client (DIMSE pulls and pushes: the PACS's certificate must be valid for its host
name). Verification is always on. pynetdicom wraps its sockets in these contexts.
"""

from __future__ import annotations

import ssl

from tasks.common.errors import RadflowError
from tasks.pacs.settings import PacsSettings


def server_context(settings: PacsSettings) -> ssl.SSLContext | None:
    """The context a DICOM listener wraps accepted connections in (None: TLS off)."""
    return _context(settings, ssl.Purpose.CLIENT_AUTH)


def client_context(settings: PacsSettings) -> ssl.SSLContext | None:
    """The context an outgoing association is wrapped in (None: TLS off)."""
    return _context(settings, ssl.Purpose.SERVER_AUTH)


def _context(settings: PacsSettings, purpose: ssl.Purpose) -> ssl.SSLContext | None:
    if settings.tls_cert is None or settings.tls_key is None or settings.tls_ca is None:
        return None
    context = ssl.create_default_context(purpose)  # TLS 1.2+, certificate (and host name) checks on
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED  # for a listener too: senders authenticate
    try:
        context.load_verify_locations(cafile=settings.tls_ca)
    except (OSError, ssl.SSLError) as error:
        raise RadflowError(_unusable("tls_ca", settings.tls_ca, error)) from None
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as error:
        raise RadflowError(_unusable("tls_cert / pacs.tls_key", settings.tls_cert, error)) from None
    return context


def _unusable(key: str, path: str, error: Exception) -> str:
    reason = getattr(error, "strerror", None) or getattr(error, "reason", None) or type(error).__name__
    return f"pacs.{key}: cannot use {path} ({reason}); give PEM files radflow's user can read"
