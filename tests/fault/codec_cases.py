"""Damaged compressed DICOM: every transfer syntax ingest decodes, hit where its codec reads.

Templates are pydicom's bundled samples (real encoder output) with the planted identity and a SOP
Instance UID of their own per case (so a case that still decodes is ingested, not taken for a
duplicate). Damage goes where decoders look, and the container stays well formed so that it reaches
them: the compressed stream itself (bit flips, overwritten runs, truncation), the headers codecs
trust (RLE segment counts and offsets, JPEG/JPEG-LS SOF and J2K SIZ/COD fields: dimensions, bit
depths, components), the encapsulation's item lengths and offset table, and the DICOM pixel
attributes a decoder sizes its output by.
"""

from __future__ import annotations

import io
import itertools
import random
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import UID

from tests.dicom_factory import PLANTED
from tests.fault.dicom_bytes import flip_bits

SAMPLES = Path(pydicom.__file__).parent / "data" / "test_files"
TEMPLATES = {  # codec -> a pydicom sample of that transfer syntax
    "rle": "MR_small_RLE.dcm",  # 16-bit, 2 segments
    "rle-rgb": "SC_rgb_rle.dcm",  # 8-bit RGB, 3 segments
    "jpeg-baseline": "SC_rgb_jpeg_dcmtk.dcm",  # 1.2.840.10008.1.2.4.50
    "jpeg-extended": "JPGExtended.dcm",  # .51, 12-bit
    "jpeg-lossless": "SC_rgb_jpeg_gdcm.dcm",  # .70
    "jpeg-ls": "MR_small_jpeg_ls_lossless.dcm",  # .80
    "jpeg2000": "MR_small_jp2klossless.dcm",  # .90
    "jpeg2000-lossy": "JPEG2000.dcm",  # .91
}
DEFLATED = "image_dfl.dcm"  # 1.2.840.10008.1.2.1.99: the whole dataset is one deflate stream
ITEM = b"\xfe\xff\x00\xe0"  # (FFFE,E000) item tag, little endian
Cases = dict[str, list[tuple[str, bytes]]]  # category -> [(file name, content)]


def numbered_sop_uids(seed: int) -> Iterator[str]:
    """Unique SOP Instance UIDs, reproducible per seed."""
    return (f"1.2.826.0.1.3680043.8.498.77.{seed}{number:05d}" for number in itertools.count())


def template(codec: str, sop: str) -> Dataset:
    """The sample for `codec` with the planted identity, SOP Instance UID `sop` and a series of its own."""
    ds = pydicom.dcmread(SAMPLES / TEMPLATES[codec])
    ds.PatientName, ds.PatientID = PLANTED.patient_name, PLANTED.patient_id
    ds.PatientBirthDate, ds.AccessionNumber = PLANTED.birth_date, PLANTED.accession
    ds.InstitutionName, ds.ReferringPhysicianName = PLANTED.institution, PLANTED.referring_physician
    ds.StudyInstanceUID, ds.SeriesInstanceUID = PLANTED.study_uid, f"{sop}.1"  # a series each: CT/MR/NM
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = UID(
        sop
    )  # instances of one series are slices
    return ds


def frame(ds: Dataset) -> bytes:
    """The first (here: only) frame's compressed bytes."""
    return next(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1)))


def saved(ds: Dataset, stream: bytes | None = None) -> bytes:
    """The file's bytes, with `stream` as its single frame when given (re-encapsulated: well formed)."""
    if stream is not None:
        ds.PixelData = encapsulate([stream])
        ds["PixelData"].VR = "OB"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def stream_damage(stream: bytes, rng: random.Random, start: int) -> list[bytes]:
    """Ten damaged copies of a codestream past its first `start` bytes (its main header)."""
    end = len(stream)
    cut = rng.randrange(start, end)
    run = rng.randrange(start, end - 8)
    spot = rng.randrange(start, end - 64)
    return [
        *(flip_bits(stream, rng, start, end, flips) for flips in (1, 2, 4, 8, 32)),
        stream[:run] + bytes(rng.getrandbits(8) for _ in range(8)) + stream[run + 8 :],
        stream[:cut],  # cut short
        stream[: start + 1],  # header only
        stream[:spot] + stream[spot + 64 :],  # a chunk missing
        stream[:spot] + stream[spot : spot + 64] * 3 + stream[spot + 64 :],  # a chunk repeated
    ]


def _marker(stream: bytes, code: int) -> int:
    """Offset of the first JPEG/J2K marker `FF code`."""
    return stream.index(bytes([0xFF, code]))


def _patched(stream: bytes, offset: int, fmt: str, *values: int) -> bytes:
    data = bytearray(stream)
    struct.pack_into(fmt, data, offset, *values)
    return bytes(data)


def jpeg_header_edits(stream: bytes, sof: int) -> dict[str, bytes]:
    """SOF fields (precision, rows, columns, components, sampling, table ids) and DHT/SOS/DRI edits."""
    at = _marker(stream, sof)  # FF Cn | Lf(2) | P | Y(2) | X(2) | Nf | Nf x (C, HV, Tq)
    edits = {f"precision-{value}": _patched(stream, at + 4, ">B", value) for value in (0, 1, 2, 16, 17, 255)}
    edits |= {f"rows-{value}": _patched(stream, at + 5, ">H", value) for value in (0, 1, 0xFFFF)}
    edits |= {f"cols-{value}": _patched(stream, at + 7, ">H", value) for value in (0, 1, 0xFFFF)}
    edits |= {f"components-{value}": _patched(stream, at + 9, ">B", value) for value in (0, 2, 4, 255)}
    edits["sampling-zero"] = _patched(stream, at + 11, ">B", 0x00)
    edits["sampling-ff"] = _patched(stream, at + 11, ">B", 0xFF)
    edits["table-id-9"] = _patched(stream, at + 12, ">B", 9)
    edits["sof-length-huge"] = _patched(stream, at + 2, ">H", 0xFFFF)
    sos = _marker(stream, 0xDA)  # FF DA | Ls(2) | Ns | ...
    edits["scan-components-9"] = _patched(stream, sos + 4, ">B", 9)
    edits["scan-length-0"] = _patched(stream, sos + 2, ">H", 0)
    if 0xC4 in stream:  # FF C4 | Lh(2) | Tc/Th | 16 code counts
        dht = _marker(stream, 0xC4)
        edits["huffman-class-ff"] = _patched(stream, dht + 4, ">B", 0xFF)
        edits["huffman-counts-ff"] = stream[: dht + 5] + b"\xff" * 16 + stream[dht + 21 :]
    edits["restart-interval-1"] = stream[:2] + b"\xff\xdd\x00\x04\x00\x01" + stream[2:]
    return edits


def _jpeg2000_header_edits(stream: bytes) -> dict[str, bytes]:
    """SIZ (image and tile sizes, components, bit depth, subsampling) and COD (levels, code blocks)."""
    # FF 51 | Lsiz Rsiz (2 each) | Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz XTOsiz YTOsiz (4 each) | Csiz (2)
    # | per component: Ssiz (bit depth - 1, sign bit) XRsiz YRsiz
    siz = _marker(stream, 0x51)
    edits = {f"width-{value}": _patched(stream, siz + 6, ">I", value) for value in (0, 1, 0xFFFFFFFF)}
    edits |= {f"height-{value}": _patched(stream, siz + 10, ">I", value) for value in (0, 0x7FFFFFFF)}
    edits["origin-past-size"] = _patched(stream, siz + 14, ">I", 0xFFFF)
    edits["tile-zero"] = _patched(stream, siz + 22, ">I", 0)
    edits["tile-one"] = _patched(stream, siz + 22, ">II", 1, 1)
    edits |= {f"components-{value}": _patched(stream, siz + 38, ">H", value) for value in (0, 3, 16384)}
    edits |= {
        f"bit-depth-{value:#x}": _patched(stream, siz + 40, ">B", value) for value in (0x00, 0x26, 0x7F, 0xFF)
    }
    edits["subsampling-zero"] = _patched(stream, siz + 41, ">BB", 0, 0)
    edits["subsampling-255"] = _patched(stream, siz + 41, ">BB", 255, 255)
    cod = _marker(stream, 0x52)  # FF 52 | Lcod(2) Scod | progression layers(2) MCT | levels xcb ycb ...
    edits |= {f"levels-{value}": _patched(stream, cod + 9, ">B", value) for value in (32, 255)}
    edits["code-block-huge"] = _patched(stream, cod + 10, ">BB", 0x0F, 0x0F)
    edits["layers-zero"] = _patched(stream, cod + 6, ">H", 0)
    edits["progression-9"] = _patched(stream, cod + 5, ">B", 9)
    sot = _marker(stream, 0x90)  # FF 90 | Lsot(2) Isot(2) Psot(4) TPsot TNsot
    edits["tile-part-length-huge"] = _patched(stream, sot + 6, ">I", 0x7FFFFFFF)
    edits["tile-part-length-short"] = _patched(stream, sot + 6, ">I", 20)
    edits["tile-index-9"] = _patched(stream, sot + 4, ">H", 9)
    return edits


def _jpeg_ls_header_edits(stream: bytes) -> dict[str, bytes]:
    """SOF55 fields and the scan's NEAR / interleave parameters."""
    sof = _marker(stream, 0xF7)
    edits = {f"precision-{value}": _patched(stream, sof + 4, ">B", value) for value in (0, 1, 2, 17, 255)}
    edits |= {f"rows-{value}": _patched(stream, sof + 5, ">H", value) for value in (0, 0xFFFF)}
    edits |= {f"cols-{value}": _patched(stream, sof + 7, ">H", value) for value in (0, 0xFFFF)}
    edits |= {f"components-{value}": _patched(stream, sof + 9, ">B", value) for value in (0, 3, 255)}
    sos = _marker(stream, 0xDA)  # FF DA | Ls(2) | Ns | Ns x (C, Tm) | NEAR | ILV | Al/Ah
    near = sos + 5 + 2 * stream[sos + 4]
    edits["near-255"] = _patched(stream, near, ">B", 255)
    edits["interleave-7"] = _patched(stream, near + 1, ">B", 7)
    edits["preset-bogus"] = (
        stream[:2] + b"\xff\xf8\x00\x0d\x01\xff\xff\x00\x00\xff\xff\xff\xff\x00\x00" + stream[2:]
    )
    return edits


def _rle_header_edits(stream: bytes) -> dict[str, bytes]:
    """The 64-byte RLE header: segment count, then 15 segment offsets."""
    count, *offsets = struct.unpack_from("<16I", stream)
    edits = {
        f"segments-{value}": _patched(stream, 0, "<I", value)
        for value in (0, 1, count + 1, 15, 16, 0xFFFFFFFF)
    }
    edits["first-offset-0"] = _patched(stream, 4, "<I", 0)
    edits["first-offset-63"] = _patched(stream, 4, "<I", 63)
    edits["first-offset-past-end"] = _patched(stream, 4, "<I", len(stream) + 10)
    edits["second-offset-past-end"] = _patched(stream, 8, "<I", 0xFFFFFFF0)
    edits["offsets-swapped"] = _patched(stream, 4, "<II", offsets[1], offsets[0])
    edits["offsets-overlap"] = _patched(stream, 8, "<I", offsets[0] + 1)
    edits["offsets-odd"] = _patched(stream, 8, "<I", offsets[1] + 1)
    # Replicate runs (0x81: "repeat the next byte 128 times") past the segment's length: the Rust
    # decoder indexed out of bounds here and panicked (the original bug).
    overflow = bytes([0x81, 0x00]) * 64
    header = struct.pack("<16I", count, 64, 64 + len(overflow), *offsets[2:])
    edits["replicate-overflow"] = header + overflow + stream[offsets[1] :]
    edits["literal-overflow"] = header + (b"\x7f" + b"\x00" * 128) * 40 + stream[offsets[1] :]
    edits["run-header-only"] = header[:4] + struct.pack("<I", 64) + header[8:] + b"\x7f"
    return edits


HEADER_EDITS: dict[str, Callable[[bytes], dict[str, bytes]]] = {
    "rle": _rle_header_edits,
    "rle-rgb": _rle_header_edits,
    "jpeg-baseline": lambda stream: jpeg_header_edits(stream, 0xC0),
    "jpeg-extended": lambda stream: jpeg_header_edits(stream, 0xC1),
    "jpeg-lossless": lambda stream: jpeg_header_edits(stream, 0xC3),
    "jpeg-ls": _jpeg_ls_header_edits,
    "jpeg2000": _jpeg2000_header_edits,
}
HEADER_BYTES = {"rle": 64, "rle-rgb": 64}  # where the compressed data starts; JPEG/J2K: after SOS/SOD


def _stream_start(codec: str, stream: bytes) -> int:
    if codec in HEADER_BYTES:
        return HEADER_BYTES[codec]
    marker = 0x93 if codec.startswith("jpeg2000") else 0xDA  # SOD / SOS
    return _marker(stream, marker) + 2


def _fragment_edits(data: bytes, rng: random.Random) -> dict[str, bytes]:
    """Encapsulation damage in a saved file: the Basic Offset Table and fragment item lengths."""
    bot = data.index(ITEM)  # the offset table item comes first; the fragment item after it
    fragment = data.index(ITEM, bot + 8)
    length = struct.unpack_from("<I", data, fragment + 4)[0]
    lengths = {"zero": 0, "odd": length - 1, "short": length // 2, "long": length + 4096, "huge": 0xFFFFFFF0}
    edits = {
        f"fragment-length-{name}": _patched(data, fragment + 4, "<I", value)
        for name, value in lengths.items()
    }
    edits["offset-table-garbage"] = data[: bot + 4] + struct.pack("<II", 8, 0xDEADBEEF) + data[bot + 8 :]
    edits["offset-table-length-odd"] = _patched(data, bot + 4, "<I", 3)
    edits["no-sequence-delimiter"] = data[:-8]
    edits["empty-fragments"] = data[:fragment] + (ITEM + b"\0\0\0\0") * 50 + data[fragment:]
    edits["item-tag-flipped"] = flip_bits(data, rng, fragment, fragment + 4, 1)
    return edits


def _attribute_edits(codec: str, sops: Iterator[str]) -> dict[str, bytes]:
    """DICOM pixel attributes that disagree with the codestream: decoders size their output by them."""
    edits: dict[str, dict[str, object]] = {
        "rows-double": {"Rows": 2 * 64},
        "columns-half": {"Columns": 32},
        "bits-allocated-8": {"BitsAllocated": 8},
        "bits-allocated-32": {"BitsAllocated": 32},
        "bits-stored-over": {"BitsStored": 17, "HighBit": 16},
        "samples-3": {"SamplesPerPixel": 3, "PlanarConfiguration": 1},
        "frames-4": {"NumberOfFrames": 4},
        "ybr-422": {"PhotometricInterpretation": "YBR_FULL_422"},
        "signed": {"PixelRepresentation": 1},
    }
    out = {}
    for name, attributes in edits.items():
        ds = template(codec, next(sops))
        for keyword, value in attributes.items():
            setattr(ds, keyword, value)
        out[name] = saved(ds)
    return out


def _deflate_cases(rng: random.Random) -> list[tuple[str, bytes]]:
    """Damage inside the deflated dataset (everything after the uncompressed file meta group)."""
    data = (SAMPLES / DEFLATED).read_bytes()
    start = 144 + struct.unpack_from("<I", data, 140)[0]  # preamble + DICM + (0002,0000) element + group
    cases = [(f"stream-{index}.dcm", copy) for index, copy in enumerate(stream_damage(data, rng, start))]
    cases.append(("stream-garbage.dcm", data[:start] + bytes(rng.getrandbits(8) for _ in range(512))))
    # A well-formed deflate stream of a dataset cut off inside Pixel Data.
    inflated = zlib.decompressobj(-zlib.MAX_WBITS).decompress(data[start:])
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    cut = packer.compress(inflated[: 2 * len(inflated) // 3]) + packer.flush()
    cases.append(("dataset-cut.dcm", data[:start] + cut))
    return cases


def codec_cases(seed: int) -> Cases:
    """Every damaged compressed-DICOM case: category -> [(file name, content)]."""
    rng, sops = random.Random(seed), numbered_sop_uids(seed)
    cases: Cases = {}
    for codec in TEMPLATES:
        stream = frame(template(codec, next(sops)))
        family = codec.removesuffix("-rgb").removesuffix("-lossy")
        damaged = stream_damage(stream, rng, _stream_start(codec, stream))
        cases.setdefault(f"{family}-stream", []).extend(
            (f"{codec}-{index}.dcm", saved(template(codec, next(sops)), copy))
            for index, copy in enumerate(damaged)
        )
        if codec in HEADER_EDITS:
            edits = HEADER_EDITS[codec](stream)
            cases.setdefault(f"{family}-header", []).extend(
                (f"{codec}-{name}.dcm", saved(template(codec, next(sops)), copy))
                for name, copy in edits.items()
            )
    for codec in ("rle", "jpeg-baseline", "jpeg2000"):
        edits = _fragment_edits(saved(template(codec, next(sops))), rng)
        cases.setdefault("fragments", []).extend(
            (f"{codec}-{name}.dcm", data) for name, data in edits.items()
        )
        cases.setdefault("pixel-attributes", []).extend(
            (f"{codec}-{name}.dcm", data) for name, data in _attribute_edits(codec, sops).items()
        )
    cases["deflate-stream"] = _deflate_cases(rng)
    return cases


def damaged(codec: str, path: Path, sop: str) -> Path:
    """A file of `codec` ("rle", "jpeg-baseline", "jpeg2000") damaged so that its decoder fails: RLE
    runs that overflow their segment (the Rust decoder panicked on these: the original bug), a JPEG
    stream without its start-of-image marker, a J2K codestream cut inside its main header."""
    ds = template(codec, sop)
    stream = frame(ds)
    broken = {
        "rle": lambda: _rle_header_edits(stream)["replicate-overflow"],
        "jpeg-baseline": lambda: b"\0\0" + stream[2:],
        "jpeg2000": lambda: stream[:40],
    }[codec]()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(saved(ds, broken))
    return path
