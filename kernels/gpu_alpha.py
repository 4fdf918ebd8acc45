"""The alpha (matting) kernels on a CUDA GPU (kernels/cuda/alpha.cu), driven like kernels.gpu.

:class:`GpuAlpha` wraps a :class:`~vetrina.kernels.gpu.GpuKernels` (which compiles and loads
every source, ``alpha`` included) and offers, with the CPU kernels' semantics
(``vetrina.kernels.alpha``, docs/kernels.md "Alpha kernels"):

* ``*_async`` methods on device memory (:class:`~vetrina.kernels.gpu.DeviceImage` for uint8
  images and planes, a float32 device array for the matte) that only queue work on a stream
  (and are recorded by ``GpuKernels.capture``): :meth:`~GpuAlpha.matte_to_alpha_async`,
  :meth:`~GpuAlpha.keep_shadow_async`, :meth:`~GpuAlpha.merge_shadow_async`,
  :meth:`~GpuAlpha.premultiply_async`, :meth:`~GpuAlpha.composite_async`;
* numpy methods with the CPU functions' arguments (upload through pinned memory, run,
  download): :meth:`~GpuAlpha.matte_to_alpha`, :meth:`~GpuAlpha.keep_shadow`,
  :meth:`~GpuAlpha.merge_shadow`, :meth:`~GpuAlpha.premultiply`, :meth:`~GpuAlpha.composite`.

Numerics: the resize, ramp, shadow, merge, premultiply and composite equal the CPU's bit for
bit; the guided filter sums in float64 in another order (row segments, column bands) and is
within 1 uint8 level of the CPU. Validation uses the CPU wrappers' checks and messages.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _checks as ck
from . import alpha as cpu_alpha
from .composite import ALPHA_MODES, _colour
from .gpu import (
    ALIGNMENT,
    DeviceBuffer,
    DeviceImage,
    GpuKernels,
    _align,
    _Args,
    _check_device_image,
    _f64,
    _i32,
    _i64,
    _ptr_of,
    _u32,
    _u64,
)

__all__ = ["GpuAlpha", "workspace_bytes"]

_BX, _BY = 32, 8
"""Block shape of every launch (kernels/gpu.py's _BLOCK; alpha.cu indexes with it)."""
_HIST_WORDS = 257
"""Shadow histogram words: 256 bins and the median."""


def _grid(nx: int, ny: int) -> tuple[int, int, int]:
    """Blocks covering an nx x ny thread grid."""
    return (-(-nx // _BX), -(-ny // _BY), 1)


_BOX_THREADS = 1 << 17
"""Threads the column pass aims at: enough to fill a large GPU (132 SMs x 1024), so that
a photo-sized pass is not bound by the latency of a few long running sums."""


def _box_span(r: int, pixels: int) -> int:
    """Band height of the column pass over an image of ``pixels``: as short as gives
    ~_BOX_THREADS threads, at least 4, and at most max(32, 2r+1), past which
    priming a band's window costs no more than sliding it."""
    return max(4, min(max(32, 2 * r + 1), -(-pixels // _BOX_THREADS)))


def _box_spans(r: int, pixels: int) -> tuple[int, int]:
    """(row segment, column band) of the guided filter's box passes.

    Rows: segments of 2 pixels up to radius 24, of 3 past it. A thread sums its segment's
    first window directly and slides to the next, so a short segment costs (2r+1)/seg loads
    per pixel, while a long one scatters a warp's float64 stores over many sectors (the pass
    is then bound by L2 and DRAM partial writes). Measured on an H200 (benchmarks/RESULTS.md):
    r16 on 683x1024, 2 px 78.7 us against 81.5 (3), 95.2 (1), 98.9 (6); r48 on 1366x2048,
    3 px 415 us against 502 (4), 524 (2), 736 (1), 1131 (22). Columns: sliding bands
    (``_box_span``; a warp's loads and stores are contiguous whatever the band). A function
    of the sizes alone, so the summation order (and each result) is the same on every GPU."""
    return (2 if r <= 24 else 3), _box_span(r, pixels)


def _guided_layout(h: int, w: int) -> tuple[dict[str, int], int]:
    """Byte offsets of the guided filter's buffers in the workspace, and its size: luma
    min/max bits, resized matte P and luma L (float32), the row sums S (4 float64 planes)
    and the coefficients a, b (2 float64 planes): 56 bytes per pixel."""
    n = h * w
    offsets, at = {}, 0
    for name, nbytes in (("minmax", 8), ("P", 4 * n), ("L", 4 * n), ("S", 32 * n), ("AB", 16 * n)):
        offsets[name] = at
        at += _align(nbytes)
    return offsets, at


def workspace_bytes(size: tuple[int, int], *, guided: bool = True) -> int:
    """Device workspace of one :meth:`GpuAlpha.matte_to_alpha_async` call (``guided``: with the
    guided filter; else 0) -- or pass ``guided=False`` for :meth:`GpuAlpha.keep_shadow_async`,
    which needs a 257-word histogram (returned as at least ALIGNMENT bytes)."""
    h, w = ck.check_size("workspace_bytes", "size", size)
    if guided:
        return _guided_layout(h, w)[1]
    return _align(4 * _HIST_WORDS)


def _check_image_size(fn: str, name: str, im: Any, channels: tuple[int, ...], hw: tuple[int, int]):
    _check_device_image(fn, name, im, channels)
    if (im.height, im.width) != hw:
        raise ValueError(f"{fn}: {name} is {im.height}x{im.width}; expected {hw[0]}x{hw[1]}")


class GpuAlpha:
    """The alpha kernels on one GPU (or on the host emulation of the tests).

    ``GpuAlpha(kernels)`` uses an existing :class:`~vetrina.kernels.gpu.GpuKernels` (its
    context, stream, staging memory and launch capture); ``GpuAlpha(device)`` makes its own
    and closes it in :meth:`close`. The ``*_async`` methods queue on ``stream`` (None: the
    GpuKernels' own stream). Their device workspace (guided filter: 56 bytes per output pixel,
    :func:`workspace_bytes`) is ``workspace`` (a :class:`~vetrina.kernels.gpu.DeviceBuffer`)
    or, when None, one kept by this object and reused by every call: calls that use it must
    be ordered (one stream, or synchronised).
    """

    def __init__(self, kernels: GpuKernels | int = 0) -> None:
        if isinstance(kernels, GpuKernels):
            self._gk, self._own = kernels, False
        else:
            self._gk, self._own = GpuKernels(kernels), True
        self._backend = self._gk._backend
        self._work: Any = None

    @property
    def kernels(self) -> GpuKernels:
        return self._gk

    def close(self) -> None:
        """Free the workspace (and the GpuKernels when this object made it)."""
        if self._work is not None:
            self._work.close()
            self._work = None
        if self._own:
            self._gk.close()

    def __enter__(self) -> GpuAlpha:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------
    # plumbing
    # ------------------------------------------------------------------------------------------

    def _launch(self, kernel: str, grid: tuple[int, int, int], args: _Args, stream: int) -> None:
        self._gk._launch(kernel, grid, args, stream)

    def _workspace(self, fn: str, workspace: Any, nbytes: int) -> int:
        """Pointer to ``nbytes`` of device workspace: the caller's or this object's own."""
        if workspace is not None:
            have = getattr(workspace, "nbytes", None)
            if have is None or have < nbytes:
                raise ValueError(
                    f"{fn}: workspace has {have} bytes; expected a DeviceBuffer of at least "
                    f"{nbytes} bytes (workspace_bytes)"
                )
            ptr = getattr(workspace, "ptr", None)  # a DeviceBuffer (or alike)
            return int(ptr) if ptr else _ptr_of(fn, "workspace", workspace)
        if self._work is None or self._work.nbytes < nbytes:
            if self._work is not None:
                self._work.close()  # cudaFree waits for the work that still uses it
            self._backend.activate()
            self._work = self._backend.device_buffer(max(ALIGNMENT, nbytes))
        return int(self._work.ptr)

    def _fill_u32(self, ptr: int, n: int, first: int, rest: int, stream: int) -> None:
        """p[0] = first, p[1..n) = rest (a kernel, so that launch captures replay it)."""
        args = _Args(_u64(ptr), _i32(n), _u32(first), _u32(rest))
        self._launch("vt_fill_u32", _grid(n, 1), args, stream)

    # ------------------------------------------------------------------------------------------
    # matte -> alpha
    # ------------------------------------------------------------------------------------------

    def matte_to_alpha_async(
        self,
        matte: Any,
        out: DeviceImage,
        size: tuple[int, int],
        *,
        matte_hw: tuple[int, int] | None = None,
        matte_pitch: int = 0,
        guide: DeviceImage | None = None,
        radius: int = 0,
        eps: float = 1e-3,
        low: float = 0.0,
        high: float = 1.0,
        resized: Any = None,
        workspace: DeviceBuffer | None = None,
        stream: Any = None,
    ) -> None:
        """Queue matte (float32 device array (h, w) or (1, 1, h, w)) -> ``out``, a 1-channel
        uint8 :class:`DeviceImage` of ``size``.

        ``matte_hw``: (h, w) when ``matte`` is a bare pointer (else read from its
        ``__cuda_array_interface__``); ``matte_pitch``: elements between its rows (0: w).
        ``guide``: a 3|4-channel RGB(A) DeviceImage of ``size``; ``resized``: optional float32
        (H, W) contiguous device array that receives the resized matte. Arguments and
        numerics as ``vetrina.kernels.matte_to_alpha``.
        """
        fn = "matte_to_alpha_async"
        hw = ck.check_size(fn, "size", size)
        mh, mw = self._matte_hw(fn, matte, matte_hw)
        if not (ck.is_int(matte_pitch) and (matte_pitch == 0 or matte_pitch >= mw)):
            raise ValueError(f"{fn}: matte_pitch is {matte_pitch!r}; expected 0 or >= {mw}")
        _check_image_size(fn, "out", out, (1,), hw)
        if guide is not None:
            _check_image_size(fn, "guide", guide, (3, 4), hw)
        r, e = cpu_alpha.check_filter(fn, radius, eps, guide is not None)
        lo, hi = cpu_alpha.check_ramp(fn, low, high)
        src = _ptr_of(fn, "matte", matte)
        rz = 0 if resized is None else _ptr_of(fn, "resized", resized)
        handle = self._gk._stream(stream)
        h, w = hw
        ramp = (_f64(lo), _f64(hi), _i32(int(lo == hi)))
        msrc = (_u64(src), _i32(mh), _i32(mw), _i64(matte_pitch or mw))
        if r == 0 or guide is None:
            args = _Args(*msrc, _u64(out.ptr), _i64(out.pitch), _u64(rz), _i32(h), _i32(w), *ramp)
            self._launch("vt_matte_alpha", _grid(w, h), args, handle)
            return
        offs, total = _guided_layout(h, w)
        base = self._workspace(fn, workspace, total)
        mm, lum, sums, ab = (base + offs[k] for k in ("minmax", "L", "S", "AB"))
        p = rz or base + offs["P"]
        r = min(r, max(h, w))  # a window past every border is the whole image
        seg, band = _box_spans(r, h * w)
        dims = (_i32(h), _i32(w), _i32(r))
        self._fill_u32(mm, 2, 0xFFFFFFFF, 0, handle)
        args = _Args(
            *msrc, _u64(guide.ptr), _i64(guide.pitch), _i32(guide.channels),
            _u64(p), _u64(lum), _u64(mm), _i32(h), _i32(w),
        )  # fmt: skip
        self._launch("vt_alpha_prepare", _grid(-(-w // 4), h), args, handle)
        nseg, nband = -(-w // seg), -(-h // band)
        args = _Args(_u64(p), _u64(lum), _u64(mm), _u64(sums), *dims, _i32(seg))
        self._launch("vt_gf_rows4", _grid(nseg, h), args, handle)
        args = _Args(_u64(sums), _u64(ab), *dims, _i32(band), _f64(e))
        self._launch("vt_gf_cols4", _grid(w, nband), args, handle)
        args = _Args(_u64(ab), _u64(sums), *dims, _i32(seg))
        self._launch("vt_gf_rows2", _grid(nseg, h), args, handle)
        args = _Args(
            _u64(sums), _u64(lum), _u64(mm), _u64(out.ptr), _i64(out.pitch), *dims, _i32(band),
            *ramp,
        )  # fmt: skip
        self._launch("vt_gf_cols2", _grid(w, nband), args, handle)

    @staticmethod
    def _matte_hw(fn: str, matte: Any, matte_hw: Any) -> tuple[int, int]:
        """(h, w) of a device matte: given, or from its array interface (float32)."""
        if matte_hw is not None:
            return ck.check_size(fn, "matte_hw", matte_hw)
        cai = getattr(matte, "__cuda_array_interface__", None)
        if cai is None:
            raise ValueError(
                f"{fn}: matte is a bare pointer; pass matte_hw=(h, w) or a DeviceBuffer / "
                f"__cuda_array_interface__ array of shape (h, w) or (1, 1, h, w)"
            )
        shape, typestr = tuple(cai["shape"]), cai["typestr"]
        if typestr != "<f4":
            raise ValueError(f"{fn}: matte has typestr {typestr!r}; expected float32 ('<f4')")
        if len(shape) == 4 and shape[:2] == (1, 1):
            shape = shape[2:]
        if len(shape) != 2 or cai.get("strides") not in (None, (4 * shape[1], 4)):
            raise ValueError(
                f"{fn}: matte has shape {tuple(cai['shape'])}; expected a C-contiguous (h, w) "
                f"or (1, 1, h, w) float32 array (or matte_hw and matte_pitch)"
            )
        return ck.check_size(fn, "matte shape", shape)

    def matte_to_alpha(
        self,
        matte: np.ndarray,
        size: tuple[int, int],
        *,
        guide: np.ndarray | None = None,
        radius: int = 0,
        eps: float = 1e-3,
        low: float = 0.0,
        high: float = 1.0,
        stream: Any = None,
    ) -> np.ndarray:
        """numpy version of :meth:`matte_to_alpha_async`, arguments and result as
        ``vetrina.kernels.matte_to_alpha`` (no ``num_threads``)."""
        fn = "matte_to_alpha"
        m = cpu_alpha.check_matte(fn, matte)
        hw = ck.check_size(fn, "size", size)
        g = None if guide is None else cpu_alpha.check_guide(fn, guide, hw)
        cpu_alpha.check_filter(fn, radius, eps, g is not None)
        cpu_alpha.check_ramp(fn, low, high)
        h, w = hw
        handle = self._gk._stream(stream)
        with self._gk._lock:
            ins = [m] if g is None else [m, g]
            dev, offs = self._upload(ins, handle)
            gd = None if g is None else DeviceImage(dev + offs[1], h, w, g.shape[2])
            out = self._scratch("alpha_out", h * w, pinned=False)
            self.matte_to_alpha_async(
                dev, DeviceImage(out.ptr, h, w, 1), hw, matte_hw=m.shape, guide=gd,
                radius=radius, eps=eps, low=low, high=high, stream=handle,
            )  # fmt: skip
            return self._download(out.ptr, (h, w), handle)

    # ------------------------------------------------------------------------------------------
    # shadow
    # ------------------------------------------------------------------------------------------

    def keep_shadow_async(
        self,
        image: DeviceImage,
        alpha: DeviceImage,
        out: DeviceImage,
        *,
        strength: float = 1.0,
        min_darkening: float = 0.04,
        background: int | None = None,
        workspace: DeviceBuffer | None = None,
        stream: Any = None,
    ) -> None:
        """Queue the shadow alpha of ``image`` (3|4-channel RGB(A) DeviceImage) given the
        product's ``alpha`` (1 channel, same size) into ``out`` (1 channel, same size).
        Arguments and numerics as ``vetrina.kernels.keep_shadow`` (the median background is
        found on the device: no synchronisation)."""
        fn = "keep_shadow_async"
        _check_device_image(fn, "image", image, (3, 4))
        hw = (image.height, image.width)
        _check_image_size(fn, "alpha", alpha, (1,), hw)
        _check_image_size(fn, "out", out, (1,), hw)
        s, md, bg = cpu_alpha.check_shadow_args(fn, strength, min_darkening, background)
        handle = self._gk._stream(stream)
        h, w = hw
        hist = 0
        if bg is None:
            hist = self._workspace(fn, workspace, workspace_bytes(hw, guided=False))
            self._fill_u32(hist, _HIST_WORDS, 0, 0, handle)
            px = (_u64(image.ptr), _i64(image.pitch), _i32(image.channels))
            args = _Args(*px, _u64(alpha.ptr), _i64(alpha.pitch), _u64(hist), _i32(h), _i32(w))
            self._launch("vt_shadow_hist", _grid(w, h), args, handle)
            self._launch("vt_shadow_median", (1, 1, 1), _Args(_u64(hist)), handle)
        args = _Args(
            _u64(image.ptr), _i64(image.pitch), _i32(image.channels), _u64(alpha.ptr),
            _i64(alpha.pitch), _u64(out.ptr), _i64(out.pitch), _i32(h), _i32(w),
            _i32(0 if bg is None else bg), _u64(hist), _f64(s), _f64(md),
        )  # fmt: skip
        self._launch("vt_shadow_apply", _grid(w, h), args, handle)

    def keep_shadow(
        self,
        image: np.ndarray,
        alpha: np.ndarray,
        *,
        strength: float = 1.0,
        min_darkening: float = 0.04,
        background: int | None = None,
        stream: Any = None,
    ) -> np.ndarray:
        """numpy version of :meth:`keep_shadow_async` (``vetrina.kernels.keep_shadow``)."""
        fn = "keep_shadow"
        img = ck.check_image(fn, 0, image, name="image")
        if img.shape[2] < 3:
            raise ValueError(
                f"{fn}: image has shape {image.shape}; expected a uint8 RGB(A) image (H, W, 3|4)"
            )
        a = cpu_alpha.check_plane(fn, "alpha", alpha, img.shape[:2])
        cpu_alpha.check_shadow_args(fn, strength, min_darkening, background)
        h, w, c = img.shape
        handle = self._gk._stream(stream)
        with self._gk._lock:
            dev, offs = self._upload([img, a], handle)
            out = self._scratch("alpha_out", h * w, pinned=False)
            self.keep_shadow_async(
                DeviceImage(dev, h, w, c), DeviceImage(dev + offs[1], h, w, 1),
                DeviceImage(out.ptr, h, w, 1), strength=strength, min_darkening=min_darkening,
                background=background, stream=handle,
            )  # fmt: skip
            return self._download(out.ptr, (h, w), handle)

    # ------------------------------------------------------------------------------------------
    # RGBA
    # ------------------------------------------------------------------------------------------

    def merge_shadow_async(
        self, rgba: DeviceImage, shadow: DeviceImage, out: DeviceImage, *, stream: Any = None
    ) -> None:
        """Queue product RGBA + shadow alpha (1 channel) -> straight RGBA ``out`` (4 channels),
        as ``vetrina.kernels.merge_shadow`` (exact integers)."""
        fn = "merge_shadow_async"
        _check_device_image(fn, "rgba", rgba, (4,))
        hw = (rgba.height, rgba.width)
        _check_image_size(fn, "shadow", shadow, (1,), hw)
        _check_image_size(fn, "out", out, (4,), hw)
        args = _Args(
            _u64(rgba.ptr), _i64(rgba.pitch), _u64(shadow.ptr), _i64(shadow.pitch),
            _u64(out.ptr), _i64(out.pitch), _i32(hw[0]), _i32(hw[1]),
        )  # fmt: skip
        self._launch("vt_merge_shadow", _grid(hw[1], hw[0]), args, self._gk._stream(stream))

    def merge_shadow(
        self, rgba: np.ndarray, shadow: np.ndarray, *, stream: Any = None
    ) -> np.ndarray:
        """numpy version of :meth:`merge_shadow_async` (``vetrina.kernels.merge_shadow``)."""
        fn = "merge_shadow"
        img = cpu_alpha.check_rgba(fn, rgba)
        sh = cpu_alpha.check_plane(fn, "shadow", shadow, img.shape[:2])
        h, w = sh.shape
        handle = self._gk._stream(stream)
        with self._gk._lock:
            dev, offs = self._upload([img, sh], handle)
            out = self._scratch("alpha_out", h * w * 4, pinned=False)
            self.merge_shadow_async(
                DeviceImage(dev, h, w, 4), DeviceImage(dev + offs[1], h, w, 1),
                DeviceImage(out.ptr, h, w, 4), stream=handle,
            )  # fmt: skip
            return self._download(out.ptr, (h, w, 4), handle)

    def premultiply_async(self, rgba: DeviceImage, out: DeviceImage, *, stream: Any = None) -> None:
        """Queue straight -> premultiplied RGBA (``vetrina.kernels.premultiply``)."""
        fn = "premultiply_async"
        _check_device_image(fn, "rgba", rgba, (4,))
        hw = (rgba.height, rgba.width)
        _check_image_size(fn, "out", out, (4,), hw)
        args = _Args(
            _u64(rgba.ptr), _i64(rgba.pitch), _u64(out.ptr), _i64(out.pitch), _i32(hw[0]),
            _i32(hw[1]),
        )  # fmt: skip
        self._launch("vt_premultiply", _grid(hw[1], hw[0]), args, self._gk._stream(stream))

    def premultiply(self, rgba: np.ndarray, *, stream: Any = None) -> np.ndarray:
        """numpy version of :meth:`premultiply_async`."""
        img = cpu_alpha.check_rgba("premultiply", rgba)
        h, w = img.shape[:2]
        handle = self._gk._stream(stream)
        with self._gk._lock:
            dev, _ = self._upload([img], handle)
            out = self._scratch("alpha_out", h * w * 4, pinned=False)
            self.premultiply_async(
                DeviceImage(dev, h, w, 4), DeviceImage(out.ptr, h, w, 4), stream=handle
            )
            return self._download(out.ptr, (h, w, 4), handle)

    def composite_async(
        self,
        rgba: DeviceImage,
        out: DeviceImage,
        background: int | Sequence[int] | DeviceImage = 255,
        *,
        alpha: str = "straight",
        stream: Any = None,
    ) -> None:
        """Queue RGBA over ``background`` (a grey level, 3 values or a 3|4-channel DeviceImage
        of the same size) -> ``out`` (3 channels); ``alpha``: "straight" or "premultiplied".
        Exact integers, as ``vetrina.kernels.composite``."""
        fn = "composite_async"
        _check_device_image(fn, "rgba", rgba, (4,))
        hw = (rgba.height, rgba.width)
        _check_image_size(fn, "out", out, (3,), hw)
        ck.check_choice(fn, "alpha", alpha, ALPHA_MODES)
        if isinstance(background, DeviceImage):
            _check_image_size(fn, "background", background, (3, 4), hw)
            bg, colour = (background.ptr, background.pitch, background.channels), [0, 0, 0]
        else:
            bg, colour = (0, 0, 3), [int(v) for v in _colour(fn, background)]
        args = _Args(
            _u64(rgba.ptr), _i64(rgba.pitch), _u64(bg[0]), _i64(bg[1]), _i32(bg[2]),
            *(_i32(v) for v in colour), _u64(out.ptr), _i64(out.pitch), _i32(hw[0]),
            _i32(hw[1]), _i32(int(alpha == "premultiplied")),
        )  # fmt: skip
        self._launch("vt_composite", _grid(hw[1], hw[0]), args, self._gk._stream(stream))

    def composite(
        self,
        rgba: np.ndarray,
        background: int | Sequence[int] | np.ndarray = 255,
        *,
        alpha: str = "straight",
        stream: Any = None,
    ) -> np.ndarray:
        """numpy version of :meth:`composite_async` (``vetrina.kernels.composite``)."""
        fn = "composite"
        img = cpu_alpha.check_rgba(fn, rgba)
        h, w = img.shape[:2]
        ck.check_choice(fn, "alpha", alpha, ALPHA_MODES)
        bg_img = None
        if isinstance(background, np.ndarray) and background.ndim >= 2:
            bg_img = ck.check_image(fn, 0, background, name="background")
            if bg_img.shape[:2] != (h, w) or bg_img.shape[2] < 3:
                raise ValueError(
                    f"{fn}: background has shape {background.shape}; expected a colour or a "
                    f"uint8 image of shape ({h}, {w}, 3|4)"
                )
        else:
            _colour(fn, background)
        handle = self._gk._stream(stream)
        with self._gk._lock:
            dev, offs = self._upload([img] if bg_img is None else [img, bg_img], handle)
            bg: Any = background
            if bg_img is not None:
                bg = DeviceImage(dev + offs[1], h, w, bg_img.shape[2])
            out = self._scratch("alpha_out", h * w * 3, pinned=False)
            self.composite_async(
                DeviceImage(dev, h, w, 4), DeviceImage(out.ptr, h, w, 3), bg, alpha=alpha,
                stream=handle,
            )  # fmt: skip
            return self._download(out.ptr, (h, w, 3), handle)

    # ------------------------------------------------------------------------------------------
    # staging of the numpy methods (called with the GpuKernels' lock held)
    # ------------------------------------------------------------------------------------------

    def _scratch(self, key: str, nbytes: int, *, pinned: bool) -> Any:
        return self._gk._scratch.get(key, max(nbytes, 1), pinned=pinned)

    def _upload(self, arrays: Sequence[np.ndarray], stream: int) -> tuple[int, list[int]]:
        """Pack arrays (made C-contiguous) into pinned memory at aligned offsets, queue one
        copy to the device: (device base pointer, byte offsets)."""
        offsets, total = [], 0
        for a in arrays:
            offsets.append(total)
            total += _align(a.nbytes)
        self._backend.activate()  # this device's context, also on a new thread
        pin = self._scratch("alpha_pin_in", total, pinned=True)
        dev = self._scratch("alpha_dev_in", total, pinned=False)
        self._backend.synchronize(stream)  # earlier work on the staging buffers is done
        for a, off in zip(arrays, offsets, strict=True):
            np.copyto(pin.view(a.shape, a.dtype, off), a)
        self._backend.h2d(dev.ptr, pin.view((total,), np.uint8), stream)
        return int(dev.ptr), offsets

    def _download(self, ptr: int, shape: tuple[int, ...], stream: int) -> np.ndarray:
        nbytes = math.prod(shape)
        pin = self._scratch("alpha_pin_out", nbytes, pinned=True)
        host = pin.view(shape, np.uint8)
        self._backend.d2h(host, ptr, stream)
        self._backend.synchronize(stream)
        return host.copy()
