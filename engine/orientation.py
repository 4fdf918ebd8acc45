"""EXIF orientation of PNG and WebP files, which OpenCV ignores when it keeps the alpha channel.

OpenCV applies the orientation of a JPEG (decoded as colour) and of a TIFF itself; a PNG or
WebP has to be decoded with ``IMREAD_UNCHANGED`` to keep its alpha, and that flag also
ignores the orientation. Phones and editors write it into PNG ``eXIf`` chunks and WebP
``EXIF`` chunks, so a portrait photo would arrive lying on its side. This module reads the
orientation tag (0x0112) from those chunks and applies it to the decoded pixels.
"""

from __future__ import annotations

import struct

import numpy as np

__all__ = ["apply_orientation", "exif_orientation"]

ORIENTATION_TAG = 0x0112
SHORT = 3  # the TIFF field type of the orientation value


def exif_orientation(data: bytes, fmt: str) -> int:
    """The EXIF orientation (1-8) of a PNG or WebP file, 1 (as stored) when it has none or
    its EXIF block is malformed (a broken tag must not fail a photo that decodes)."""
    block = _png_exif(data) if fmt == "png" else _webp_exif(data) if fmt == "webp" else None
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
