"""Byte-level editing of explicit-VR little-endian DICOM files: what pydicom will not write for us
(bogus lengths, wrong VRs, unterminated or absurdly deep sequences) is spliced in as raw bytes."""

from __future__ import annotations

import random
import struct

LONG_LENGTH_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010) in little endian


def element(group: int, elem: int, vr: bytes, value: bytes) -> bytes:
    """One explicit-VR little-endian element, with the length field its VR calls for."""
    value += b"\0" * (len(value) % 2)
    header = struct.pack("<HH", group, elem) + vr
    if vr in LONG_LENGTH_VRS:
        return header + b"\0\0" + struct.pack("<I", len(value)) + value
    return header + struct.pack("<H", len(value)) + value


def dataset_start(data: bytes) -> int:
    """Offset of the first main-dataset element (just after the file meta group)."""
    meta_length = struct.unpack_from("<I", data, 128 + 4 + 8)[0]  # (0002,0000) group length value
    return 128 + 4 + 12 + meta_length


def flip_bits(data: bytes, rng: random.Random, start: int, end: int, flips: int) -> bytes:
    mutable = bytearray(data)
    for _ in range(flips):
        offset = rng.randrange(start, end)
        mutable[offset] ^= 1 << rng.randrange(8)
    return bytes(mutable)


def element_offsets(data: bytes) -> list[tuple[int, bytes]]:
    """(offset, VR) of each top-level main-dataset element, walking the explicit-VR LE stream."""
    offsets, position = [], dataset_start(data)
    while position + 8 <= len(data):
        vr = data[position + 4 : position + 6]
        if vr in LONG_LENGTH_VRS:
            length, header = struct.unpack_from("<I", data, position + 8)[0], 12
        else:
            length, header = struct.unpack_from("<H", data, position + 6)[0], 8
        offsets.append((position, vr))
        position += header + length
    return offsets


def set_length(data: bytes, offset: int, vr: bytes, length: int) -> bytes:
    if vr in LONG_LENGTH_VRS:
        return data[: offset + 8] + struct.pack("<I", length & 0xFFFFFFFF) + data[offset + 12 :]
    return data[: offset + 6] + struct.pack("<H", length & 0xFFFF) + data[offset + 8 :]


def nested_sequence(depth: int) -> bytes:
    """ContentSequence items nested `depth` deep, undefined lengths, properly delimited."""
    open_one = element(0x0040, 0xA730, b"SQ", b"")[:8] + b"\xff\xff\xff\xff"  # SQ, undefined length
    item_start = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    closing = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return (open_one + item_start) * depth + closing * depth
