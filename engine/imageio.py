"""Decoding and encoding of images, with the checks that keep bad files from doing harm.

Decoded pixels stay in OpenCV's channel order (BGR/BGRA, or one grey channel); the kernels
swap channels as part of preprocessing, so no extra pass is spent on it here.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .atomic import atomic_write_bytes
from .errors import InputError
from .orientation import apply_orientation, exif_orientation
from .png import SIGNATURE as PNG_SIGNATURE
from .png import encode_png, text_chunks

#: Largest decoded image accepted by default (pixels): a guard against decompression bombs.
DEFAULT_MAX_PIXELS = 64_000_000

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (PNG_SIGNATURE, "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)
SUPPORTED_FORMATS = ("png", "jpeg", "webp", "bmp", "tiff")
WRITE_EXTENSIONS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}


@dataclass(frozen=True)
class DecodedImage:
    """8-bit pixels as decoded: HxW (grey), HxWx3 (BGR) or HxWx4 (BGRA)."""

    pixels: np.ndarray
    source: str
    format: str

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def alpha(self) -> np.ndarray | None:
        """The alpha plane (a view), or None for images without one."""
        return self.pixels[:, :, 3] if self.pixels.ndim == 3 and self.pixels.shape[2] == 4 else None


def sniff_format(data: bytes) -> str | None:
    """The image format named by the file's leading bytes, or None if it is not an image."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    for signature, fmt in _SIGNATURES:
        if data.startswith(signature):
            return fmt
    return None


def read_image(
    source: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> DecodedImage:
    """Read and decode an image file; every problem is an :class:`InputError` naming the file."""
    path = Path(source)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not an image file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return decode_image(data, source=str(path), max_pixels=max_pixels)


def decode_image(
    data: bytes, *, source: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS
) -> DecodedImage:
    """Decode encoded image bytes to 8-bit pixels, after structural and size checks.

    EXIF orientation is applied (TIFF by OpenCV, JPEG, PNG and WebP by
    :mod:`vetrina.orientation`). JPEG data the decoder would have to repair is refused (see
    :func:`_decode_jpeg`). 16-bit images are reduced to 8 bits (rounded); float images
    are refused.
    """
    if len(data) == 0:
        raise InputError(f"{source}: file is empty (0 bytes)")
    fmt = sniff_format(data)
    if fmt is None:
        raise InputError(
            f"{source}: not an image (its first bytes {data[:8]!r} match none of "
            f"{', '.join(SUPPORTED_FORMATS)})"
        )
    _check_complete(data, fmt, source)
    size = header_size(data, fmt)
    if size is not None:
        _check_pixels(size, max_pixels, source)
    pixels = _decode_jpeg(data, source) if fmt == "jpeg" else _opencv_decode(data, fmt, source)
    _check_pixels(pixels.shape[:2], max_pixels, source)
    if fmt in ("png", "webp", "jpeg"):  # decoders that ignore the EXIF orientation
        pixels = apply_orientation(pixels, exif_orientation(data, fmt))
    if fmt == "tiff" and pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = _straight_alpha(pixels)
    return DecodedImage(_to_uint8(pixels, source), source, fmt)


def _opencv_decode(
    data: bytes, fmt: str, source: str, flags: int = cv2.IMREAD_UNCHANGED
) -> np.ndarray:
    try:
        pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    except cv2.error as exc:
        raise InputError(f"{source}: cannot be decoded as {fmt} ({_first_line(exc)})") from None
    if pixels is None:
        raise InputError(f"{source}: corrupt or truncated {fmt} data (the decoder rejected it)")
    return pixels


def _decode_jpeg(data: bytes, source: str) -> np.ndarray:
    """BGR pixels of a JPEG, decoded by libjpeg-turbo (simplejpeg) in strict mode, as stored
    (no EXIF orientation). A CMYK/YCCK JPEG, which simplejpeg does not convert to BGR, is
    checked the same way and converted by OpenCV; so is a JPEG simplejpeg cannot read for a
    reason other than damage.

    Strict: data the decoder has to repair (a bad Huffman code, a marker inside the scan, a
    premature end) is refused. OpenCV decodes such files silently with grey or smeared
    blocks. JPEG has no checksum, so damage that still decodes to valid codes passes either
    way. Same libjpeg-turbo arithmetic as OpenCV: identical pixels, in about half the time.
    """
    import simplejpeg

    try:
        colourspace = simplejpeg.decode_jpeg_header(data)[2]
        by_opencv = colourspace in ("CMYK", "YCCK")
        pixels = simplejpeg.decode_jpeg(data, "CMYK" if by_opencv else "BGR", strict=True)
    except ValueError as exc:
        message = " ".join(str(exc).split())
        if _JPEG_DAMAGE.search(message):
            raise InputError(
                f"{source}: corrupt JPEG data (libjpeg-turbo: {message}); the file is "
                "damaged: export or download it again"
            ) from None
        # a warning about the headers (an unknown JFIF version, odd scan parameters), which
        # simplejpeg treats as fatal, or a kind simplejpeg does not decode (12-bit): OpenCV
        by_opencv = True
    if by_opencv:
        return _opencv_decode(
            data, "jpeg", source, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
        )
    return pixels


#: libjpeg-turbo's warnings about lost image data ("Corrupt JPEG data: ...", "Premature end
#: of JPEG file", "Inconsistent progression sequence ..."); its other warnings concern headers.
_JPEG_DAMAGE = re.compile(r"corrupt|premature|progression", re.IGNORECASE)


def _check_complete(data: bytes, fmt: str, source: str) -> None:
    """Refuse truncated PNG/JPEG files, which some decoders accept and fill with grey."""
    if fmt == "png" and data.rfind(b"IEND") < 0:
        raise InputError(f"{source}: truncated PNG (no IEND chunk at the end of the file)")
    if fmt == "jpeg":
        last_scan = data.rfind(b"\xff\xda")
        if last_scan < 0 or data.find(b"\xff\xd9", last_scan) < 0:
            raise InputError(
                f"{source}: truncated JPEG (no end-of-image marker after the image data)"
            )


def header_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """(height, width) read from the file's header without decoding, or None if the header
    does not say (the decoded size is checked then). Every format the decoder takes has a
    reader here, so a decompression bomb is refused before any pixel memory is allocated."""
    reader = _HEADER_READERS.get(fmt)
    if reader is None:
        return None
    try:
        return reader(data)
    except (struct.error, IndexError):  # a header cut short: the decoder will say so
        return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return height, width
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 9 < len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return height, width
        pos += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """The canvas of a WebP file: its first chunk is VP8X (extended: the canvas), VP8L
    (lossless) or ``VP8 `` (lossy key frame), per the WebP container specification."""
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return height, width
    if chunk == b"VP8L" and data[20] == 0x2F:
        (bits,) = struct.unpack("<I", data[21:25])
        return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return height & 0x3FFF, width & 0x3FFF
    return None


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    """From the DIB header: 16-bit sides in the old OS/2 header (12 bytes), else signed 32-bit
    ones (a negative height is a top-down bitmap)."""
    (header,) = struct.unpack("<I", data[14:18])
    if header == 12:
        width, height = struct.unpack("<HH", data[18:22])
    else:
        width, height = struct.unpack("<ii", data[18:26])
    return abs(height), abs(width)


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """ImageWidth (256) and ImageLength (257) of the first image file directory, the image
    the decoder reads."""
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    sides: dict[int, int] = {}
    for k in range(count):
        at = ifd + 2 + 12 * k
        tag, kind = struct.unpack(order + "HH", data[at : at + 4])
        if tag in (256, 257):
            if kind == 3:  # SHORT
                (sides[tag],) = struct.unpack(order + "H", data[at + 8 : at + 10])
            elif kind == 4:  # LONG
                (sides[tag],) = struct.unpack(order + "I", data[at + 8 : at + 12])
    if 256 in sides and 257 in sides:
        return sides[257], sides[256]
    return None


_HEADER_READERS = {
    "png": _png_size,
    "jpeg": _jpeg_size,
    "webp": _webp_size,
    "bmp": _bmp_size,
    "tiff": _tiff_size,
}


def _check_pixels(size: tuple[int, int], max_pixels: int, source: str) -> None:
    height, width = int(size[0]), int(size[1])
    if height <= 0 or width <= 0:
        raise InputError(f"{source}: image has zero size ({width}x{height})")
    if height * width > max_pixels:
        raise InputError(
            f"{source}: image is {width}x{height} = {height * width / 1e6:.1f} MP, above the "
            f"limit of {max_pixels / 1e6:.1f} MP",
            hint="raise the limit (--max-pixels) if the file is trusted",
        )


def _straight_alpha(bgra: np.ndarray) -> np.ndarray:
    """Undo the premultiplication OpenCV's 8-bit TIFF reader applies (libtiff's RGBA reader
    multiplies colour by alpha), so a TIFF's colours come back straight like a PNG's: colour
    ``round(c * 255 / a)`` (exact at full alpha, within ``255 / (2a)`` levels of the file's
    value below it; the reader rounded), 0 where alpha is 0."""
    alpha = bgra[:, :, 3:].astype(np.uint32)
    colour = bgra[:, :, :3].astype(np.uint32)
    straight = np.minimum((colour * 255 + alpha // 2) // np.maximum(alpha, 1), 255)
    out = bgra.copy()
    out[:, :, :3] = np.where(alpha > 0, straight, 0)
    return out


def _to_uint8(pixels: np.ndarray, source: str) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.uint16:
        return ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    raise InputError(
        f"{source}: {pixels.dtype} images are not supported; expected 8- or 16-bit integer pixels"
    )


def encode_image(
    pixels: np.ndarray,
    fmt: str,
    *,
    quality: int = 92,
    metadata: dict[str, str] | None = None,
    png_compression: int | None = None,
) -> bytes:
    """Encode BGR/BGRA/grey uint8 pixels as PNG, JPEG or WebP bytes. ``metadata`` (PNG only)
    becomes ``tEXt`` chunks (Latin-1 keys of 1-79 characters), read back by :func:`png_text`.

    ``png_compression``: None is vetrina's fast PNG writer (:mod:`vetrina.png`: SUB filter,
    ISA-L deflate level 1) for 8-bit pixels; 0-9 is a zlib level through OpenCV with zlib's
    default strategy (6 is what Pillow writes). On 1024x683 RGBA cutouts, one core: default
    2.5 ms, OpenCV's own default 14 ms and 2 % larger, level 6 60 ms and 20 % smaller
    (``benchmarks/RESULTS.md``)."""
    if fmt not in ("png", "jpeg", "webp"):
        raise InputError(f"cannot encode {fmt!r}; choose png, jpeg or webp")
    check_png_compression(png_compression, fmt)
    params: list[int] = []
    if png_compression is not None:
        params = [
            cv2.IMWRITE_PNG_COMPRESSION,
            png_compression,
            cv2.IMWRITE_PNG_STRATEGY,
            cv2.IMWRITE_PNG_STRATEGY_DEFAULT,
        ]
    if fmt == "jpeg":
        if pixels.ndim == 3 and pixels.shape[2] == 4:
            raise InputError("JPEG has no alpha channel", hint="write PNG or WebP to keep alpha")
        params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    elif fmt == "webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, quality]
    if fmt == "png" and png_compression is None and _fast_png(pixels):
        return encode_png(pixels, order="bgr", text=metadata)
    ext = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}[fmt]
    ok, buf = cv2.imencode(ext, pixels, params)
    if not ok:
        raise InputError(f"OpenCV could not encode a {pixels.shape} image as {fmt}")
    data = buf.tobytes()
    if metadata and fmt == "png":
        data = _with_png_text(data, metadata)
    return data


def check_png_compression(level: object, fmt: str = "png") -> None:
    """``level`` must be None or a zlib level 0-9, and set only for PNG output."""
    if level is None:
        return
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 9:
        raise InputError(f"PNG compression {level!r} must be a zlib level, an int in 0..9")
    if fmt != "png":
        raise InputError(
            f"PNG compression was given for {fmt} output",
            hint="drop it, or set 'quality' for JPEG and WebP",
        )


def _fast_png(pixels: np.ndarray) -> bool:
    """Whether :func:`~vetrina.png.encode_png` writes these pixels (8-bit, 1/3/4 channels)."""
    channels = 1 if pixels.ndim == 2 else pixels.shape[-1] if pixels.ndim == 3 else 0
    return pixels.dtype == np.uint8 and channels in (1, 3, 4) and pixels.size > 0


def _with_png_text(png: bytes, metadata: dict[str, str]) -> bytes:
    """``png`` with one ``tEXt`` chunk per item, placed right after IHDR."""
    chunks = text_chunks(metadata)
    end_of_ihdr = 8 + 8 + 13 + 4  # signature, IHDR length+type, IHDR data, CRC
    return png[:end_of_ihdr] + b"".join(chunks) + png[end_of_ihdr:]


def png_text(data: bytes) -> dict[str, str]:
    """The ``tEXt`` and ``iTXt`` items of PNG bytes (``{}`` for other formats or none)."""
    if not data.startswith(PNG_SIGNATURE):
        return {}
    items, pos = {}, 8
    while pos + 8 <= len(data):
        (length,), kind = struct.unpack(">I", data[pos : pos + 4]), data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"tEXt" and b"\0" in body:
            key, value = body.split(b"\0", 1)
            items[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"iTXt" and body.count(b"\0") >= 3:
            key, rest = body.split(b"\0", 1)
            compressed, rest = rest[:1] == b"\1", rest[2:]  # flag, method
            _language, _translated, text = rest.split(b"\0", 2)
            with contextlib.suppress(zlib.error, UnicodeDecodeError):
                raw = zlib.decompress(text) if compressed else text
                items[key.decode("latin-1")] = raw.decode("utf-8")
        if kind == b"IEND":
            break
        pos += 12 + length
    return items


def write_image(
    path: str | os.PathLike[str],
    pixels: np.ndarray,
    *,
    quality: int = 92,
    metadata: dict[str, str] | None = None,
    png_compression: int | None = None,
) -> Path:
    """Encode by the file extension and write atomically (a temporary file, then rename);
    ``metadata`` goes into PNG files as text chunks (see :func:`encode_image`)."""
    path = Path(path)
    fmt = WRITE_EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"{path}: unknown output extension {path.suffix!r}; use {', '.join(WRITE_EXTENSIONS)}"
        )
    data = encode_image(
        pixels, fmt, quality=quality, metadata=metadata, png_compression=png_compression
    )
    return atomic_write_bytes(path, data)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__
