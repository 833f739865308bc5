"""Damaged NIfTI and plain PNG / JPEG / TIFF files, hit where their readers read.

Each starts as a small valid file (nibabel, Pillow, tifffile) and is damaged in its compressed data
(gzip/zlib streams, JPEG scans, zlib-compressed TIFF strips; checksums recomputed where a reader would
otherwise stop before decoding) or in the header fields the readers size their work by (dimensions,
bit depths, data types, strip offsets and byte counts).
"""

from __future__ import annotations

import gzip
import io
import random
import struct
import zlib
from typing import Any

import nibabel as nib
import numpy as np
import tifffile
from PIL import Image

from tests.fault.codec_cases import Cases, jpeg_header_edits, stream_damage
from tests.fault.dicom_bytes import flip_bits

NIFTI_HEADER = 348  # bytes of a NIfTI-1 header; the data start at vox_offset (352 for .nii)


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _chunks(data: bytes) -> dict[bytes, int]:
    """Offset of the first chunk of each type in a PNG (its length field)."""
    found: dict[bytes, int] = {}
    position = 8
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        found.setdefault(kind, position)
        position += 12 + length
    return found


def _with_crc(data: bytes, chunk: int) -> bytes:
    """`data` with the CRC of the chunk at `chunk` recomputed: the reader then trusts its content."""
    length = struct.unpack_from(">I", data, chunk)[0]
    crc = zlib.crc32(data[chunk + 4 : chunk + 8 + length])
    return data[: chunk + 8 + length] + struct.pack(">I", crc) + data[chunk + 12 + length :]


def _png_cases(rng: random.Random, nprng: np.random.Generator) -> list[tuple[str, bytes]]:
    cases = []
    for kind, pixels in (
        ("gray8", nprng.integers(0, 256, (32, 32), dtype=np.uint8)),
        ("gray16", nprng.integers(0, 65536, (32, 32), dtype=np.uint16)),
        ("rgb", nprng.integers(0, 256, (32, 32, 3), dtype=np.uint8)),
    ):
        data = _png(pixels)
        idat, ihdr = _chunks(data)[b"IDAT"], _chunks(data)[b"IHDR"]
        end = idat + 8 + struct.unpack_from(">I", data, idat)[0]
        damaged = [_with_crc(copy, idat) for copy in stream_damage(data[:end], rng, idat + 10)[:6]]
        cases += [(f"{kind}-idat-{index}.png", copy + data[end:]) for index, copy in enumerate(damaged)]
        cases.append((f"{kind}-idat-crc-wrong.png", flip_bits(data, rng, idat + 10, end, 3)))
        cases.append((f"{kind}-cut.png", data[: rng.randrange(idat, end)]))
        header = {  # IHDR: width(4) height(4) depth type compression filter interlace
            "width-0": (8, ">I", 0),
            "width-huge": (8, ">I", 0x7FFFFFFF),
            "height-double": (12, ">I", 64),
            "depth-3": (16, ">B", 3),
            "depth-255": (16, ">B", 255),
            "color-type-7": (17, ">B", 7),
            "interlace-9": (20, ">B", 9),
        }
        for name, (offset, fmt, value) in header.items():
            edited = bytearray(data)
            struct.pack_into(fmt, edited, ihdr + offset, value)
            cases.append((f"{kind}-{name}.png", _with_crc(bytes(edited), ihdr)))
        cases.append((f"{kind}-idat-length-huge.png", data[:idat] + b"\x7f\xff\xff\xff" + data[idat + 4 :]))
    return cases


def _jpeg_cases(rng: random.Random, nprng: np.random.Generator) -> list[tuple[str, bytes]]:
    cases = []
    for kind, pixels in (
        ("gray", nprng.integers(0, 256, (48, 48), dtype=np.uint8)),
        ("rgb", nprng.integers(0, 256, (48, 48, 3), dtype=np.uint8)),
    ):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
        data = buffer.getvalue()
        scan = data.index(b"\xff\xda") + 2
        cases += [(f"{kind}-scan-{i}.jpg", copy) for i, copy in enumerate(stream_damage(data, rng, scan))]
        cases += [(f"{kind}-{name}.jpg", copy) for name, copy in jpeg_header_edits(data, 0xC0).items()]
    return cases


def _tiff_tags(data: bytes) -> dict[int, tuple[int, int, int]]:
    """Tag -> (entry offset, type, count) of the first IFD of a little-endian TIFF."""
    ifd = struct.unpack_from("<I", data, 4)[0]
    entries = struct.unpack_from("<H", data, ifd)[0]
    tags = {}
    for index in range(entries):
        offset = ifd + 2 + 12 * index
        tag, kind, count = struct.unpack_from("<HHI", data, offset)
        tags[tag] = (offset, kind, count)
    return tags


def _tiff_cases(rng: random.Random, nprng: np.random.Generator) -> list[tuple[str, bytes]]:
    cases = []
    for kind, pixels in (
        ("gray16", nprng.integers(0, 4096, (32, 32), dtype=np.uint16)),
        ("rgb8", nprng.integers(0, 256, (32, 32, 3), dtype=np.uint8)),
    ):
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, pixels, compression="zlib", photometric="rgb" if pixels.ndim == 3 else None)
        data = buffer.getvalue()
        tags = _tiff_tags(data)
        strip = struct.unpack_from("<I", data, tags[273][0] + 8)[0]  # StripOffsets (one strip)
        size = struct.unpack_from("<I", data, tags[279][0] + 8)[0]  # StripByteCounts
        strip_data = data[strip : strip + size]
        cases += [
            (
                f"{kind}-strip-{index}.tif",
                data[:strip] + copy.ljust(size, b"\0")[:size] + data[strip + size :],
            )
            for index, copy in enumerate(stream_damage(strip_data, rng, 2)[:7])
        ]
        values = {  # tag: edited value (SHORT or LONG, stored in the entry itself)
            "width-0": (256, 0),
            "width-huge": (256, 0xFFFF),
            "length-huge": (257, 0xFFFF),
            "bits-3": (258, 3),
            "bits-64": (258, 64),
            "compression-jpeg": (259, 7),
            "compression-bogus": (259, 0x7FFF),
            "strip-offset-past-end": (273, len(data) + 1000),
            "strip-count-huge": (279, 0x7FFFFFF0),
            "strip-count-zero": (279, 0),
            "samples-0": (277, 0),
            "samples-9": (277, 9),
        }
        for name, (tag, value) in values.items():
            if tag not in tags:
                continue
            offset, kind_code, count = tags[tag]
            if count != 1:  # RGB keeps one BitsPerSample per channel, elsewhere
                continue
            edited = bytearray(data)
            struct.pack_into("<H" if kind_code == 3 else "<I", edited, offset + 8, value)
            cases.append((f"{kind}-{name}.tif", bytes(edited)))
        cases.append((f"{kind}-ifd-offset-huge.tif", data[:4] + struct.pack("<I", 0x7FFFFFF0) + data[8:]))
        cases.append((f"{kind}-cut.tif", data[: len(data) // 2]))
    return cases


def _damaged_nifti_cases(rng: random.Random, nprng: np.random.Generator) -> list[tuple[str, bytes]]:
    volume = nprng.normal(100, 20, size=(24, 24, 6)).astype(np.float32)  # (X, Y, Z)
    data = bytes(nib.Nifti1Image(volume, np.eye(4)).to_bytes())
    packed = gzip.compress(data, mtime=0)
    cases = [(f"gz-stream-{index}.nii.gz", copy) for index, copy in enumerate(stream_damage(packed, rng, 10))]
    cases += [
        (f"data-flip-{flips}.nii", flip_bits(data, rng, 352, len(data), flips)) for flips in (1, 16, 256)
    ]
    header: dict[str, tuple[Any, ...]] = {  # offset: field (NIfTI-1)
        "datatype-bitpix-mismatch": (70, "<hh", 2, 64),  # uint8 declared, 64 bits per voxel
        "datatype-bogus": (70, "<hh", 0x7FFF, 32),
        "datatype-complex": (70, "<hh", 32, 64),
        "bitpix-odd": (72, "<h", 3),
        "vox-offset-odd": (108, "<f", 353.0),
        "vox-offset-past-end": (108, "<f", float(len(data) + 4096)),
        "slope-nan": (112, "<f", float("nan")),
        "slope-inf": (112, "<f", float("inf")),
        "dim-past-data": (40, "<4h", 3, 24, 24, 600),
    }
    for name, (offset, fmt, *values) in header.items():
        edited = bytearray(data)
        struct.pack_into(fmt, edited, offset, *values)
        cases.append((f"{name}.nii", bytes(edited)))
        cases.append((f"{name}.nii.gz", gzip.compress(bytes(edited), mtime=0)))
    return cases


def image_cases(seed: int) -> Cases:
    """Every damaged NIfTI / plain image case: category -> [(file name, content)]."""
    rng, nprng = random.Random(seed), np.random.default_rng(seed)
    return {
        "nifti-data": _damaged_nifti_cases(rng, nprng),
        "png-data": _png_cases(rng, nprng),
        "jpeg-file": _jpeg_cases(rng, nprng),
        "tiff-data": _tiff_cases(rng, nprng),
    }
