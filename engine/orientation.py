"""EXIF orientation of JPEG, PNG and WebP files, for the decoders that ignore it.

OpenCV applies the orientation of a TIFF itself; a PNG or WebP has to be decoded with
``IMREAD_UNCHANGED`` to keep its alpha, and that flag also ignores the orientation; JPEGs are
decoded by libjpeg-turbo directly (:mod:`vetrina.imageio`), which does not read EXIF. Phones
and editors write it into JPEG ``APP1`` segments, PNG ``eXIf`` chunks and WebP ``EXIF``
chunks, so a portrait photo would arrive lying on its side. This module reads the orientation
tag (0x0112) from those blocks and applies it to the decoded pixels.
"""

from __future__ import annotations

import struct

import numpy as np

__all__ = ["apply_orientation", "exif_orientation"]

ORIENTATION_TAG = 0x0112
SHORT = 3  # the TIFF field type of the orientation value


def exif_orientation(data: bytes, fmt: str) -> int:
    """The EXIF orientation (1-8) of a JPEG, PNG or WebP file, 1 (as stored) when it has none
    or its EXIF block is malformed (a broken tag must not fail a photo that decodes)."""
    readers = {"jpeg": _jpeg_exif, "png": _png_exif, "webp": _webp_exif}
    block = readers[fmt](data) if fmt in readers else None
    if block is None:
        return 1
    try:
        value = _tiff_orientation(block)
    except (struct.error, IndexError):
        return 1
    return value if value in range(1, 9) else 1


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """``pixels`` (H x W [x C]) turned as EXIF ``orientation`` says, so the result is upright:
    2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise, 7 transverse,
    8 rotate 90 anticlockwise (the TIFF 6.0 / EXIF 2.3 definitions)."""
    axes = (1, 0, *range(2, pixels.ndim))
    turned = {
        1: lambda p: p,
        2: lambda p: p[:, ::-1],
        3: lambda p: p[::-1, ::-1],
        4: lambda p: p[::-1],
        5: lambda p: p.transpose(axes),
        6: lambda p: p.transpose(axes)[:, ::-1],
        7: lambda p: p.transpose(axes)[::-1, ::-1],
        8: lambda p: p.transpose(axes)[::-1],
    }[orientation](pixels)
    return np.ascontiguousarray(turned)


def _jpeg_exif(data: bytes) -> bytes | None:
    """The TIFF block of the JPEG's first ``APP1`` segment that holds EXIF, if any (segments
    are read up to the first scan)."""
    pos = 2  # after SOI
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA or marker == 0xD9:  # start of scan / end of image: no more headers
            return None
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segment = data[pos + 4 : pos + 2 + length]
        if marker == 0xE1 and segment.startswith(b"Exif\0\0"):
            return segment[6:]
        pos += 2 + length
    return None


def _png_exif(data: bytes) -> bytes | None:
    """The payload of the PNG's ``eXIf`` chunk (a TIFF header and IFDs), if any."""
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"eXIf":
            return data[pos + 8 : pos + 8 + length]
        if kind == b"IEND":
            return None
        pos += 12 + length  # length, type, data, CRC
    return None


def _webp_exif(data: bytes) -> bytes | None:
    """The payload of the WebP's ``EXIF`` chunk (RIFF container), if any."""
    pos = 12
    while pos + 8 <= len(data):
        kind = data[pos : pos + 4]
        (length,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        if kind == b"EXIF":
            block = data[pos + 8 : pos + 8 + length]
            return block[6:] if block.startswith(b"Exif\0\0") else block
        pos += 8 + length + (length & 1)
    return None


def _tiff_orientation(block: bytes) -> int:
    """The orientation value in IFD0 of a TIFF-structured EXIF block (1 if absent)."""
    order = {b"II": "<", b"MM": ">"}.get(block[:2])
    if order is None:
        return 1
    (ifd,) = struct.unpack(order + "I", block[4:8])
    (count,) = struct.unpack(order + "H", block[ifd : ifd + 2])
    for i in range(count):
        entry = block[ifd + 2 + 12 * i : ifd + 14 + 12 * i]
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag == ORIENTATION_TAG and kind == SHORT:
            return int(struct.unpack(order + "H", entry[8:10])[0])
    return 1
