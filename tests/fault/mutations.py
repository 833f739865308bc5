"""A seeded generator of hostile archive entries: mutated DICOM and NIfTI files, odd paths, links.

Everything starts from small valid files written with pydicom and nibabel, so each case is "almost"
valid, which is what reaches a decoder in a real archive. Each case is named `<category>-<index>` and
says what ingest owes it: `expect="accounted"` (a regular file: ingested, or quarantined/skipped with
a reason), `expect="ingested"` (valid content under a hostile name or place: dropping it is a loss) or
`expect="survive"` (not a regular file — links, directories, FIFOs: ingest only has to live through it).
"""

from __future__ import annotations

import gzip
import os
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from tasks.demo_data.dicom import build_dataset, encode
from tests.dicom_factory import identity
from tests.fault.dicom_bytes import (
    PIXEL_DATA_TAG,
    dataset_start,
    element,
    element_offsets,
    flip_bits,
    nested_sequence,
    set_length,
)

Expect = Literal["accounted", "ingested", "survive"]


@dataclass(frozen=True)
class Case:
    """One hostile entry in the archive; `path` is relative to the archive root."""

    name: str
    category: str
    path: Path
    expect: Expect


# --------------------------------------------------------------------------- valid templates


def dicom_dataset(rng: np.random.Generator, size: int = 32, bits: int = 16) -> Dataset:
    """A small valid single-frame MONOCHROME2 image with the shared factory's planted identifiers
    (seeded UIDs, so the generator is reproducible byte for byte)."""
    sop, study, series = (generate_uid(entropy_srcs=[str(rng.integers(2**62))]) for _ in range(3))
    dtype = np.uint16 if bits == 16 else np.uint8
    pixels = rng.integers(0, 2 ** min(bits, 12), size=(size, size)).astype(dtype)  # (H, W)
    ds = build_dataset(
        pixels, identity(sop_uid=sop, study_uid=study, series_uid=series), bits_stored=min(bits, 12)
    )
    ds["PixelData"].VR = "OW" if bits == 16 else "OB"  # explicit, so a mutated BitsAllocated still writes
    return ds


def dicom_bytes(ds: Dataset) -> bytes:
    """Serialise with preamble and file meta, explicit VR little endian."""
    return encode(ds, ExplicitVRLittleEndian)


def nifti_bytes(volume: np.ndarray, pixdim: tuple[float, ...] = (1.0, 1.0, 1.0)) -> bytes:
    """A single-file NIfTI-1 image of `volume` (X, Y, Z[, T]) with the given voxel sizes."""
    image = nib.Nifti1Image(volume, np.diag([*pixdim[:3], 1.0]))
    image.header.set_zooms(pixdim[: volume.ndim] + (1.0,) * (volume.ndim - len(pixdim)))
    return bytes(image.to_bytes())


def write_good_files(root: Path, seed: int, dicoms: int = 6, niftis: int = 3) -> list[Path]:
    """Known-good files (relative paths) that must all be ingested next to the hostile cases."""
    rng = np.random.default_rng(seed + 1)
    paths: list[Path] = []
    for index in range(dicoms):
        path = Path("good") / f"good-{index:02d}.dcm"
        _write(
            root / path, dicom_bytes(dicom_dataset(rng, size=32 + 16 * (index % 3), bits=(8, 16)[index % 2]))
        )
        paths.append(path)
    for index in range(niftis):
        path = Path("good") / (f"good-{index:02d}.nii" + ("" if index % 2 else ".gz"))
        volume = rng.normal(100, 20, size=(32, 32, 4)).astype(np.float32)  # (X, Y, Z)
        data = nifti_bytes(volume)
        _write(root / path, gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- byte-level helpers


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _with_element_first(ds: Dataset, raw_element: bytes, remove: tuple[str, ...] = ()) -> bytes:
    """The dataset serialised with `raw_element` spliced in as its first element (after meta)."""
    for keyword in remove:
        if keyword in ds:
            delattr(ds, keyword)
    data = dicom_bytes(ds)
    start = dataset_start(data)
    return data[:start] + raw_element + data[start:]


# --------------------------------------------------------------------------- case builders


def _dicom_cases(rng: random.Random, nprng: np.random.Generator) -> dict[str, list[tuple[str, bytes]]]:
    """Byte-level DICOM mutations: category -> [(file name, content)]."""
    base = dicom_bytes(dicom_dataset(nprng, size=48))
    pixel_offset = base.index(PIXEL_DATA_TAG)
    cases: dict[str, list[tuple[str, bytes]]] = {}
    cases["truncated-dicom"] = [(f"t{i}.dcm", base[: rng.randrange(0, len(base))]) for i in range(60)]
    cases["bitflip-dicom-header"] = [
        (f"h{i}.dcm", flip_bits(base, rng, 128, pixel_offset + 12, rng.randint(1, 8))) for i in range(50)
    ]
    cases["bitflip-dicom-pixels"] = [
        (f"p{i}.dcm", flip_bits(base, rng, pixel_offset + 12, len(base), rng.randint(1, 64)))
        for i in range(20)
    ]
    elements = element_offsets(base)
    bogus = (0, 1, 3, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF, len(base), 0xFFFFFFF0)
    cases["wrong-length"] = [
        (f"l{i}.dcm", set_length(base, *rng.choice(elements), rng.choice(bogus))) for i in range(30)
    ]
    cases["absurd-dimensions"] = [
        (f"dims-{name}.dcm", dicom_bytes(_modified(nprng, **attrs)))
        for name, attrs in {
            "65535x65535": {"Rows": 65535, "Columns": 65535},
            "65535x65535-8bit": {
                "Rows": 65535,
                "Columns": 65535,
                "BitsAllocated": 8,
                "BitsStored": 8,
                "HighBit": 7,
            },
            "rows-zero": {"Rows": 0},
            "cols-zero": {"Columns": 0},
            "frames-max": {"NumberOfFrames": 2**31 - 1},
            "frames-zero": {"NumberOfFrames": 0},
            "bits-zero": {"BitsAllocated": 0},
            "bits-7": {"BitsAllocated": 7},
            "bits-64": {"BitsAllocated": 64},
            "samples-zero": {"SamplesPerPixel": 0},
            "samples-5": {"SamplesPerPixel": 5},
            "highbit-99": {"HighBit": 99, "BitsStored": 99},
        }.items()
    ]
    cases["bad-spacing"] = [
        (
            f"spacing-{name}.dcm",
            _with_element_first(
                dicom_dataset(nprng), element(0x0028, 0x0030, b"DS", value), ("PixelSpacing",)
            ),
        )
        for name, value in {
            "negative": b"-0.5\\-0.5",
            "zero": b"0\\0",
            "nan": b"nan\\nan",
            "inf": b"inf\\1",
            "text": b"abc\\def",
            "single": b"0.5",
            "huge": b"1e308\\1e308",
        }.items()
    ]
    cases["wrong-vr"] = [
        (f"vr-{name}.dcm", _with_element_first(dicom_dataset(nprng), element, remove))
        for name, element, remove in (
            ("rows-as-ds", element(0x0028, 0x0010, b"DS", b"32.5"), ("Rows",)),
            ("rows-as-lo", element(0x0028, 0x0010, b"LO", b"thirty-two"), ("Rows",)),
            ("bits-as-ob", element(0x0028, 0x0100, b"OB", b"\xff" * 7), ("BitsAllocated",)),
            ("spacing-as-us", element(0x0028, 0x0030, b"US", b"\x01\x00"), ("PixelSpacing",)),
            (
                "photometric-as-us",
                element(0x0028, 0x0004, b"US", b"\x02\x00"),
                ("PhotometricInterpretation",),
            ),
            ("name-as-sq", element(0x0010, 0x0010, b"SQ", b"\x01\x02\x03\x04"), ("PatientName",)),
            ("slope-as-fd", element(0x0028, 0x1053, b"FD", struct.pack("<d", float("nan"))), ()),
            ("bogus-vr", element(0x0028, 0x0011, b"ZZ", b"\x20\x00"), ("Columns",)),
            ("pixels-as-ut", element(0x7FE0, 0x0010, b"UT", b"not pixels"), ("PixelData",)),
            ("lowercase-vr", element(0x0028, 0x0010, b"us", b"\x20\x00"), ("Rows",)),
        )
    ]
    cases["recursive-sequence"] = [
        (f"nest-{depth}.dcm", _with_element_first(dicom_dataset(nprng), nested_sequence(depth)))
        for depth in (10, 100, 500, 1000, 3000, 10000, 50000)
    ]
    cases["recursive-sequence"].append(("nest-unterminated.dcm", base + nested_sequence(2000)[: 16 * 2000]))
    cases["huge-header"] = [
        (
            "private-16mb.dcm",
            _with_element_first(dicom_dataset(nprng), element(0x0009, 0x1001, b"OB", b"\0" * 2**24)),
        ),
        ("many-elements.dcm", _with_element_first(dicom_dataset(nprng), _many_private_elements(60000))),
        ("meta-length-huge.dcm", base[:140] + struct.pack("<I", 0x7FFFFFF0) + base[144:]),
    ]
    return cases


def _many_private_elements(count: int) -> bytes:
    creator = element(0x0009, 0x0010, b"LO", b"FAULT")
    return creator + b"".join(element(0x0009, 0x1000 + (i % 0xFF), b"LO", b"x" * 16) for i in range(count))


def _modified(nprng: np.random.Generator, **attributes: object) -> Dataset:
    ds = dicom_dataset(nprng)
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def _codec_cases(nprng: np.random.Generator, rng: random.Random) -> list[tuple[str, bytes]]:
    """Compressed transfer syntaxes whose encapsulated fragments are garbage or cut short."""
    from pydicom.encaps import encapsulate

    syntaxes = {
        "jpeg-baseline": "1.2.840.10008.1.2.4.50",
        "jpeg-lossless": "1.2.840.10008.1.2.4.70",
        "jpeg-ls": "1.2.840.10008.1.2.4.80",
        "jpeg2000": "1.2.840.10008.1.2.4.90",
        "rle": "1.2.840.10008.1.2.5",
        "deflate": "1.2.840.10008.1.2.1.99",
    }
    out = []
    for name, uid in syntaxes.items():
        for variant in ("garbage", "marker-only"):
            ds = dicom_dataset(nprng)
            ds.file_meta.TransferSyntaxUID = UID(uid)
            payload = bytes(rng.getrandbits(8) for _ in range(512)) if variant == "garbage" else b"\xff\xd8"
            if name == "deflate":
                out.append((f"codec-{name}-{variant}.dcm", _deflate_broken(ds, payload)))
                continue
            ds.PixelData = encapsulate([payload])
            ds["PixelData"].VR = "OB"
            out.append((f"codec-{name}-{variant}.dcm", dicom_bytes(ds)))
    return out


def _deflate_broken(ds: Dataset, payload: bytes) -> bytes:
    """A deflated-transfer-syntax file whose deflated body is replaced by `payload`."""
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    data = dicom_bytes(ds)
    start = dataset_start(data)
    data = data.replace(ExplicitVRLittleEndian.encode() + b"\0", b"1.2.840.10008.1.2.1.99\0", 1)
    return data[: start + 2] + payload  # meta length grows by 2 with the longer UID


def _hostile_nifti_cases(
    rng: random.Random, nprng: np.random.Generator
) -> dict[str, list[tuple[str, bytes]]]:
    volume = nprng.normal(100, 20, size=(32, 32, 4)).astype(np.float32)  # (X, Y, Z)
    base = nifti_bytes(volume)
    cases: dict[str, list[tuple[str, bytes]]] = {}
    cases["truncated-nifti"] = [(f"t{i}.nii", base[: rng.randrange(0, len(base))]) for i in range(15)]
    cases["truncated-nifti"] += [
        (f"tgz{i}.nii.gz", gzip.compress(base, mtime=0)[: rng.randrange(0, 2000)]) for i in range(10)
    ]
    cases["bitflip-nifti-header"] = [
        (f"h{i}.nii", flip_bits(base, rng, 0, 348, rng.randint(1, 6))) for i in range(30)
    ]
    special: dict[str, np.ndarray] = {
        "all-nan": np.full_like(volume, np.nan),
        "some-nan": np.where(nprng.random(volume.shape) < 0.1, np.nan, volume).astype(np.float32),
        "pos-inf": np.where(nprng.random(volume.shape) < 0.1, np.inf, volume).astype(np.float32),
        "neg-inf": np.where(nprng.random(volume.shape) < 0.1, -np.inf, volume).astype(np.float32),
        "all-inf": np.full_like(volume, np.inf),
        "mixed": np.choose(nprng.integers(0, 4, volume.shape), [volume, np.nan, np.inf, -np.inf]).astype(
            np.float32
        ),
        "float64-nan": np.where(nprng.random(volume.shape) < 0.5, np.nan, volume).astype(np.float64),
        "4d-nan": np.where(nprng.random((32, 32, 4, 2)) < 0.2, np.nan, 1.0).astype(np.float32),
        "huge-values": np.full_like(volume, 3e38),
        "constant": np.zeros_like(volume),
    }
    cases["nan-inf-volume"] = [(f"{name}.nii", nifti_bytes(data)) for name, data in special.items()]
    cases["absurd-dimensions"] = [
        (f"dims-{name}.nii", _nifti_header_edit(base, edit))
        for name, edit in _nifti_dimension_edits().items()
    ]
    cases["bad-spacing"] = [
        (
            f"spacing-{name}.nii",
            nifti_bytes(volume)[:80] + struct.pack("<3f", *zooms) + nifti_bytes(volume)[92:],
        )
        for name, zooms in {
            "negative": (-1.0, -1.0, -1.0),
            "zero": (0.0, 0.0, 0.0),
            "nan": (float("nan"),) * 3,
            "inf": (float("inf"), 1.0, 1.0),
            "tiny": (1e-30, 1e-30, 1e-30),
        }.items()
    ]
    bomb = nifti_bytes(np.zeros((2, 2, 2), np.float32))[:352]
    bomb = _nifti_header_edit(bomb, lambda h: struct.pack_into("<8h", h, 40, 3, 4096, 4096, 16, 1, 1, 1, 1))
    stream = gzip.compress(bomb + bytes(2**28), compresslevel=1, mtime=0)  # 256 MiB of zeros, ~0.3 MB packed
    cases["huge-header"] = [
        ("gzip-bomb.nii.gz", stream),
        ("vox-offset-huge.nii", _nifti_header_edit(base, lambda h: struct.pack_into("<f", h, 108, 2.0**31))),
    ]
    return cases


def _nifti_dimension_edits() -> dict[str, Callable[[bytearray], None]]:
    """In-place edits of the NIfTI-1 `dim` field (8 int16 at offset 40)."""

    def dims(*values: int) -> Callable[[bytearray], None]:
        return lambda header: struct.pack_into("<8h", header, 40, *values)

    return {
        "32767-cube": dims(3, 32767, 32767, 32767, 1, 1, 1, 1),
        "zero": dims(3, 0, 0, 0, 1, 1, 1, 1),
        "negative": dims(3, -32, 32, 4, 1, 1, 1, 1),
        "ndim-0": dims(0, 32, 32, 4, 1, 1, 1, 1),
        "ndim-9": dims(9, 32, 32, 4, 1, 1, 1, 1),
        "7d": dims(7, 32, 32, 4, 2, 2, 2, 2),
    }


def _nifti_header_edit(data: bytes, edit: Callable[[bytearray], None]) -> bytes:
    header = bytearray(data)
    edit(header)
    return bytes(header)


def _wrong_type_cases(rng: random.Random, good_dicom: bytes, good_nifti: bytes) -> list[tuple[str, bytes]]:
    return [
        ("random.dcm", bytes(rng.getrandbits(8) for _ in range(4096))),
        ("text.dcm", b"this is not a DICOM file\n" * 20),
        ("magic-only.dcm", b"\0" * 128 + b"DICM"),
        ("nifti-named-dicom.dcm", good_nifti),
        ("dicom-named-nifti.nii", good_dicom),
        ("dicom-named-niftigz.nii.gz", good_dicom),
        ("png-named-dicom.dcm", b"\x89PNG\r\n\x1a\n" + bytes(64)),
        ("broken.png", b"\x89PNG\r\n\x1a\n" + bytes(rng.getrandbits(8) for _ in range(256))),
        ("html.dcm", b"<html><script>alert(1)</script></html>"),
        ("no-extension", bytes(rng.getrandbits(8) for _ in range(1024))),
    ]


# --------------------------------------------------------------------------- the archive


def write_hostile_cases(root: Path, seed: int = 0) -> list[Case]:
    """Write every hostile case under `root/hostile/...` (plus links and odd names); return them."""
    rng, nprng = random.Random(seed), np.random.default_rng(seed)
    cases: list[Case] = []

    def add(category: str, name: str, data: bytes | None, expect: Expect = "accounted") -> Path:
        path = Path("hostile") / category / name
        if data is not None:
            _write(root / path, data)
        cases.append(Case(f"{category}-{len(cases):03d}", category, path, expect))
        return path

    merged: dict[str, list[tuple[str, bytes]]] = {}
    for source in (_dicom_cases(rng, nprng), _hostile_nifti_cases(rng, nprng)):
        for category, items in source.items():
            merged.setdefault(category, []).extend(items)
    merged["bad-codec"] = _codec_cases(nprng, rng)
    good_dicom, good_nifti = dicom_bytes(dicom_dataset(nprng)), nifti_bytes(np.ones((8, 8, 2), np.float32))
    merged["wrong-type"] = _wrong_type_cases(rng, good_dicom, good_nifti)
    merged["zero-byte"] = [
        (name, b"") for name in ("empty.dcm", "empty.nii", "empty.nii.gz", "empty.png", "empty", "EMPTY.DCM")
    ]
    for category, items in merged.items():
        for name, data in items:
            add(category, name, data)
    _add_odd_names(add, good_dicom)
    _add_links_and_dirs(root, add, good_dicom)
    return cases


def _add_odd_names(add: Callable[..., Path], good: bytes) -> None:
    """Valid files whose names would break naive CSV, shell or log handling: they must be ingested."""
    names = [
        "with space.dcm",
        "ünïcødé-名前.dcm",
        "tab\there.dcm",
        'quote"s.dcm',
        "comma,name.dcm",
        "-leading-dash.dcm",
        "=HYPERLINK(1).dcm",
        "semi;colon.dcm",
        "back\\slash.dcm",
        "x" * 200 + ".dcm",
        "emoji-🩻.dcm",
        "new\nline.dcm",
    ]
    for name in names:
        add("odd-name", name, good, "ingested")


def _add_links_and_dirs(root: Path, add: Callable[..., Path], good: bytes) -> None:
    """Symlinks (dangling, looping, escaping), directories named like files, and a FIFO."""
    links = root / "hostile" / "symlink"
    links.mkdir(parents=True, exist_ok=True)
    outside = root.parent / f"{root.name}-outside.dcm"
    outside.write_bytes(good)
    for name, target in (
        ("dangling.dcm", "does-not-exist.dcm"),
        ("self-loop.dcm", "self-loop.dcm"),
        ("loop-a.dcm", "loop-b.dcm"),
        ("loop-b.dcm", "loop-a.dcm"),
        ("dir-loop", ".."),
        ("escape.dcm", os.path.relpath(outside, links)),
        ("to-etc-passwd.dcm", "/etc/passwd"),
    ):
        (links / name).symlink_to(target)
        add("symlink", name, None, "survive")
    for name in ("x.dcm", "y.nii", "z.nii.gz"):
        (root / "hostile" / "dir-named-like-file" / name).mkdir(parents=True)
        add("dir-named-like-file", name, None, "survive")
    add("dir-named-like-file", "y.nii/inner.dcm", good, "ingested")
    fifo = root / "hostile" / "special-file" / "fifo.dcm"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    add("special-file", "fifo.dcm", None, "survive")
