"""Requests as bytes, paths or arrays: each decoded and checked alone, bad ones fail alone,
good ones equal editing the image directly."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vetrina.editor import Editor
from vetrina.errors import InputError
from vetrina.imageio import decode_image, png_text
from vetrina.model import Model
from vetrina.requests import process


@pytest.fixture(scope="module")
def editor(small_model):
    return Editor(Model.open(small_model), batch_size=3)


def _photo(seed: int, h: int = 24, w: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_mixed_requests_fail_alone_and_the_rest_match_direct_edits(editor, tmp_path):
    rgb = [_photo(i) for i in range(4)]
    png = cv2.imencode(".png", rgb[0][:, :, ::-1])[1].tobytes()
    path = tmp_path / "p.png"
    path.write_bytes(cv2.imencode(".png", rgb[1][:, :, ::-1])[1].tobytes())
    rgba = np.dstack([rgb[3], np.full(rgb[3].shape[:2], 200, np.uint8)])
    items = [
        png,
        b"",
        str(path),
        png[: len(png) // 2],
        rgb[2],
        rgb[2].astype(np.float32),
        12345,
        tmp_path / "missing.png",
        rgba,
    ]
    out = process(editor, items)
    assert [o.ok for o in out] == [True, False, True, False, True, False, False, False, True]
    assert "0 bytes" in out[1].error and "truncated" in out[3].error
    assert "uint8" in out[5].error and "unsupported request type int" in out[6].error
    assert "no such file" in out[7].error
    expected = editor.edit([rgb[0], rgb[1], rgb[2], rgba])
    for got, want in zip([out[0], out[2], out[4], out[8]], expected, strict=True):
        np.testing.assert_array_equal(got.value, want)


def test_encoded_outputs_and_the_pixel_limit(editor):
    photo = _photo(9)
    [png] = process(editor, [photo], encode="png", metadata={"vetrina:seed": "1"})
    assert png_text(png.value) == {"vetrina:seed": "1"}
    np.testing.assert_array_equal(
        decode_image(png.value).pixels[:, :, ::-1], editor.edit([photo])[0]
    )
    rgba = np.dstack([photo, np.zeros(photo.shape[:2], np.uint8)])
    [jpeg] = process(editor, [rgba], encode="jpeg")
    assert decode_image(jpeg.value).pixels.min() > 240  # transparent -> white
    [big] = process(editor, [photo], max_pixels=100)
    assert not big.ok and "above the limit" in big.error
    with pytest.raises(InputError, match="unknown encoding"):
        process(editor, [photo], encode="gif")


def test_png_compression_keeps_the_pixels_and_needs_png(editor):
    photo = _photo(5)
    [fast] = process(editor, [photo], encode="png")
    [small] = process(editor, [photo], encode="png", png_compression=9)
    np.testing.assert_array_equal(decode_image(small.value).pixels, decode_image(fast.value).pixels)
    with pytest.raises(InputError, match="PNG compression was given for jpeg"):
        process(editor, [photo], encode="jpeg", png_compression=9)
    with pytest.raises(InputError, match="PNG compression was given for arrays"):
        process(editor, [photo], png_compression=9)


def test_an_unexpected_failure_fails_only_its_item(editor):
    """A bug that one input triggers (here a ValueError from a wrapped editor) is reported as
    that item's internal error; the other items of its batch are still edited."""

    class Fussy:
        batch_size, times = editor.batch_size, editor.times

        def edit(self, images, **options):
            if any(img.shape[0] == 7 for img in images):
                raise ValueError("seven rows")
            return editor.edit(images, **options)

    photos = [_photo(20), _photo(21, 7, 32), _photo(22)]
    out = process(Fussy(), photos)
    assert [o.ok for o in out] == [True, False, True]
    assert out[1].error == "internal error: ValueError: seven rows"
    np.testing.assert_array_equal(out[2].value, editor.edit([photos[2]])[0])
