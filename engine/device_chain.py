"""The GPU data path of a pipeline: uint8 photos in, uint8 results out, and in between the
float tensors stay on the device from the first stage to the last. The models run in native
TensorRT (device ``trt``) or in ONNX Runtime's CUDA / TensorRT providers through IO binding
(devices ``cuda`` / ``tensorrt``): both take device buffers (``run_device``).

Per batch, all on one CUDA stream of a lane (``lanes`` batches may run at once):

1. the photos are copied once into page-locked memory and uploaded in one copy;
2. the CUDA preprocess kernel resizes and normalises them into the first stage's domain (a
   generation pipeline instead uploads its latents and label indices and runs the generator);
3. each stage runs in TensorRT on device buffers (:meth:`TrtSession.run_device`); between two
   stages whose contracts differ the CUDA ``adapt`` kernel converts range, normalisation and
   channel order, and the ``clamp`` kernel keeps the values inside the next stage's range (the
   host path's ``Handoff.apply``, value for value). A clean stage runs its detector, turns the
   probabilities into the inpainter's mask with the CUDA ``mask`` kernels
   (``kernels.defect_mask``'s twin) and runs its inpainter on the image and that mask;
4. the CUDA postprocess kernel maps the last stage's output to uint8 at the photos' sizes (with
   their alpha, resized on the host as the CPU path does), and one copy brings it back.

A matte stage (:meth:`DeviceChain.mattes`) resizes the photos with its own filter into its
model's domain and runs the model on the device; only the small matte comes back. The pipeline
then makes each full-resolution alpha on the device too (:attr:`DeviceChain.alpha`, the CUDA
alpha kernels: resize, guided filter on the photo, ramp; bit for bit the CPU's), and keeps on
the host what needs the photo's pixels there anyway: the empty-matte edge check, the
decontaminated colours, the soft shadows and the RGBA assembly.

A photo above the pipeline's tile size (:meth:`DeviceChain.run_tiled`) is preprocessed whole;
its tiles are windows of it, copied into a tile batch by the ``adapt`` kernel, chained a batch
at a time and blended back by the CUDA tile kernel before step 4.

Each step is timed with CUDA events on the stream (``times``: ``preprocess``, ``hand-off``,
``N stage``, ``postprocess``, plus ``upload`` and ``download``), never by enqueue time. A
lane's device and pinned buffers grow to the largest batch seen and are then reused, so in
steady state a batch allocates nothing on the device (``allocations`` counts them).

The same kernels and the same session code run on the host in the tests: the CUDA sources
compiled as C++ (tests/kernels) and a fake TensorRT computing from the addresses it is given.
"""

from __future__ import annotations

import itertools
import math
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .backends.tensorrt import stream_handle
from .editor import resized_alpha
from .errors import ModelError
from .stages import CleanStage, GenerateStage, GenerationRequest, Handoff, MatteStage
from .timing import StepTimes

if TYPE_CHECKING:
    from vetrina.kernels.tiling import TilePlan

ALIGN = 256  # bytes: each block of a shared upload/download buffer starts aligned


@dataclass
class _Lane:
    """One stream with its buffers (grown, never shrunk) and its timing events."""

    stream: Any
    buffers: dict[str, Any] = field(default_factory=dict)
    events: list[Any] = field(default_factory=list)


class _Marks:
    """CUDA events recorded on a lane's stream between the steps of one batch (the lane's
    events are reused from batch to batch); the time between two marks is the later step's."""

    def __init__(self, lane: _Lane, new_event: Callable[[], Any], handle: int) -> None:
        self.lane, self.new_event, self.handle = lane, new_event, handle
        self.marks: list[tuple[str, Any]] = []

    def __call__(self, name: str) -> None:
        events = self.lane.events
        if len(events) <= len(self.marks):
            events.append(self.new_event())
        event = events[len(self.marks)]
        event.record(self.handle)
        self.marks.append((name, event))

    def add_to(self, times: StepTimes) -> None:
        """Each step's GPU time (call once the stream is synchronised)."""
        for (_, start), (name, end) in itertools.pairwise(self.marks):
            times.add(name, end.elapsed_ms(start) / 1e3)


class DeviceChain:
    """Image stages (each a model on :class:`~vetrina.backends.tensorrt.TrtSession`) run
    back to back on the GPU; see the module docstring.

    ``stages``: the pipeline's edit and clean stages; ``handoffs``: the pipeline's hand-offs
    (None before the first stage of a photo pipeline); ``gpu``: a
    :class:`~vetrina.kernels.gpu.GpuKernels`; ``new_event``: makes a timing event
    (``record(stream)``, ``elapsed_ms(start)``); ``source``: the generate stage of a generation
    pipeline (its output size must be fixed), whose images then never leave the device either.
    """

    def __init__(
        self,
        stages: Sequence[Any],
        handoffs: Sequence[Any],
        gpu: Any,
        *,
        new_event: Callable[[], Any],
        lanes: int = 2,
        source: GenerateStage | None = None,
        matte: MatteStage | None = None,
    ) -> None:
        if matte is not None and not hasattr(matte.models[0].session, "run_device"):
            raise ModelError(
                f"{matte.label}: its model does not run on device memory (devices 'trt', "
                "'cuda' and 'tensorrt' have the GPU data path)"
            )
        for stage in [*([source] if source is not None else []), *stages]:
            for model in stage.models:
                session = model.session
                if not hasattr(session, "run_device"):
                    raise ModelError(
                        f"{stage.label}: its model does not run on device memory (devices "
                        "'trt', 'cuda' and 'tensorrt' have the GPU data path)"
                    )
                if len(session.outputs) != 1:
                    raise ModelError(
                        f"{stage.label}: the GPU data path takes models with one output; "
                        f"this one has {[t.name for t in session.outputs]}"
                    )
        if lanes < 1:
            raise ValueError(f"lanes must be >= 1, got {lanes}")
        self.source = source
        self.matte = matte
        self.first = 2 if matte is not None else 1  # the number of the first image stage
        self.generated_size = None if source is None else generated_size(source)
        if source is not None and self.generated_size is None:
            raise ModelError(
                f"{source.label}: the GPU data path needs a generator of a fixed output size"
            )
        self.stages = list(stages)
        self.handoffs = list(handoffs)
        self.gpu = gpu
        self.alpha: Any = None
        """With a matte stage: the CUDA alpha kernels (a
        :class:`~vetrina.kernels.gpu_alpha.GpuAlpha` over ``gpu``) that refine its mattes."""
        if matte is not None:
            from vetrina.kernels.gpu_alpha import GpuAlpha

            self.alpha = GpuAlpha(gpu)
        self.scale = math.prod(s.rules.scale for s in self.stages)
        self.allocations = 0
        self._backend = gpu._backend
        self._new_event = new_event
        self._count = threading.Lock()
        self._lanes: queue.LifoQueue[_Lane] = queue.LifoQueue()
        for _ in range(lanes):
            self._lanes.put(_Lane(self._backend.new_stream()))

    def run(
        self,
        images: Sequence[np.ndarray],
        size: tuple[int, int],
        order: str,
        output_order: str,
        times: StepTimes,
        *,
        keep_alpha: bool = True,
    ) -> list[np.ndarray]:
        """uint8 photos (HxW, HxWx3|4 in ``order``) processed at ``size`` -> uint8 results at
        their size times the chain's scale, in ``output_order``, alpha kept (unless not
        ``keep_alpha``: a matte gives the alpha); the GPU time of each step is added to
        ``times``."""
        lane = self._lanes.get()
        try:
            self._backend.activate()
            return self._run(lane, list(images), size, order, output_order, times, keep_alpha)
        finally:
            self._lanes.put(lane)

    def mattes(
        self, images: Sequence[np.ndarray], size: tuple[int, int], order: str, times: StepTimes
    ) -> np.ndarray:
        """The matte stage's model output (N, 1, h, w) for uint8 photos at its working
        ``size``: uploaded, resized with the stage's filter into the model's domain, run, and
        downloaded (``MatteStage.normalise`` then maps it to [0, 1] on the host)."""
        if self.matte is None:
            raise ModelError("this chain has no matte stage")
        lane = self._lanes.get()
        try:
            self._backend.activate()
            return self._mattes(lane, list(images), size, order, times)
        finally:
            self._lanes.put(lane)

    def run_tiled(
        self,
        image: np.ndarray,
        size: tuple[int, int],
        plan: TilePlan,
        order: str,
        output_order: str,
        times: StepTimes,
        *,
        batch_size: int = 1,
        keep_alpha: bool = True,
    ) -> np.ndarray:
        """One large photo processed at ``size`` in the tiles of ``plan`` (each inside the
        image), ``batch_size`` tiles at a time, blended on the device with the CUDA tile
        kernel (``TilePlan.blend``'s weights) -> the uint8 result, as :meth:`run`."""
        lane = self._lanes.get()
        try:
            self._backend.activate()
            return self._run_tiled(
                lane, image, size, plan, order, output_order, times, batch_size, keep_alpha
            )[0]
        finally:
            self._lanes.put(lane)

    def generate(
        self, requests: Sequence[GenerationRequest], output_order: str, times: StepTimes
    ) -> list[np.ndarray]:
        """Generation requests -> uint8 images in ``output_order`` (the generator's size times
        the chain's scale): the latents and labels go up in one copy, the images come back
        in one; the GPU time of each step is added to ``times``."""
        if self.source is None:
            raise ModelError("this chain has no generate stage")
        feeds = self.source.inputs(list(requests))  # bad labels fail before anything queues
        lane = self._lanes.get()
        try:
            self._backend.activate()
            return self._generate(lane, feeds, output_order, times)
        finally:
            self._lanes.put(lane)

    # -- the steps -------------------------------------------------------------------------------

    def _run(
        self,
        lane: _Lane,
        images: list[np.ndarray],
        size: tuple[int, int],
        order: str,
        output_order: str,
        times: StepTimes,
        keep_alpha: bool,
    ) -> list[np.ndarray]:
        mark = _Marks(lane, self._new_event, stream_handle(lane.stream))
        cur, shape, out_sizes, dev_alphas = self._photos_in(
            lane, mark, images, size, order, keep_alpha=keep_alpha
        )
        cur, shape = self._stages(lane, mark, cur, shape, self.first)
        return self._postprocess(lane, mark, cur, shape, out_sizes, dev_alphas, output_order, times)

    def _mattes(
        self,
        lane: _Lane,
        images: list[np.ndarray],
        size: tuple[int, int],
        order: str,
        times: StepTimes,
    ) -> np.ndarray:
        stage = self.matte
        assert stage is not None
        model = stage.models[0]
        mark = _Marks(lane, self._new_event, stream_handle(lane.stream))
        cur, shape, _, _ = self._photos_in(
            lane, mark, images, size, order, keep_alpha=False, stage=stage
        )
        n, _, h, w = shape
        plane = (n, 1, h, w)
        outputs, shapes = {}, {}
        for k, info in enumerate(model.session.outputs):  # side outputs too, where a net has them
            dims = [v if isinstance(v, int) else d for v, d in zip(info.shape, plane, strict=False)]
            shapes[info.name] = tuple(dims)
            outputs[info.name] = self._buffer(lane, f"matte out {k}", _floats(tuple(dims)))
        got = model.session.run_device(
            {stage.input.name: (cur.ptr, shape)},
            {name: (buf.ptr, buf.nbytes) for name, buf in outputs.items()},
            lane.stream,
            shapes,
        )[stage.alpha.name]
        if got != plane:
            raise ModelError(
                f"{stage.label}: output {stage.alpha.name!r} is {got}; the contract promises "
                f"{plane}"
            )
        mark(f"1 {stage.label}")
        back = self._buffer(lane, "matte pinned", _floats(plane), pinned=True)
        raw = back.view(plane, np.float32, 0)
        self._backend.d2h(raw, outputs[stage.alpha.name].ptr, mark.handle)
        mark("matte download")
        self._backend.synchronize(mark.handle)
        mark.add_to(times)
        return raw.copy()

    def _run_tiled(
        self,
        lane: _Lane,
        image: np.ndarray,
        size: tuple[int, int],
        plan: TilePlan,
        order: str,
        output_order: str,
        times: StepTimes,
        batch_size: int,
        keep_alpha: bool,
    ) -> list[np.ndarray]:
        mark = _Marks(lane, self._new_event, stream_handle(lane.stream))
        whole, (_, _, h, w), out_sizes, dev_alphas = self._photos_in(
            lane, mark, [image], size, order, key="whole", keep_alpha=keep_alpha
        )
        (th, tw), s = plan.tile_hw, self.scale
        tile_in, tile_out = _floats((1, 3, th, tw)), _floats((1, 3, th * s, tw * s))
        if plan.image_hw != (h, w) or any(b[2:] != (th, tw) for b in plan.boxes):
            raise ModelError(
                f"the GPU data path takes tiles inside the image; this plan of {plan.tile_hw} "
                f"tiles over {plan.image_hw} pads some"
            )
        collected = self._buffer(lane, "tiles out", tile_out * len(plan))
        boxes = plan.boxes
        for start in range(0, len(boxes), batch_size):
            chunk = boxes[start : start + batch_size]
            tiles = self._buffer(lane, "tiles in", tile_in * len(chunk))
            for k, (y, x, _, _) in enumerate(chunk):  # TilePlan.split: a window of the image
                self.gpu.adapt_async(
                    whole.ptr + 4 * (y * w + x),
                    (1, 3, th, tw),
                    tiles.ptr + k * tile_in,
                    batch_strides=(3 * h * w, h * w, w),
                    stream=mark.handle,
                )
            mark("tile split")
            cur, _ = self._stages(lane, mark, tiles, (len(chunk), 3, th, tw), self.first)
            nbytes = tile_out * len(chunk)
            self._backend.d2d(collected.ptr + start * tile_out, cur.ptr, nbytes, mark.handle)
        shape = (1, 3, h * s, w * s)
        blended = self._buffer(lane, "blended", _floats(shape))
        self.gpu.blend_tiles_async(
            plan, collected.ptr, blended.ptr, scale=s, channels=3, layout="chw", stream=mark.handle
        )
        mark("tile blend")
        return self._postprocess(
            lane, mark, blended, shape, out_sizes, dev_alphas, output_order, times
        )

    def _photos_in(
        self,
        lane: _Lane,
        mark: _Marks,
        images: list[np.ndarray],
        size: tuple[int, int],
        order: str,
        *,
        key: str = "batch a",
        keep_alpha: bool = True,
        stage: MatteStage | None = None,
    ) -> tuple[Any, tuple[int, int, int, int], list[tuple[int, int]], list[Any]]:
        """Photos (and their alpha planes, if ``keep_alpha``) up in one copy, then the CUDA
        preprocess at ``size`` into the first stage's domain (or the matte ``stage``'s, with
        its filter), in the lane's buffer ``key``: the batch buffer, its shape, the output
        sizes and the alpha planes on the device (None: no alpha)."""
        from vetrina.kernels.gpu import DeviceImage

        n, (h, w) = len(images), size
        photos = [img if img.ndim == 3 else img[:, :, None] for img in images]
        photos = [np.ascontiguousarray(p) for p in photos]
        out_sizes = [(p.shape[0] * self.scale, p.shape[1] * self.scale) for p in photos]
        alphas = [
            resized_alpha(img, s) if keep_alpha else None
            for img, s in zip(images, out_sizes, strict=True)
        ]

        # 1. upload photos and alpha planes in one copy
        planes = photos + [a for a in alphas if a is not None]
        upload, offsets = self._upload(lane, planes, mark)
        dev_photos = [
            DeviceImage(upload.ptr + at, p.shape[0], p.shape[1], p.shape[2])
            for p, at in zip(photos, offsets[: len(photos)], strict=True)
        ]
        dev_alphas: list[Any] = []
        k = len(photos)
        for a in alphas:
            if a is None:
                dev_alphas.append(None)
            else:
                dev_alphas.append(DeviceImage(upload.ptr + offsets[k], a.shape[0], a.shape[1], 1))
                k += 1

        # 2. preprocess into the first stage's domain
        first = (stage or self.stages[0]).input
        scale, offset = first.from_uint8_affine()
        shape = (n, 3, h, w)
        cur = self._buffer(lane, key, _floats(shape))
        self.gpu.preprocess_async(
            dev_photos,
            cur.ptr,
            size,
            scale=scale,
            offset=offset,
            src_order=order,
            dst_order=first.channels,
            interpolation=stage.resize if stage is not None else "bilinear",
            stream=mark.handle,
        )
        mark("matte preprocess" if stage is not None else "preprocess")
        return cur, shape, out_sizes, dev_alphas

    def _generate(
        self, lane: _Lane, feeds: dict[str, np.ndarray], output_order: str, times: StepTimes
    ) -> list[np.ndarray]:
        source = self.source
        assert source is not None and self.generated_size is not None
        model = source.models[0]
        handle = stream_handle(lane.stream)
        mark = _Marks(lane, self._new_event, handle)
        dtypes = {t.name: t.dtype for t in model.session.inputs}
        arrays = [np.ascontiguousarray(feeds[name], dtype=dtypes[name]) for name in feeds]
        upload, offsets = self._upload(lane, arrays, mark)
        inputs = {
            name: (upload.ptr + at, a.shape)
            for name, a, at in zip(feeds, arrays, offsets, strict=True)
        }
        n, (h, w) = len(arrays[0]), self.generated_size
        shape = (n, 3, h, w)
        cur = self._buffer(lane, "batch a", _floats(shape))
        _run_model(source, model, inputs, source.output.name, cur, shape, lane.stream)
        mark(f"1 {source.label}")
        out_sizes = [(h * self.scale, w * self.scale)] * n
        cur, shape = self._stages(lane, mark, cur, shape, 2)
        return self._postprocess(lane, mark, cur, shape, out_sizes, [None] * n, output_order, times)

    def _upload(self, lane: _Lane, arrays: Sequence[np.ndarray], mark: _Marks) -> tuple[Any, list]:
        """``arrays`` staged in the lane's pinned buffer and uploaded in one copy (marked
        ``upload``): the device buffer and each array's offset in it."""
        offsets, total = _layout([a.nbytes for a in arrays])
        staged = self._buffer(lane, "upload pinned", total, pinned=True)
        for a, at in zip(arrays, offsets, strict=True):
            staged.view((a.nbytes,), np.uint8, at)[:] = a.reshape(-1).view(np.uint8)
        upload = self._buffer(lane, "upload", total)
        mark("start")
        self._backend.h2d(upload.ptr, staged.view((total,), np.uint8), mark.handle)
        mark("upload")
        return upload, offsets

    def _stages(
        self,
        lane: _Lane,
        mark: _Marks,
        cur: Any,
        shape: tuple[int, int, int, int],
        first: int,
        spare: str = "batch b",
    ) -> tuple[Any, tuple[int, int, int, int]]:
        """The stages (numbered from ``first``) with the hand-offs between them, from ``cur``
        (the lane's buffers ``batch a`` / ``batch b`` take turns; ``spare`` is free); returns
        the buffer and shape of the last stage's output."""
        n = shape[0]
        for i, (stage, handoff) in enumerate(zip(self.stages, self.handoffs, strict=True)):
            if handoff is not None:
                converted = self._hand_off(lane, handoff, cur, shape, spare, mark.handle)
                if converted is not cur:
                    cur, spare = converted, _other(spare)
                mark("hand-off")
            factor = stage.rules.scale
            out_shape = (n, 3, shape[2] * factor, shape[3] * factor)
            nxt = self._buffer(lane, spare, _floats(out_shape))
            if isinstance(stage, CleanStage):
                self._clean(lane, stage, cur, nxt, shape, lane.stream)
            else:
                _run_model(stage, stage.models[0], {stage.input.name: (cur.ptr, shape)},
                           stage.output.name, nxt, out_shape, lane.stream)  # fmt: skip
            cur, spare, shape = nxt, _other(spare), out_shape
            mark(f"{i + first} {stage.label}")
        return cur, shape

    def _postprocess(
        self,
        lane: _Lane,
        mark: _Marks,
        cur: Any,
        shape: tuple[int, int, int, int],
        out_sizes: list[tuple[int, int]],
        dev_alphas: list[Any],
        output_order: str,
        times: StepTimes,
    ) -> list[np.ndarray]:
        """The last stage's output to uint8 at ``out_sizes`` (alpha planes re-attached), one
        copy back, and the step times."""
        from vetrina.kernels.gpu import DeviceImage

        handle = mark.handle
        last = self.stages[-1].output if self.stages else self.source.output  # type: ignore[union-attr]
        scale, offset = last.to_uint8_affine()
        channels = [3 if a is None else 4 for a in dev_alphas]
        sizes = [hh * ww * c for (hh, ww), c in zip(out_sizes, channels, strict=True)]
        out_offsets, out_total = _layout(sizes)
        result = self._buffer(lane, "result", out_total)
        targets = [
            DeviceImage(result.ptr + at, hh, ww, c)
            for (hh, ww), c, at in zip(out_sizes, channels, out_offsets, strict=True)
        ]
        self.gpu.postprocess_async(
            cur.ptr,
            shape,
            targets,
            alphas=dev_alphas if any(a is not None for a in dev_alphas) else None,
            scale=scale,
            offset=offset,
            src_order=last.channels,
            dst_order=output_order,
            stream=handle,
        )
        mark("postprocess")
        back = self._buffer(lane, "download pinned", out_total, pinned=True)
        self._backend.d2h(back.view((out_total,), np.uint8), result.ptr, handle)
        mark("download")
        self._backend.synchronize(handle)
        mark.add_to(times)
        return [
            back.view((hh, ww, c), np.uint8, at).copy()
            for (hh, ww), c, at in zip(out_sizes, channels, out_offsets, strict=True)
        ]

    def _hand_off(
        self, lane: _Lane, handoff: Handoff, cur: Any, shape: tuple[int, ...], key: str, handle: int
    ) -> Any:
        """``handoff.apply`` on the device: adapt into the lane's buffer ``key`` where the
        domains differ, then clamp in place; returns the buffer holding the result."""
        if handoff.converts:
            nxt = self._buffer(lane, key, _floats(shape))
            self.gpu.adapt_async(
                cur.ptr,
                shape,
                nxt.ptr,
                scale=handoff.scale,
                offset=handoff.offset,
                src_order=handoff.src.channels,
                dst_order=handoff.dst.channels,
                stream=handle,
            )
            cur = nxt
        lo, hi = handoff.dst.bounds
        self.gpu.clamp_async(cur.ptr, shape, lo, hi, stream=handle)
        return cur

    def _clean(
        self,
        lane: _Lane,
        stage: CleanStage,
        cur: Any,
        out: Any,
        shape: tuple[int, ...],
        stream: Any,
    ) -> None:
        """``CleanStage.run`` on the device: the detector's probabilities, the defect mask
        (kernels/cuda/mask.cu) and the inpainter, from ``cur`` into ``out``."""
        from vetrina.kernels import gpu_mask

        handle = stream_handle(stream)
        n, _, h, w = shape
        plane = (n, 1, h, w)
        detector, inpainter = stage.models
        feed = cur
        if stage.to_detector.converts:  # as CleanStage.detect: only then adapt and clamp
            feed = self._hand_off(lane, stage.to_detector, cur, shape, "detector in", handle)
        prob = self._buffer(lane, "defects", _floats(plane))
        detector_input = detector.contract.input("image").name
        _run_model(stage, detector, {detector_input: (feed.ptr, shape)},
                   stage.mask_output.name, prob, plane, stream)  # fmt: skip
        mask = self._buffer(lane, "mask", _floats(plane))
        rows = self._buffer(lane, "mask rows", gpu_mask.scratch_bytes(plane))
        level, on, off = stage.mask_values()
        gpu_mask.defect_mask_async(
            self.gpu, prob.ptr, plane, mask.ptr, rows.ptr,
            level=level, radius=stage.dilate, on=on, off=off, stream=handle,
        )  # fmt: skip
        feeds = {stage.input.name: (cur.ptr, shape), stage.mask_input.name: (mask.ptr, plane)}
        _run_model(stage, inpainter, feeds, stage.output.name, out, shape, stream)

    def _buffer(self, lane: _Lane, key: str, nbytes: int, *, pinned: bool = False) -> Any:
        """The lane's buffer ``key`` with at least ``nbytes`` (grown to a power of two)."""
        held = lane.buffers.get(key)
        if held is not None and held.nbytes >= nbytes:
            return held
        if held is not None:
            self._backend.synchronize(stream_handle(lane.stream))  # nothing queued may still use it
            held.close()
        from vetrina.kernels.gpu import grown_capacity

        size = grown_capacity(nbytes)
        make = self._backend.pinned if pinned else self._backend.device_buffer
        lane.buffers[key] = buf = make(size)
        with self._count:
            self.allocations += 1
        return buf

    def close(self) -> None:
        """Free every lane's buffers and streams (and the alpha kernels' workspace)."""
        if self.alpha is not None:
            self.alpha.close()
        while not self._lanes.empty():
            lane = self._lanes.get()
            for buf in lane.buffers.values():
                buf.close()
            lane.buffers.clear()
            close = getattr(lane.stream, "close", None)
            if close is not None:
                close()


def generated_size(source: GenerateStage) -> tuple[int, int] | None:
    """(height, width) a generator always produces: its contract's size, else its output's
    static dimensions; None when it varies."""
    if source.size is not None:
        return source.size
    model = source.models[0]
    shape = next(t.shape for t in model.session.outputs if t.name == source.output.name)
    if len(shape) == 4 and all(isinstance(d, int) and d > 0 for d in shape[2:]):
        return int(shape[2]), int(shape[3])
    return None


def open_gpu(device: int = 0) -> tuple[Any, Callable[[], Any]]:
    """The CUDA kernels on ``device`` and a maker of timing events there."""
    from vetrina.kernels import gpu

    return gpu.GpuKernels(device), lambda: gpu.Event(device)


def _layout(sizes: Sequence[int]) -> tuple[list[int], int]:
    """Offsets of consecutive blocks, each 256-byte aligned, and the total."""
    offsets, at = [], 0
    for n in sizes:
        offsets.append(at)
        at += -(-n // ALIGN) * ALIGN
    return offsets, max(at, ALIGN)


def _floats(shape: tuple[int, ...]) -> int:
    return math.prod(shape) * 4


def _other(key: str) -> str:
    return "batch a" if key == "batch b" else "batch b"


def _run_model(
    stage: Any,
    model: Any,
    inputs: dict[str, tuple[int, tuple[int, ...]]],
    output: str,
    buffer: Any,
    want: tuple[int, ...],
    stream: Any,
) -> None:
    """Queue ``model`` on device memory, its one output into ``buffer``; an output shape
    other than ``want`` (what the contract promises) is an error."""
    names = [t.name for t in model.session.outputs]
    got = model.session.run_device(
        inputs, {name: (buffer.ptr, buffer.nbytes) for name in names}, stream, {output: want}
    )[output]
    if got != want:
        raise ModelError(
            f"{stage.label}: output {output!r} of {model.path.name} is {got}; the contract "
            f"promises {want}"
        )
