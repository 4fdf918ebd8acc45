"""Fit modes (stretch / letterbox / crop), Placement, and postprocess undoing them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vetrina.kernels import Placement, plan_fit, postprocess, preprocess

from .reference import fit_ref, postprocess_ref

F32 = np.float32
RNG = np.random.default_rng(2718)
SIDES = st.integers(1, 5000)


def rand_img(h: int, w: int, c: int = 3) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, c), dtype=np.uint8)


@settings(max_examples=300, deadline=None)
@given(h=SIDES, w=SIDES, oh=st.integers(1, 2048), ow=st.integers(1, 2048))
def test_plan_fit_matches_exact_rules(h, w, oh, ow):
    for fit in ("stretch", "letterbox", "crop"):
        p = plan_fit((h, w), (oh, ow), fit)
        assert (p.src_box, p.dst_box) == fit_ref((h, w), (oh, ow), fit)
        assert p.src_hw == (h, w) and p.dst_hw == (oh, ow) and p.fit == fit
        sy, sx, sh, sw = p.src_box
        dy, dx, dh, dw = p.dst_box
        assert sy >= 0 and sy + sh <= h and sx >= 0 and sx + sw <= w
        assert dy >= 0 and dy + dh <= oh and dx >= 0 and dx + dw <= ow
        # centred: the margins differ by at most one pixel
        assert abs((h - sh - sy) - sy) <= 1 and abs((oh - dh - dy) - dy) <= 1
    lb = plan_fit((h, w), (oh, ow), "letterbox")
    assert lb.dst_box[2] == oh or lb.dst_box[3] == ow  # touches two sides
    cr = plan_fit((h, w), (oh, ow), "crop")
    assert cr.src_box[2] == h or cr.src_box[3] == w  # keeps one full axis


@pytest.mark.parametrize(
    ("src", "dst", "src_box", "dst_box"),
    [
        ((300, 400), (128, 128), (0, 0, 300, 400), (16, 0, 96, 128)),
        ((1000, 500), (256, 256), (0, 0, 1000, 500), (0, 64, 256, 128)),
        ((480, 640), (640, 640), (0, 0, 480, 640), (80, 0, 480, 640)),
        ((7, 3), (5, 5), (0, 0, 7, 3), (0, 1, 5, 2)),
    ],
)
def test_letterbox_examples(src, dst, src_box, dst_box):
    p = plan_fit(src, dst, "letterbox")
    assert (p.src_box, p.dst_box) == (src_box, dst_box)


def test_crop_examples():
    assert plan_fit((300, 400), (128, 128), "crop").src_box == (0, 50, 300, 300)
    assert plan_fit((1000, 500), (224, 224), "crop").src_box == (250, 0, 500, 500)
    assert plan_fit((10, 10), (3, 7), "crop").src_box == (3, 0, 4, 10)


def test_placement_maps_coordinates_both_ways():
    p = plan_fit((300, 400), (128, 128), "letterbox")
    assert p.scale == (96 / 300, 128 / 400)
    assert p.to_output(0, 0) == (16, 0)
    assert p.to_source(*p.to_output(150.0, 200.0)) == pytest.approx((150.0, 200.0))
    c = plan_fit((300, 400), (128, 128), "crop")
    assert c.to_source(0, 0) == (0, 50)
    assert c.to_source(128, 128) == pytest.approx((300, 350))
    with pytest.raises(AttributeError):
        p.fit = "crop"  # frozen


@pytest.mark.parametrize("interpolation", ["bilinear", "bilinear-u8", "area"])
@pytest.mark.parametrize(("h", "w"), [(300, 400), (61, 45), (64, 64), (17, 200)])
def test_letterbox_equals_resize_then_pad(interpolation, h, w):
    img = rand_img(h, w)
    got, (p,) = preprocess(
        [img],
        (96, 96),
        fit="letterbox",
        pad_value=114,
        scale=1.0,
        interpolation=interpolation,
        return_placements=True,
    )
    y, x, ch, cw = p.dst_box
    canvas = np.full((96, 96, 3), 114, F32)
    inner = preprocess([img], (ch, cw), scale=1.0, interpolation=interpolation)[0]
    canvas[y : y + ch, x : x + cw] = inner.transpose(1, 2, 0)
    np.testing.assert_array_equal(got[0].transpose(1, 2, 0), canvas)
    if interpolation == "bilinear-u8":  # and that is OpenCV's resize + copyMakeBorder
        want = cv2.copyMakeBorder(
            cv2.resize(img, (cw, ch), interpolation=cv2.INTER_LINEAR),
            y,
            96 - y - ch,
            x,
            96 - x - cw,
            cv2.BORDER_CONSTANT,
            value=(114, 114, 114),
        )
        np.testing.assert_array_equal(got[0].transpose(1, 2, 0), want.astype(F32))


@pytest.mark.parametrize("interpolation", ["bilinear", "bilinear-u8", "area"])
def test_crop_equals_resize_of_the_window(interpolation):
    img = rand_img(300, 400)
    got, (p,) = preprocess(
        [img],
        (128, 96),
        fit="crop",
        scale=1.0,
        interpolation=interpolation,
        return_placements=True,
    )
    y, x, h, w = p.src_box
    want = preprocess(
        [img[y : y + h, x : x + w]], (128, 96), scale=1.0, interpolation=interpolation
    )
    np.testing.assert_array_equal(got, want)


def test_pad_value_is_mapped_like_a_pixel():
    img = rand_img(10, 40)
    sc, of = (1 / 58.4, 1 / 57.1, 1 / 57.4), (-2.1, -2.0, -1.8)
    got = preprocess([img], (40, 40), fit="letterbox", pad_value=(1, 2, 3), scale=sc, offset=of)
    for c in range(3):
        assert got[0, c, 0, 0] == F32(c + 1) * F32(sc[c]) + F32(of[c])


# ---------------------------------------------------------------------------------------
# postprocess with placements
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fit", ["stretch", "letterbox", "crop"])
@pytest.mark.parametrize("factor", [1, 2])
def test_postprocess_placements_match_reference(fit, factor):
    imgs = [rand_img(300, 400), rand_img(50, 20), rand_img(64, 64)]
    batch, places = preprocess(imgs, (64, 96), fit=fit, return_placements=True)
    batch = np.ascontiguousarray(np.repeat(np.repeat(batch, factor, 2), factor, 3))
    sizes = [(h * factor, w * factor) for h, w in (im.shape[:2] for im in imgs)]
    kw = {"placements": places, "fill": (1, 2, 3), "sizes": None if factor == 1 else sizes}
    got = postprocess(batch, **kw)
    assert [g.shape[:2] for g in got] == sizes
    want = postprocess_ref(batch, **kw)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("fit", ["stretch", "letterbox"])
def test_round_trip_through_a_fit_is_close(fit):
    # preprocess -> postprocess(placements) gives back a resampled copy of the image
    y, x = np.mgrid[:120, :200]
    img = np.stack([x, y, (x + y) // 2], axis=2).astype(np.uint8)
    batch, places = preprocess([img], (128, 128), fit=fit, return_placements=True)
    back = postprocess(batch, placements=places)[0]
    assert back.shape == img.shape
    assert np.abs(back.astype(int) - img).mean() < 1.5


def test_crop_inverse_fills_outside_the_window():
    img = rand_img(100, 300)
    batch, places = preprocess([img], (50, 50), fit="crop", return_placements=True)
    back = postprocess(batch, placements=places, fill=(9, 8, 7))[0]
    y, x, h, w = places[0].src_box
    assert (y, x, h, w) == (0, 100, 100, 100)
    assert (back[:, :100] == (9, 8, 7)).all() and (back[:, 200:] == (9, 8, 7)).all()


def test_placements_with_alpha_and_area():
    img = rand_img(90, 60, 4)
    batch, places = preprocess([img], (32, 32), fit="letterbox", return_placements=True)
    back = postprocess(batch, placements=places, alphas=[img[:, :, 3]], interpolation="area")
    np.testing.assert_array_equal(back[0][:, :, 3], img[:, :, 3])
    want = postprocess_ref(batch, placements=places, alphas=[img[:, :, 3]], interpolation="area")
    np.testing.assert_array_equal(back[0], want[0])


@pytest.mark.parametrize(
    ("fit", "batch_hw", "sizes", "match"),
    [
        (
            "letterbox",
            (33, 32),
            None,
            r"placements\[0\]\.dst_box .* does not scale to whole pixels",
        ),
        ("crop", (32, 32), [(150, 201)], r"placements\[0\]\.src_box \(0, 50, 300, 300\) does not"),
    ],
)
def test_mismatched_placements_are_rejected(fit, batch_hw, sizes, match):
    p = plan_fit((300, 400), (32, 32), fit)
    batch = np.zeros((1, 3, *batch_hw), F32)
    with pytest.raises(ValueError, match=match):
        postprocess(batch, sizes, placements=[p])


def test_bad_placements_are_rejected():
    batch = np.zeros((2, 3, 8, 8), F32)
    p = plan_fit((16, 16), (8, 8))
    with pytest.raises(ValueError, match=r"placements has 1 entries; expected 2"):
        postprocess(batch, placements=[p])
    with pytest.raises(TypeError, match=r"placements\[1\] has type tuple"):
        postprocess(batch, placements=[p, (0, 0, 8, 8)])
    bad = Placement((16, 16), (8, 8), (0, 0, 16, 16), (0, 0, 9, 8))
    with pytest.raises(ValueError, match=r"placements\[0\]\.dst_box is \(0, 0, 9, 8\)"):
        postprocess(batch, placements=[bad, p])
    big = plan_fit((20000, 10), (8, 8))
    with pytest.raises(ValueError, match=r"src_hw is \(20000, 10\); larger than 16384"):
        postprocess(batch, placements=[big, p])


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        (
            "src_hw",
            ("16", "16"),
            r"placements\[1\]\.src_hw is \('16', '16'\); expected \(height, wi",
        ),
        ("src_hw", (16.0, 16), r"placements\[1\]\.src_hw is \(16\.0, 16\); expected"),
        ("src_hw", "16", r"placements\[1\]\.src_hw is '16'; expected \(height, width\), two pos"),
        ("src_hw", None, r"placements\[1\]\.src_hw is None; expected"),
        ("src_hw", (0, 16), r"placements\[1\]\.src_hw is \(0, 16\); expected"),
        ("dst_hw", ("8", "8"), r"placements\[1\]\.dst_hw is \('8', '8'\); expected \(height, wid"),
        ("dst_hw", (8, 8, 3), r"placements\[1\]\.dst_hw is \(8, 8, 3\); expected"),
        ("src_box", None, r"placements\[1\]\.src_box is None; expected \(y, x, h, w\) inside"),
        ("dst_box", "0088", r"placements\[1\]\.dst_box is '0088'; expected \(y, x, h, w\)"),
    ],
)
def test_placement_fields_of_the_wrong_type_are_value_errors(field, value, match):
    """Not a raw TypeError from comparing a str with an int: the field, its value and what
    is expected."""
    batch = np.zeros((2, 3, 8, 8), F32)
    p = plan_fit((16, 16), (8, 8))
    bad = Placement(**{**p.__dict__, field: value})
    with pytest.raises(ValueError, match=match) as info:
        postprocess(batch, placements=[p, bad])
    assert str(info.value).startswith("postprocess: ")


def test_placement_fields_as_lists_and_numpy_ints_are_accepted():
    batch = np.random.default_rng(5).random((1, 3, 8, 8), dtype=F32)
    p = plan_fit((16, 16), (8, 8))
    q = Placement([16, 16], (np.int64(8), 8), [0, 0, 16, 16], (0, 0, np.int32(8), 8))
    (want,) = postprocess(batch, placements=[p], alphas=[np.zeros((16, 16), np.uint8)])
    (got,) = postprocess(batch, placements=[q], alphas=[np.zeros((16, 16), np.uint8)])
    np.testing.assert_array_equal(got, want)


def test_output_too_large_without_sizes_names_what_was_passed():
    # no placements: the batch's own size is the output size (not "placements[0]")
    batch = np.broadcast_to(F32(0.5), (1, 3, 1, 20000))
    with pytest.raises(
        ValueError,
        match=r"postprocess: batch has shape \(1, 3, 1, 20000\); its 1 x 20000 images are "
        r"larger than 16384 .* pass sizes to choose the output size",
    ) as info:
        postprocess(batch)
    assert "placements" not in str(info.value).split(";")[0]
    (out,) = postprocess(batch, [(1, 100)])  # with sizes it is fine
    assert out.shape == (1, 100, 3) and (out == 128).all()
    # placements: their source size is the output size
    p = plan_fit((1, 20000), (1, 8))
    with pytest.raises(
        ValueError, match=r"placements\[0\]\.src_hw is \(1, 20000\); larger than 16384"
    ):
        postprocess(batch[..., :8], placements=[p])


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (((0, 5), (4, 4)), r"src_hw is \(0, 5\)"),
        (((5, 5), (4, 0)), r"dst_hw is \(4, 0\)"),
        (((5, 5), (4, 4), "fill"), r"fit is 'fill'; expected one of 'stretch', 'letterbox'"),
        (((5.0, 5), (4, 4)), r"src_hw is \(5\.0, 5\)"),
        (("55", (4, 4)), r"src_hw is '55'"),
    ],
)
def test_plan_fit_validation(args, match):
    with pytest.raises(ValueError, match=match):
        plan_fit(*args)
