"""The fast PNG writer: files every reader decodes to the same pixels, text chunks, bad input."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from vetrina.errors import InputError
from vetrina.imageio import decode_image, encode_image, png_text
from vetrina.png import encode_png


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, body) of every chunk, each CRC checked."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, out = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        out.append((kind, body))
        pos += 12 + length
    return out


def _opencv(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 70),
    channels=st.sampled_from([0, 1, 3, 4]),
    level=st.integers(0, 3),
    seed=st.integers(0, 2**16),
    step=st.sampled_from([1, 2]),
)
def test_opencv_and_pillow_decode_the_same_pixels(h, w, channels, level, seed, step):
    rng = np.random.default_rng(seed)
    shape = (h * step, w * step) + ((channels,) if channels else ())
    base = rng.integers(0, 256, shape, dtype=np.uint8)
    bgr = base[::step, ::step]  # a strided view when step is 2
    data = encode_png(bgr, level=level)
    decoded = _opencv(data)  # OpenCV: BGR(A) or grey, as given
    np.testing.assert_array_equal(decoded.reshape(bgr.shape), bgr)
    pil = np.asarray(Image.open(io.BytesIO(data)))  # Pillow: RGB(A)
    rgb = bgr if channels in (0, 1) else bgr[..., [2, 1, 0, 3][:channels]]
    np.testing.assert_array_equal(pil.reshape(rgb.shape), rgb)
    assert [k for k, _ in _chunks(data)][:1] == [b"IHDR"]
    assert _chunks(data)[-1] == (b"IEND", b"")


def test_rgb_order_is_written_as_given():
    rgb = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    pil = np.asarray(Image.open(io.BytesIO(encode_png(rgb, order="rgb"))))
    np.testing.assert_array_equal(pil, rgb)


def test_text_chunks_sit_after_the_header_and_read_back():
    pixels = np.zeros((4, 4, 4), np.uint8)
    meta = {"vetrina:seed": "7", "Software": "vetrina"}
    data = encode_png(pixels, text=meta)
    kinds = [k for k, _ in _chunks(data)]
    assert kinds[:3] == [b"IHDR", b"tEXt", b"tEXt"] and kinds[-1] == b"IEND"
    assert png_text(data) == meta
    assert Image.open(io.BytesIO(data)).text == meta


def test_text_beyond_latin_1_goes_into_itxt_chunks():
    """A model file or pipeline named in another script: UTF-8 iTXt, read back by vetrina
    and by Pillow; Latin-1 text stays tEXt."""
    pixels = np.zeros((4, 4, 3), np.uint8)
    meta = {"vetrina:models": "\u6a21\u578b.onnx=ab12", "vetrina:pipeline": "caf\u00e9"}
    data = encode_png(pixels, text=meta)
    assert [k for k, _ in _chunks(data)][1:3] == [b"iTXt", b"tEXt"]
    assert png_text(data) == meta
    assert Image.open(io.BytesIO(data)).text == meta
    np.testing.assert_array_equal(decode_image(data).pixels, pixels)


def test_encode_image_default_png_uses_the_writer_and_is_no_larger_than_opencv():
    """A cutout-like picture: the default output equals encode_png's, at most 5 % larger than
    OpenCV's own fast default (it is smaller on the catalog cutouts of the README)."""
    yy, xx = np.mgrid[:240, :320]
    alpha = np.clip(255 - ((yy - 120) ** 2 + (xx - 160) ** 2) / 20, 0, 255).astype(np.uint8)
    colour = np.stack([xx % 256, yy, (xx + yy) % 256], -1).astype(np.uint8)
    cutout = np.dstack([np.where(alpha[..., None] > 0, colour, 0), alpha]).astype(np.uint8)
    data = encode_image(cutout, "png", metadata={"k": "v"})
    assert data == encode_png(cutout, text={"k": "v"})
    np.testing.assert_array_equal(decode_image(data).pixels, cutout)
    assert len(data) <= 1.05 * len(cv2.imencode(".png", cutout)[1])


def test_sixteen_bit_pixels_still_go_through_opencv():
    deep = (np.arange(60, dtype=np.uint16).reshape(6, 10) * 1000).astype(np.uint16)
    np.testing.assert_array_equal(_opencv(encode_image(deep, "png")), deep)


@pytest.mark.parametrize(
    ("pixels", "kwargs", "match"),
    [
        (np.zeros((4, 4), np.float32), {}, "uint8"),
        (np.zeros((4, 4, 2), np.uint8), {}, "shape"),
        (np.zeros((2, 4, 4, 3), np.uint8), {}, "shape"),
        (np.zeros((0, 4, 3), np.uint8), {}, "empty"),
        (np.zeros((4, 4, 3), np.uint8), {"order": "bgra"}, "order"),
        (np.zeros((4, 4, 3), np.uint8), {"level": 4}, "0..3"),
        (np.zeros((4, 4, 3), np.uint8), {"level": True}, "0..3"),
        (np.zeros((4, 4, 3), np.uint8), {"text": {"": "v"}}, "1-79"),
        (np.zeros((4, 4, 3), np.uint8), {"text": {"\u2603": "v"}}, "Latin-1"),
    ],
)
def test_bad_input_is_a_clear_error(pixels, kwargs, match):
    with pytest.raises(InputError, match=match):
        encode_png(pixels, **kwargs)
