"""The transport for `pacs.url`: DICOMweb or DIMSE, chosen by the URL's scheme."""

from __future__ import annotations

from tasks.pacs.dicomweb import DicomWebTransport
from tasks.pacs.dimse import DimseTransport
from tasks.pacs.settings import Endpoint, PacsSettings
from tasks.pacs.transport import Transport


def connect(where: Endpoint, settings: PacsSettings) -> Transport:
    """One open transport to the PACS `where` names; the caller closes it."""
    if where.kind == "dicomweb":
        return DicomWebTransport(where, settings)
    return DimseTransport(where, settings)
