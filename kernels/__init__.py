"""vetrina CPU image kernels (Cython + OpenMP).

* :func:`preprocess` -- uint8 images of any sizes -> one float32/float16 NCHW batch (resize,
  fit, channel order, normalisation), with :class:`Placement` to undo letterbox/crop;
* :func:`postprocess` -- float NCHW -> uint8 images (range, clamp, rounding, inverse fit,
  resize back, alpha);
* :func:`adapt` -- float NCHW -> float NCHW between two models' contracts;
* :func:`composite`, :func:`dilate_mask`, :func:`feather_mask`, :func:`defect_mask` -- alpha
  compositing and masks;
* :func:`matte_to_alpha`, :func:`keep_shadow`, :func:`merge_shadow`, :func:`premultiply` --
  matting: a model's low-resolution matte -> the photo's alpha (guided filter), soft shadows;
* :func:`cutout`, :func:`outline_edges` -- a photo and its alpha -> the RGBA cut-out; the
  edges under a matte's outline (the empty-matte check);
* :func:`plan_tiles` / :class:`TilePlan` -- overlapping tiles and seamless blending;
* :func:`normalization`, :func:`range_mapping` / :class:`Affine` -- scale/offset helpers.

Every argument is validated before any C loop runs; bad input raises ``ValueError`` (or
``TypeError`` for things that are not arrays or sequences at all) naming the function, the
argument, the value and what is expected. The numerics contract is in docs/kernels.md.
"""

from __future__ import annotations

from ._checks import MAX_CHANNELS, MAX_IMAGE_SIZE, MAX_SIZE, MAX_THREADS
from ._checks import check_image as _check_image
from ._checks import check_order as _check_order
from ._checks import check_sequence as _check_sequence
from ._checks import check_size as _check_size
from ._checks import check_threads as _check_threads
from ._checks import per_channel as _per_channel
from .adapt import adapt
from .alpha import keep_shadow, matte_to_alpha, merge_shadow, premultiply
from .composite import (
    ALPHA_MODES,
    MAX_DEFECT_RADIUS,
    MAX_RADIUS,
    composite,
    defect_mask,
    dilate_mask,
    feather_mask,
)
from .cutout import OutlineEdges, cutout, outline_edges
from .fit import FITS, Placement, plan_fit
from .mapping import IMAGENET_MEAN, IMAGENET_STD, Affine, normalization, range_mapping
from .prepost import INTERPOLATIONS, POST_INTERPOLATIONS, postprocess, preprocess
from .tiling import MAX_SCALE, TilePlan, plan_tiles

__all__ = [
    "ALPHA_MODES",
    "FITS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INTERPOLATIONS",
    "MAX_CHANNELS",
    "MAX_DEFECT_RADIUS",
    "MAX_IMAGE_SIZE",
    "MAX_RADIUS",
    "MAX_SCALE",
    "MAX_SIZE",
    "MAX_THREADS",
    "POST_INTERPOLATIONS",
    "Affine",
    "OutlineEdges",
    "Placement",
    "TilePlan",
    "adapt",
    "composite",
    "cutout",
    "defect_mask",
    "dilate_mask",
    "feather_mask",
    "keep_shadow",
    "matte_to_alpha",
    "merge_shadow",
    "normalization",
    "outline_edges",
    "plan_fit",
    "plan_tiles",
    "postprocess",
    "premultiply",
    "preprocess",
    "range_mapping",
]

# Validation helpers shared with vetrina.kernels.gpu (same checks and messages on both sides).
_SHARED_CHECKS = (
    _check_image,
    _check_order,
    _check_sequence,
    _check_size,
    _check_threads,
    _per_channel,
)
