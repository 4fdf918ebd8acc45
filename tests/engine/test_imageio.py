"""Decoding guards: every bad file is an InputError naming the file; good files round-trip."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vetrina.errors import InputError
from vetrina.imageio import decode_image, encode_image, header_size, read_image, write_image


def _png(pixels: np.ndarray) -> bytes:
    return cv2.imencode(".png", pixels)[1].tobytes()


def _jpeg(pixels: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


@pytest.fixture
def pixels() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(37, 53, 3), dtype=np.uint8)


def test_png_round_trip_keeps_pixels_and_alpha(tmp_path, pixels):
    rgba = np.dstack([pixels, np.arange(37 * 53, dtype=np.uint32).reshape(37, 53).astype(np.uint8)])
    path = write_image(tmp_path / "a.png", rgba)
    decoded = read_image(path)
    assert decoded.format == "png"
    np.testing.assert_array_equal(decoded.pixels, rgba)
    np.testing.assert_array_equal(decoded.alpha, rgba[:, :, 3])


def test_grey_and_16_bit_png(tmp_path, pixels):
    grey = pixels[:, :, 0]
    assert decode_image(_png(grey)).pixels.shape == (37, 53)
    deep = grey.astype(np.uint16) * 257
    np.testing.assert_array_equal(decode_image(_png(deep)).pixels, grey)


def test_header_size_png_and_jpeg(pixels):
    assert header_size(_png(pixels), "png") == (37, 53)
    assert header_size(_jpeg(pixels), "jpeg") == (37, 53)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "nope.png")


def test_empty_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        read_image(tmp_path / "empty.png")


def test_text_named_png(tmp_path):
    (tmp_path / "notes.png").write_text("this is not a picture\n")
    with pytest.raises(InputError, match="not an image"):
        read_image(tmp_path / "notes.png")


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.95])
def test_truncated_png(pixels, cut):
    data = _png(pixels)
    with pytest.raises(InputError, match=r"truncated|corrupt"):
        decode_image(data[: int(len(data) * cut)], source="t.png")


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.97])
def test_truncated_jpeg(pixels, cut):
    data = _jpeg(pixels)
    with pytest.raises(InputError, match=r"truncated|corrupt"):
        decode_image(data[: int(len(data) * cut)], source="t.jpg")


def test_jpeg_with_trailing_bytes_is_accepted(pixels):
    decoded = decode_image(_jpeg(pixels) + b"\x00" * 16)
    assert decoded.pixels.shape == (37, 53, 3)


def test_pixel_limit_checked_before_decoding(pixels):
    data = bytearray(_png(pixels))
    data[16:24] = (100_000).to_bytes(4, "big") * 2  # IHDR claims 100000x100000
    with pytest.raises(InputError, match="above the limit"):
        decode_image(bytes(data), source="bomb.png")
    with pytest.raises(InputError, match="above the limit"):
        decode_image(_png(pixels), max_pixels=100)


def test_folder_is_not_an_image(tmp_path):
    with pytest.raises(InputError, match="folder"):
        read_image(tmp_path)


def test_write_rejects_unknown_extension_and_jpeg_alpha(tmp_path, pixels):
    with pytest.raises(InputError, match="extension"):
        write_image(tmp_path / "x.gif", pixels)
    with pytest.raises(InputError, match="alpha"):
        encode_image(np.dstack([pixels, pixels[:, :, :1]]), "jpeg")
    assert not list(tmp_path.iterdir())


def test_png_text_metadata_round_trips_and_keeps_the_pixels():
    from vetrina.imageio import decode_image, encode_image, png_text

    pixels = np.random.default_rng(0).integers(0, 256, (9, 11, 4), dtype=np.uint8)
    meta = {"vetrina:seed": "7", "vetrina:stages": "generate:gan > edit:upscaler"}
    data = encode_image(pixels, "png", metadata=meta)
    assert png_text(data) == meta
    np.testing.assert_array_equal(decode_image(data).pixels, pixels)
    assert png_text(encode_image(pixels[:, :, :3], "jpeg")) == {}
    with pytest.raises(InputError, match="not Latin-1"):
        encode_image(pixels, "png", metadata={"\u2603": "v"})
    unicode = {"vetrina:models": "\u2603.onnx=ab"}  # any script in a value: an iTXt chunk
    assert png_text(encode_image(pixels, "png", metadata=unicode)) == unicode


def _cutout_like(seed: int = 0) -> np.ndarray:
    """A BGRA picture that compresses like a cutout: a textured blob on transparent black."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:96, :128]
    alpha = np.clip(255 - ((yy - 48) ** 2 + (xx - 64) ** 2) / 6, 0, 255).astype(np.uint8)
    colour = (np.stack([xx, yy, xx + yy], -1) * 2 + rng.integers(0, 8, (96, 128, 3))) % 256
    colour = np.where(alpha[..., None] > 0, colour, 0).astype(np.uint8)
    return np.dstack([colour, alpha])


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_png_compression_levels_are_lossless_and_level_9_is_smaller_than_0(channels):
    image = _cutout_like()
    image = image[:, :, 0] if channels == 1 else image[:, :, :channels]
    sizes = {}
    for level in (None, *range(10)):
        data = encode_image(image, "png", png_compression=level, metadata={"k": "v"})
        np.testing.assert_array_equal(decode_image(data).pixels, image)
        sizes[level] = len(data)
    assert sizes[0] > image.nbytes  # stored, not deflated
    assert sizes[9] < sizes[1] < sizes[0]


@pytest.mark.parametrize("level", [-1, 10, True, 1.5, "6"])
def test_png_compression_must_be_a_zlib_level(level, tmp_path):
    with pytest.raises(InputError, match="zlib level"):
        encode_image(_cutout_like(), "png", png_compression=level)
    with pytest.raises(InputError, match="zlib level"):
        write_image(tmp_path / "a.png", _cutout_like(), png_compression=level)
    assert not list(tmp_path.iterdir())


def test_png_compression_for_another_format_is_an_error():
    with pytest.raises(InputError, match="PNG compression was given for jpeg"):
        encode_image(_cutout_like()[:, :, :3], "jpeg", png_compression=6)


# --- header sizes of every decodable format, and what a bomb in each looks like ---------------

_ENCODERS = {
    "png": (".png", []),
    "jpeg": (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90]),
    "webp": (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80]),  # lossy: 'VP8 ' (+ alpha: VP8X)
    "webp-lossless": (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]),  # 'VP8L'
    "bmp": (".bmp", []),
    "tiff": (".tiff", []),
}


def _encoded(kind: str, pixels: np.ndarray) -> bytes:
    ext, params = _ENCODERS[kind]
    ok, buf = cv2.imencode(ext, pixels, params)
    assert ok
    return buf.tobytes()


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(sorted(_ENCODERS)),
    height=st.integers(1, 300),
    width=st.integers(1, 300),
    channels=st.sampled_from([1, 3, 4]),
)
def test_header_size_is_the_decoded_size_in_every_format(kind, height, width, channels):
    """The size read before decoding (the bomb guard) is the size the decoder produces."""
    if kind == "jpeg" and channels == 4:
        channels = 3
    shape = (height, width) if channels == 1 else (height, width, channels)
    pixels = np.random.default_rng(height * width).integers(0, 256, shape, dtype=np.uint8)
    data = _encoded(kind, pixels)
    decoded = decode_image(data)
    assert header_size(data, decoded.format) == (height, width) == decoded.pixels.shape[:2]


def _claim(data: bytes, fmt: str, height: int, width: int) -> bytes:
    """``data`` with its header's size fields rewritten to ``height`` x ``width``."""
    b = bytearray(data)
    if fmt == "webp":
        chunk = bytes(b[12:16])
        if chunk == b"VP8X":
            b[24:27], b[27:30] = (
                (width - 1).to_bytes(3, "little"),
                (height - 1).to_bytes(3, "little"),
            )
        elif chunk == b"VP8L":
            bits = int.from_bytes(b[21:25], "little") & ~((1 << 28) - 1)
            bits |= (width - 1) | ((height - 1) << 14)
            b[21:25] = bits.to_bytes(4, "little")
        else:
            b[26:28], b[28:30] = width.to_bytes(2, "little"), height.to_bytes(2, "little")
    elif fmt == "bmp":
        b[18:22], b[22:26] = width.to_bytes(4, "little"), height.to_bytes(4, "little")
    elif fmt == "tiff":
        ifd = int.from_bytes(b[4:8], "little")
        for k in range(int.from_bytes(b[ifd : ifd + 2], "little")):
            at = ifd + 2 + 12 * k
            tag, kind = (
                int.from_bytes(b[at : at + 2], "little"),
                int.from_bytes(b[at + 2 : at + 4], "little"),
            )
            if tag in (256, 257):
                side = width if tag == 256 else height
                b[at + 8 : at + 12] = side.to_bytes(2 if kind == 3 else 4, "little").ljust(4, b"\0")
    return bytes(b)


@pytest.mark.parametrize("kind", ["webp", "webp-lossless", "bmp", "tiff"])
def test_a_bomb_in_any_format_is_refused_from_its_header(kind, pixels):
    """A small file whose header claims 16000 x 16000 (256 MP; 768 MB decoded) is refused
    before the decoder allocates anything, as PNG and JPEG bombs are."""
    data = _encoded(kind, pixels)
    fmt = decode_image(data).format
    assert header_size(data, fmt) == (37, 53)
    bomb = _claim(data, fmt, 16000, 16000)
    assert header_size(bomb, fmt) == (16000, 16000)
    with pytest.raises(InputError, match=r"16000x16000 = 256.0 MP, above the limit"):
        decode_image(bomb, source=f"bomb.{fmt}")


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(sorted(_ENCODERS)),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
    cut=st.none() | st.integers(0, 10**6),
)
def test_damaged_files_decode_or_fail_with_an_input_error(kind, edits, cut):
    """Bytes overwritten anywhere (headers included) and files cut short: an image or an
    InputError naming the problem, never another exception."""
    pixels = np.random.default_rng(7).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    data = bytearray(_encoded(kind, pixels))
    for at, value in edits:
        data[at % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    try:
        decoded = decode_image(bytes(data), source="damaged", max_pixels=4_000_000)
    except InputError as exc:
        assert "damaged" in str(exc)
        return
    assert decoded.pixels.dtype == np.uint8 and decoded.pixels.size <= 4 * 4_000_000


# --- EXIF orientation ---------------------------------------------------------------------


def _with_orientation(pixels: np.ndarray, fmt: str, orientation: int) -> bytes:
    """``pixels`` (RGB or RGBA) saved by Pillow as ``fmt`` with EXIF ``orientation``."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    extra = {"lossless": True} if fmt == "WEBP" else {"quality": 100} if fmt == "JPEG" else {}
    Image.fromarray(pixels).save(buffer, fmt, exif=exif.tobytes(), **extra)
    return buffer.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF", "JPEG"])
def test_exif_orientation_is_applied_as_pillow_applies_it(fmt, orientation):
    from PIL import Image, ImageOps

    rng = np.random.default_rng(orientation)
    channels = 3 if fmt == "JPEG" else 4  # PNG, WebP and TIFF keep their alpha
    pixels = rng.integers(0, 256, (6, 10, channels), np.uint8)
    if fmt == "JPEG":
        pixels = np.repeat(np.repeat(pixels, 8, axis=0), 8, axis=1)  # 8x8 blocks survive
    data = _with_orientation(pixels, fmt, orientation)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    decoded = decode_image(data).pixels  # BGR(A)
    expected = upright[:, :, [2, 1, 0, 3][:channels]]
    assert decoded.shape == expected.shape
    if fmt == "JPEG":
        assert np.abs(decoded.astype(int) - expected).max() <= 8  # different IDCTs
    elif fmt == "TIFF":  # straight alpha restored from OpenCV's premultiplied pixels
        _assert_straight(decoded, expected)
    else:
        np.testing.assert_array_equal(decoded, expected)


def _assert_straight(decoded: np.ndarray, expected: np.ndarray) -> None:
    """``decoded`` equals ``expected`` in alpha, and in colour to the rounding that
    premultiplying by alpha and dividing again allows (exact at alpha 255)."""
    np.testing.assert_array_equal(decoded[..., 3], expected[..., 3])
    alpha = expected[..., 3:].astype(float)
    error = np.abs(decoded[..., :3].astype(float) - expected[..., :3])
    allowed = np.where(alpha > 0, 255.0 / (2 * np.maximum(alpha, 1)) + 0.5, 255)
    assert (error <= allowed).all()


@pytest.mark.parametrize(
    "damage",
    [
        lambda exif: exif[:10],  # cut inside IFD0
        lambda exif: b"XX" + exif[2:],  # no byte-order mark
        lambda exif: exif[:4] + b"\xff\xff\xff\x7f" + exif[8:],  # IFD0 beyond the block
    ],
)
def test_a_malformed_exif_block_leaves_the_png_as_stored(damage):
    pixels = np.random.default_rng(1).integers(0, 256, (6, 10, 3), np.uint8)
    data = _with_orientation(pixels, "PNG", 6)
    start = data.index(b"eXIf") + 4
    (length,) = struct.unpack(">I", data[start - 8 : start - 4])
    exif = damage(data[start : start + length])
    chunk = struct.pack(">I", len(exif)) + b"eXIf" + exif
    chunk += struct.pack(">I", zlib.crc32(b"eXIf" + exif) & 0xFFFFFFFF)
    broken = data[: start - 8] + chunk + data[start + length + 4 :]
    np.testing.assert_array_equal(decode_image(broken).pixels, pixels[:, :, ::-1])


def test_an_rgba_tiff_keeps_its_straight_colours():
    """OpenCV's 8-bit TIFF reader premultiplies colour by alpha; a half-transparent red must
    still decode as red, as it does from a PNG."""
    from PIL import Image

    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, np.arange(6, dtype=np.uint8) * 51  # alpha 0..255
    buffer = io.BytesIO()
    Image.fromarray(rgba).save(buffer, "TIFF")
    decoded = decode_image(buffer.getvalue()).pixels
    np.testing.assert_array_equal(decoded[..., 3], rgba[..., 3])
    np.testing.assert_array_equal(decoded[:, 1:, 2], 200)  # red at every alpha above 0
    assert (decoded[:, 0, :3] == 0).all()  # colour under alpha 0 is lost: 0


def _smooth(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur((rng.random(shape) * 255).astype(np.uint8), (9, 9), 3)


@pytest.mark.parametrize(
    "params",
    [
        [cv2.IMWRITE_JPEG_QUALITY, 90],
        [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_PROGRESSIVE, 1],
        [cv2.IMWRITE_JPEG_QUALITY, 75, cv2.IMWRITE_JPEG_RST_INTERVAL, 4],
        [cv2.IMWRITE_JPEG_QUALITY, 95, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, 0x111111],  # 4:4:4
    ],
)
@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_pixels_equal_opencv(params, channels):
    image = _smooth((48, 72, 3))[..., : channels if channels == 3 else 1].squeeze()
    data = cv2.imencode(".jpg", image, params)[1].tobytes()
    want = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(decode_image(data).pixels, want)


def test_a_cmyk_jpeg_decodes_as_opencv_decodes_it():
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(_smooth((40, 56, 3))).convert("CMYK").save(buffer, "JPEG", quality=95)
    data = buffer.getvalue()
    want = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(decode_image(data).pixels, want)


def test_jpeg_data_the_decoder_must_repair_is_refused():
    """OpenCV decodes these with smeared blocks and a warning on stderr; vetrina refuses."""
    data = cv2.imencode(".jpg", _smooth((256, 256, 3)), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1]
    data = bytearray(data.tobytes())
    start = data.find(b"\xff\xda") + 200  # inside the first scan's entropy-coded data
    data[start : start + 64] = np.random.default_rng(0).integers(0, 255, 64, np.uint8).tobytes()
    assert cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_COLOR) is not None
    with pytest.raises(InputError, match=r"bad\.jpg: corrupt JPEG data \(libjpeg-turbo: .*Huffman"):
        decode_image(bytes(data), source="bad.jpg")


def test_a_jpeg_header_warning_alone_is_accepted():
    """An unknown JFIF version makes libjpeg warn, but no image data is lost."""
    data = bytearray(_jpeg(_smooth((32, 32, 3))))
    app0 = data.find(b"JFIF\x00")
    assert app0 > 0
    data[app0 + 5] = 7  # JFIF version 7.01
    want = cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(decode_image(bytes(data)).pixels, want)
