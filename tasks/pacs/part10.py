"""DICOM Part 10 files: preamble, file meta, dataset; written atomically, named without identifiers.

Whatever a client library hands over (with or without file meta, with or without the 128-byte
preamble), what reaches a disk or a PACS is a standard Part 10 file: a PACS that is sent a bare
dataset may accept it and then fail to serve it back.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from tasks.common.atomic import atomic_path

PREAMBLE = b"\x00" * 128
NAME_HEX = 32  # 128 bits of SHA-256: no collision among any PACS's instances


def opaque_name(uid: str) -> str:
    """A file or folder name for a UID that does not show the UID (paths end up in listings and logs)."""
    return hashlib.sha256(uid.encode()).hexdigest()[:NAME_HEX]


def instance_path(root: Path, study: str, series: str, sop: str) -> Path:
    """Where a pulled or received instance lives: `root/<study>/<series>/<instance>.dcm`, names opaque."""
    return root / opaque_name(study) / opaque_name(series) / f"{opaque_name(sop)}.dcm"


def ensure_part10(dataset: Dataset) -> Dataset:
    """Give `dataset` a preamble and complete file meta (kept where present), in place; returns it."""
    meta = dataset.file_meta if isinstance(getattr(dataset, "file_meta", None), Dataset) else None
    meta = FileMetaDataset(meta) if meta is not None else FileMetaDataset()
    if "TransferSyntaxUID" not in meta:
        implicit = getattr(dataset, "original_encoding", (False, True))[0]
        meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    meta.setdefault("ImplementationClassUID", PYDICOM_IMPLEMENTATION_UID)
    dataset.file_meta = meta
    dataset.preamble = PREAMBLE
    return dataset


def encode(dataset: Dataset) -> bytes:
    """The Part 10 bytes of `dataset` (preamble and file meta added when missing)."""
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ensure_part10(dataset), enforce_file_format=True)
    return buffer.getvalue()


def write_instance(target: Path, data: Dataset | bytes) -> None:
    """Write one instance as a Part 10 file, atomically (never half a file under its final name).

    Not fsynced one by one: the caller syncs once before it records the instance as held, and a
    killed process leaves either the whole file or none.
    """
    content = data if isinstance(data, bytes) else encode(data)
    with atomic_path(target, durable=False) as tmp:
        tmp.write_bytes(content)


def write_arrived(root: Path, dataset: Dataset) -> str:
    """Write an instance that arrived from a PACS or modality under its opaque path below `root`;
    returns its opaque instance name."""
    write_instance(
        instance_path(root, dataset.StudyInstanceUID, dataset.SeriesInstanceUID, dataset.SOPInstanceUID),
        dataset,
    )
    return opaque_name(dataset.SOPInstanceUID)


def content_digest(dataset: Dataset) -> str:
    """SHA-256 of what an instance says (its elements, without file meta), in one fixed encoding: the
    same instance sent again, even in another uncompressed transfer syntax, has the same digest."""
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_dataset(buffer, dataset)
    return hashlib.sha256(buffer.getvalue()).hexdigest()
