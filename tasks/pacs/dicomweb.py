"""DICOMweb transport: QIDO-RS to find, WADO-RS to retrieve, STOW-RS to store (dicomweb-client).

Orthanc's REST change feed (`/changes`, beside its `/dicom-web` root) tells which studies received
instances since the last pull, whatever their StudyDate. Errors are turned into one-line messages that
name the PACS by its configured base URL only: request URLs carry study and instance UIDs.

What the server may send is bounded: bytes per instance and time per request (bounded.py), matches
per query (`pacs.max_query_results`, paged with offset/limit so no single answer is unbounded either)
and pages of the change feed per pull (`pacs.max_change_pages`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset

from tasks.common.errors import RadflowError
from tasks.pacs.bounded import ResponseLimits
from tasks.pacs.settings import Endpoint, PacsSettings, credentials
from tasks.pacs.transport import InstanceRef, OnInstance, PacsRefused, PacsUnavailable

# An explicit media type: Orthanc's DICOMweb plugin refuses `*/*`-style requests it cannot map.
INSTANCE_MEDIA = (("application/dicom", "*"),)
CHANGES_PAGE = 1000  # change-feed entries per request
QIDO_PAGE = 1000  # matches asked for per QIDO-RS request
STUDY_UID, SERIES_UID, SOP_UID, SOP_CLASS = "0020000D", "0020000E", "00080018", "00080016"


class DicomWebTransport:
    """One HTTP session with a DICOMweb server."""

    def __init__(self, where: Endpoint, settings: PacsSettings) -> None:
        self.where = where
        self.settings = settings
        self.auth_env = settings.auth_env
        self.timeout = (settings.connect_timeout_s, settings.timeout_s)
        self.limits = ResponseLimits(where.url, settings)
        self.session = requests.Session()
        self.session.hooks["response"].append(self.limits.hook)
        secret = credentials(settings)
        if isinstance(secret, tuple):
            self.session.auth = secret
        elif secret:
            self.session.headers["Authorization"] = f"Bearer {secret}"
        self.client = DICOMwebClient(where.url, session=self.session, timeout=self.timeout)
        self.client.set_http_retry_params(retry=False)  # retries are the retrain flow's (one policy, logged)
        self.rest_root = where.url.rsplit("/", 1)[0]  # Orthanc: the REST API sits above /dicom-web

    def studies(self, filters: dict[str, str], since: dt.date | None) -> list[str]:
        query = {**filters, **({"StudyDate": f"{since:%Y%m%d}-"} if since else {})}
        found = self._search(
            "query studies",
            lambda offset, limit: self.client.search_for_studies(
                search_filters=query, fields=["StudyInstanceUID"], offset=offset, limit=limit
            ),
        )
        return [_value(study, STUDY_UID) for study in found]

    def instances(self, study: str) -> list[InstanceRef]:
        found = self._search(
            "query instances",
            lambda offset, limit: self.client.search_for_instances(
                study_instance_uid=study,
                fields=["SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"],
                offset=offset,
                limit=limit,
            ),
        )
        return [
            InstanceRef(study, _value(item, SERIES_UID), _value(item, SOP_UID), _value(item, SOP_CLASS))
            for item in found
        ]

    def retrieve(self, wanted: list[InstanceRef], whole_series: bool, on_instance: OnInstance) -> None:
        """A whole series in one streamed multipart response, else instance by instance."""
        with self._errors("retrieve instances"), self.limits.expecting(len(wanted) if whole_series else 1):
            if whole_series:
                first = wanted[0]
                for dataset in self.client.iter_series(first.study, first.series, media_types=INSTANCE_MEDIA):
                    on_instance(dataset)
                return
            for ref in wanted:
                on_instance(
                    self.client.retrieve_instance(ref.study, ref.series, ref.sop, media_types=INSTANCE_MEDIA)
                )

    def store(self, dataset: Dataset) -> None:
        with self._errors("store a result"):
            response = self.client.store_instances([dataset])
        failed = response.get("FailedSOPSequence") if response is not None else None
        if failed:
            reason = failed[0].get("FailureReason", "unknown")
            raise RadflowError(f"PACS {self.where.url} refused to store the result (failure reason {reason})")

    def change_cursor(self) -> int | None:
        """Orthanc's last change sequence number, or None when the server has no such feed."""
        try:
            response = self.session.get(
                f"{self.rest_root}/changes", params={"last": ""}, timeout=self.timeout
            )
        except requests.RequestException:
            return None
        if response.status_code in (401, 403):
            raise _refused(self.where, response.status_code, self.auth_env)
        if not response.ok:
            return None
        with contextlib.suppress(ValueError):
            body = response.json()
            if isinstance(body, dict) and isinstance(body.get("Last"), int):
                return int(body["Last"])
        return None

    def changed_studies(self, cursor: int) -> tuple[set[str], int]:
        studies: set[str] = set()
        with self._errors("read the change feed"):
            for _ in range(self.settings.max_change_pages):
                page = self._json(f"/changes?since={cursor}&limit={CHANGES_PAGE}")
                for change in page["Changes"]:
                    if change["ChangeType"] == "NewInstance":
                        study = self._json(f"/instances/{change['ID']}/study", missing_ok=True)
                        if study:
                            studies.add(study["MainDicomTags"]["StudyInstanceUID"])
                cursor = int(page["Last"])
                if page["Done"]:
                    return studies, cursor
        raise RadflowError(
            f"PACS {self.where.url}: the change feed holds more than pacs.max_change_pages="
            f"{self.settings.max_change_pages} pages ({CHANGES_PAGE} changes each) since the last pull; "
            "raise the limit, or set pacs.change_feed: false for one pull"
        )

    def close(self) -> None:
        self.session.close()

    def _search(self, action: str, page: Any) -> list[dict]:
        """Every match of a QIDO-RS search, page by page (`page(offset, limit)`), at most
        pacs.max_query_results: a server may cap its pages, so only an empty page ends the search."""
        cap = self.settings.max_query_results
        found: list[dict] = []
        with self._errors(action):
            while len(found) <= cap:
                more = page(len(found), min(QIDO_PAGE, cap + 1 - len(found)))
                if not more:
                    return found
                found += more
        raise RadflowError(
            f"PACS {self.where.url} has more than pacs.max_query_results={cap} matches to one query "
            f"({action}); narrow pacs.filters (or raise the limit)"
        )

    def _json(self, path: str, missing_ok: bool = False) -> Any:
        """GET a JSON document from Orthanc's REST API; None for a resource deleted since (missing_ok)."""
        response = self.session.get(f"{self.rest_root}{path}", timeout=self.timeout)
        if missing_ok and response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """requests' exceptions -> PacsUnavailable / PacsRefused / RadflowError, without request URLs."""
        try:
            yield
        except Exception as error:
            if self.limits.expired.is_set():  # the deadline shut the socket: whatever broke, that is why
                raise self.limits.deadline_error(action) from None
            if not isinstance(error, requests.RequestException):
                raise
            raise self._translated(error, action) from None

    def _translated(self, error: requests.RequestException, action: str) -> RadflowError:
        """requests' exception as PacsUnavailable / PacsRefused / RadflowError, without request URLs."""
        where = self.where.url
        if isinstance(error, requests.HTTPError):
            status = error.response.status_code if error.response is not None else 0
            if status in (401, 403):
                return _refused(self.where, status, self.auth_env)
            if status >= 500 or status in (408, 429):
                return PacsUnavailable(f"PACS {where} failed to {action}: HTTP {status}")
            return RadflowError(f"PACS {where} rejected the request to {action}: HTTP {status}")
        if isinstance(error, requests.Timeout):
            return PacsUnavailable(
                f"PACS {where} did not answer within pacs.timeout_s={self.timeout[1]:g} s ({action})"
            )
        if isinstance(error, requests.exceptions.SSLError):  # a ConnectionError, but no retry can fix it
            return RadflowError(
                f"PACS {where}: TLS {_tls_problem(error)}; if the PACS certificate is signed by the "
                "hospital's own CA, point the environment variable REQUESTS_CA_BUNDLE at that CA's "
                "certificate (PEM)"
            )
        if isinstance(error, requests.ConnectionError):
            return PacsUnavailable(
                f"PACS {where} is unreachable (connection refused or no route to "
                f"{self.where.host}:{self.where.port})"
            )
        return PacsUnavailable(f"PACS {where} broke off the answer to {action} ({type(error).__name__})")


def _tls_problem(error: requests.exceptions.SSLError) -> str:
    """What OpenSSL said (`certificate verify failed: self-signed certificate`), without the request
    URL that requests wraps around it (it carries study UIDs)."""
    found = re.search(r"\[SSL: [A-Z_]+\] ([^(\'\"]+)", str(error))
    return found.group(1).strip() if found else "handshake failed"


def _refused(where: Endpoint, status: int, auth_env: str) -> PacsRefused:
    return PacsRefused(
        f"PACS {where.url} refused authentication (HTTP {status}); check the credentials in the "
        f"environment variable {auth_env} (pacs.auth_env)"
    )


def _value(item: dict, tag: str) -> str:
    """One string value of a DICOM JSON attribute ("" when absent)."""
    values = item.get(tag, {}).get("Value") or [""]
    return str(values[0])
