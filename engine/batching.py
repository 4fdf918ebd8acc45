"""Dynamic batching: concurrent single requests -> one handler call per batch.

:class:`DynamicBatcher` queues items from any number of threads (``submit`` returns a
``concurrent.futures.Future``) or asyncio tasks (``await asubmit``), and worker threads call
``handler(items)`` on batches of up to ``max_batch_size`` items. A batch is flushed when it is
full, or ``max_wait_ms`` after its oldest item arrived, whichever comes first. The queue is
bounded: past ``max_queue`` waiting items, ``submit`` raises :class:`OverloadedError` at once
(back off / answer 503) instead of letting latency grow without limit.

Shape buckets: ``bucket_key(item)`` sorts items into buckets and a batch never mixes buckets
(e.g. one working size per batch, so the images stack into one tensor). Among the buckets that
are ready (full, past their wait, or draining), the one whose oldest item is oldest goes first,
so a rarely used size is never starved by a busy one.

Failure isolation: an exception *returned* in the handler's result list fails that item's
future only. When the handler *raises*, every item of the batch is retried once, alone, so a
single bad request fails by itself and the rest succeed (a batch of one is not retried).
``validate(item)`` runs inside ``submit``, before queueing, so a malformed request fails in
its caller at once and never reaches a batch.

:class:`EditorBatcher` serves an :class:`~vetrina.editor.Editor` through it: one image per
request, bucketed by the editor's working size (exact; see its docstring for why images are not
padded into larger buckets).
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

import numpy as np

from .errors import OverloadedError

if TYPE_CHECKING:
    from .editor import Editor

__all__ = ["BatcherStats", "DynamicBatcher", "EditorBatcher", "GenerationBatcher"]

#: An encoded image file: its bytes, or its path.
Encoded = bytes | bytearray | memoryview | str | os.PathLike

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class BatcherStats:
    """A snapshot of a batcher's counters (see :attr:`DynamicBatcher.stats`)."""

    submitted: int
    """Items accepted by ``submit`` (rejected ones not counted)."""
    rejected: int
    """``submit`` calls refused with :class:`OverloadedError`."""
    batches: int
    """Batches formed and handed to the handler (per-item retries not counted)."""
    items: int
    """Items in those batches (cancelled-while-queued items excluded)."""
    retried_batches: int
    """Batches whose handler raised, so each item was retried alone."""
    failed: int
    """Futures completed with an exception."""
    cancelled: int
    """Futures cancelled before their batch ran (by the client, or by ``close(drain=False)``)."""
    queue_depth: int
    """Items waiting now."""
    queue_high_water: int
    """Most items ever waiting at once."""
    batch_sizes: dict[int, int] = field(default_factory=dict)
    """Histogram: batch size -> number of batches of that size."""

    @property
    def mean_batch_size(self) -> float:
        """Items per batch (0.0 before the first batch)."""
        return self.items / self.batches if self.batches else 0.0


class _Request(Generic[T, R]):
    __slots__ = ("arrival", "future", "item")

    def __init__(self, item: T, arrival: float) -> None:
        self.item = item
        self.arrival = arrival
        self.future: Future[R] = Future()


class DynamicBatcher(Generic[T, R]):
    """Gathers concurrent requests into batches for ``handler`` (see the module docstring).

    ``handler(items) -> results`` runs on a worker thread and must return one result per item,
    in order; a result that is an exception instance fails that item's future only.
    ``max_wait_ms`` is measured from the arrival of a batch's oldest item, so time spent
    queued behind a busy worker counts: a backlog is flushed without further waiting.
    ``workers`` > 1 runs that many batches concurrently (the handler must be thread-safe;
    ONNX Runtime sessions are), which overlaps one batch's pre/post-processing with
    another's inference. Call :meth:`close` (or use ``with``) when done.
    """

    def __init__(
        self,
        handler: Callable[[list[T]], Sequence[R | BaseException]],
        *,
        max_batch_size: int,
        max_wait_ms: float,
        max_queue: int,
        bucket_key: Callable[[T], Hashable] | None = None,
        validate: Callable[[T], object] | None = None,
        workers: int = 1,
        name: str = "batcher",
    ) -> None:
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {type(handler).__name__}")
        for label, fn in (("bucket_key", bucket_key), ("validate", validate)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{label} must be callable or None, got {type(fn).__name__}")
        _check_int("max_batch_size", max_batch_size, 1)
        _check_int("max_queue", max_queue, 1)
        _check_int("workers", workers, 1)
        if max_queue < max_batch_size:
            raise ValueError(
                f"max_queue ({max_queue}) is smaller than max_batch_size ({max_batch_size}): "
                f"batches could never fill; use max_queue >= max_batch_size"
            )
        if (
            isinstance(max_wait_ms, bool)
            or not isinstance(max_wait_ms, (int, float))
            or not math.isfinite(max_wait_ms)
            or max_wait_ms < 0
        ):
            raise ValueError(f"max_wait_ms must be a finite number >= 0, got {max_wait_ms!r}")
        self._handler = handler
        self._bucket_key = bucket_key
        self._validate = validate
        self.max_batch_size = max_batch_size
        self.max_wait_ms = float(max_wait_ms)
        self.max_queue = max_queue
        self.name = name
        self._wait_s = self.max_wait_ms / 1000.0
        self._cond = threading.Condition(threading.Lock())
        # Insertion-ordered; a bucket is removed when it empties, so the dict stays small.
        self._buckets: dict[Hashable, deque[_Request[T, R]]] = {}
        self._depth = 0
        self._closed = False
        self._counts = {
            "submitted": 0,
            "rejected": 0,
            "batches": 0,
            "items": 0,
            "retried_batches": 0,
            "failed": 0,
            "cancelled": 0,
            "high_water": 0,
        }
        self._sizes: dict[int, int] = {}
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-worker-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    # -- client side ---------------------------------------------------------------------

    def submit(self, item: T) -> Future[R]:
        """Queue ``item``; its result (or exception) arrives on the returned future.

        Raises at once (nothing queued): whatever ``validate`` / ``bucket_key`` raise for a
        bad item, :class:`OverloadedError` when ``max_queue`` items are waiting, and
        ``RuntimeError`` after :meth:`close`. Thread-safe.
        """
        if self._validate is not None:
            self._validate(item)
        key = self._bucket_key(item) if self._bucket_key is not None else None
        try:
            hash(key)
        except TypeError:
            raise TypeError(
                f"{self.name}: bucket_key returned an unhashable {type(key).__name__}; "
                f"return a tuple, int or str"
            ) from None
        request: _Request[T, R] = _Request(item, time.monotonic())
        with self._cond:
            if self._closed:
                raise RuntimeError(f"{self.name} is closed; it accepts no new requests")
            if self._depth >= self.max_queue:
                self._counts["rejected"] += 1
                raise OverloadedError(
                    f"{self.name}: request queue is full ({self.max_queue} requests waiting)",
                    hint="back off and retry (a service answers 503 Retry-After); or raise "
                    "max_queue / add workers if this is the normal load",
                )
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = deque()
            bucket.append(request)
            self._depth += 1
            self._counts["submitted"] += 1
            self._counts["high_water"] = max(self._counts["high_water"], self._depth)
            self._cond.notify()
        return request.future

    async def asubmit(self, item: T) -> R:
        """``submit`` for asyncio: awaits the result without blocking the event loop.

        Cancelling the awaiting task cancels the request if its batch has not started.
        """
        return await asyncio.wrap_future(self.submit(item))

    def close(self, drain: bool = True, timeout: float | None = None) -> bool:
        """Stop accepting requests and stop the workers.

        ``drain=True`` runs every queued request first (without waiting out ``max_wait_ms``);
        ``drain=False`` cancels the queued ones (their futures raise ``CancelledError``); a
        batch already running always finishes. Waits up to ``timeout`` seconds (None: until
        done) and returns whether all workers have stopped. Idempotent.
        """
        dropped: list[_Request[T, R]] = []
        with self._cond:
            self._closed = True
            if not drain:
                for bucket in self._buckets.values():
                    dropped.extend(bucket)
                self._buckets.clear()
                self._depth = 0
            self._cond.notify_all()
        cancelled = sum(1 for r in dropped if r.future.cancel())
        if cancelled:
            with self._cond:
                self._counts["cancelled"] += cancelled
        deadline = None if timeout is None else time.monotonic() + timeout
        current = threading.current_thread()
        for thread in self._threads:
            if thread is current:  # close() called from inside the handler
                continue
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads if t is not current)

    def __enter__(self) -> DynamicBatcher[T, R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(drain=True)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def queue_depth(self) -> int:
        """Items waiting for a batch now."""
        with self._cond:
            return self._depth

    @property
    def stats(self) -> BatcherStats:
        """A consistent snapshot of the counters."""
        with self._cond:
            c = self._counts
            return BatcherStats(
                submitted=c["submitted"],
                rejected=c["rejected"],
                batches=c["batches"],
                items=c["items"],
                retried_batches=c["retried_batches"],
                failed=c["failed"],
                cancelled=c["cancelled"],
                queue_depth=self._depth,
                queue_high_water=c["high_water"],
                batch_sizes=dict(self._sizes),
            )

    # -- worker side ---------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            live = [r for r in batch if r.future.set_running_or_notify_cancel()]
            with self._cond:
                self._counts["cancelled"] += len(batch) - len(live)
                if live:
                    self._counts["batches"] += 1
                    self._counts["items"] += len(live)
                    self._sizes[len(live)] = self._sizes.get(len(live), 0) + 1
            if live:
                self._run(live)

    def _next_batch(self) -> list[_Request[T, R]] | None:
        """Block until a bucket is ready, then take up to max_batch_size items from it;
        None when closed and empty."""
        with self._cond:
            while True:
                if self._depth == 0:
                    if self._closed:
                        return None
                    self._cond.wait()
                    continue
                now = time.monotonic()
                ready_key: Hashable = None
                ready_at = math.inf  # arrival of the oldest item among ready buckets
                next_deadline = math.inf
                found = False
                for key, bucket in self._buckets.items():
                    head = bucket[0].arrival
                    deadline = head + self._wait_s
                    if self._closed or len(bucket) >= self.max_batch_size or deadline <= now:
                        if head < ready_at:
                            ready_key, ready_at, found = key, head, True
                    else:
                        next_deadline = min(next_deadline, deadline)
                if found:
                    bucket = self._buckets[ready_key]
                    n = min(len(bucket), self.max_batch_size)
                    batch = [bucket.popleft() for _ in range(n)]
                    if not bucket:
                        del self._buckets[ready_key]
                    self._depth -= n
                    if self._depth:
                        self._cond.notify()  # another worker may take the next bucket
                    return batch
                self._cond.wait(next_deadline - now)

    def _run(self, batch: list[_Request[T, R]]) -> None:
        try:
            results = self._call([r.item for r in batch])
        except Exception as exc:
            if len(batch) == 1:
                self._finish(batch[0], exc)
                return
            with self._cond:
                self._counts["retried_batches"] += 1
            for request in batch:  # isolate the bad item(s): each alone, once
                try:
                    (result,) = self._call([request.item])
                except Exception as alone:
                    result = alone
                self._finish(request, result)
            return
        except BaseException as exc:  # SystemExit & co: fail the batch, then let it propagate
            for request in batch:
                self._finish(request, exc)
            raise
        for request, result in zip(batch, results, strict=True):
            self._finish(request, result)

    def _call(self, items: list[T]) -> list[R | BaseException]:
        results = list(self._handler(items))
        if len(results) != len(items):
            raise RuntimeError(
                f"{self.name}: handler returned {len(results)} results for {len(items)} items; "
                f"it must return exactly one result (or exception) per item, in order"
            )
        return results

    def _finish(self, request: _Request[T, R], result: R | BaseException) -> None:
        if isinstance(result, BaseException):
            request.future.set_exception(result)
            with self._cond:
                self._counts["failed"] += 1
        else:
            request.future.set_result(result)


class _Served:
    """What the request-level batchers share: closing (also as a context manager) and the
    stats of their :class:`DynamicBatcher` (``self._batcher``)."""

    _batcher: DynamicBatcher[Any, Any]

    def close(self, drain: bool = True, timeout: float | None = None) -> bool:
        """See :meth:`DynamicBatcher.close`."""
        return self._batcher.close(drain, timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(drain=True)

    @property
    def stats(self) -> BatcherStats:
        return self._batcher.stats


class EditorBatcher(_Served):
    """Serves one-image edit requests from many threads / tasks through a DynamicBatcher.

    ``editor`` is an :class:`~vetrina.editor.Editor` or a :class:`~vetrina.pipeline.Pipeline`
    (anything with ``working_size``, ``edit`` and ``batch_size``).

    Requests are bucketed by :meth:`Editor.working_size`, so a batch holds images processed
    at exactly the size they would be alone; each comes back at its own original size (x the
    model's scale). Results are the same bytes as ``editor.edit([image])`` (tested).

    Why not pad smaller images into a larger bucket (letterbox inside a bucket, cut back)?
    It is not exact: a convolution's zero padding applies at every layer, so padding the input
    changes a band along the padded edges (the zoo enhancer, 256x256 padded to 288x288 with
    edge replication: up to 90 levels within 10 px of the edge), and models with a global
    statistic (the zoo enhancer's colour correction uses the image mean; InstanceNorm style
    nets) change everywhere (up to 7 levels inside with zero padding). Grouping equal working
    sizes is exact; callers who want fewer, larger buckets resize their uploads to a few size
    classes (``Editor(max_side=...)`` already caps the working size).

    ``max_batch_size`` defaults to ``editor.batch_size`` (and may not exceed it: the editor
    would split the batch again).

    ``solo_editor``: the same model on a session with more threads, for a batch of one image
    when no other batch is running. On a small CPU the best throughput under load comes from
    ``workers`` batches at once on single-thread sessions, one per core, but a lone request on
    one thread would take twice as long; with ``solo_editor`` it runs on all the cores, as
    without a batcher. Both editors must give the same bytes (ONNX Runtime's CPU kernels do,
    whatever the thread count; tested). Images are ``order`` ("RGB"/"BGR") uint8 HxW, HxWx3 or
    HxWx4 arrays, or encoded files (bytes or paths, decoded at submit, at most ``max_pixels``);
    bad ones raise :class:`~vetrina.errors.InputError` from ``submit``.
    """

    def __init__(
        self,
        editor: Editor,
        *,
        max_batch_size: int | None = None,
        max_wait_ms: float = 5.0,
        max_queue: int = 64,
        workers: int = 1,
        order: str = "RGB",
        output_order: str | None = None,
        solo_editor: Editor | None = None,
        max_pixels: int = 64_000_000,
    ) -> None:
        if max_batch_size is None:
            max_batch_size = editor.batch_size
        if max_batch_size > editor.batch_size:
            raise ValueError(
                f"max_batch_size {max_batch_size} exceeds the editor's batch_size "
                f"{editor.batch_size}, which would split each batch again; make the Editor "
                f"with batch_size={max_batch_size}"
            )
        if order not in ("RGB", "BGR") or (output_order or order) not in ("RGB", "BGR"):
            raise ValueError(
                f"order and output_order must be 'RGB' or 'BGR', got {order!r} and {output_order!r}"
            )
        from .editor import check_image

        self.editor = editor
        self.solo_editor = solo_editor
        self.max_pixels = max_pixels
        self._running = 0
        self._running_lock = threading.Lock()
        self.order = order
        self.output_order = output_order or order
        self._batcher: DynamicBatcher[np.ndarray, np.ndarray] = DynamicBatcher(
            self._handle,
            max_batch_size=max_batch_size,
            max_wait_ms=max_wait_ms,
            max_queue=max_queue,
            bucket_key=self._bucket,
            validate=check_image,
            workers=workers,
            name="editor-batcher",
        )

    def _bucket(self, image: np.ndarray) -> tuple[int, int]:
        return self.editor.working_size(image.shape[0], image.shape[1])

    def _handle(self, images: list[np.ndarray]) -> list[np.ndarray]:
        with self._running_lock:
            self._running += 1
            alone = self._running == 1
        try:
            solo = alone and len(images) == 1 and self.solo_editor is not None
            editor = self.solo_editor if solo else self.editor
            return editor.edit(images, order=self.order, output_order=self.output_order)  # type: ignore[union-attr]
        finally:
            with self._running_lock:
                self._running -= 1

    def submit(self, image: np.ndarray | Encoded) -> Future[np.ndarray]:
        """Queue one image; the edited image arrives on the future.

        ``image``: a uint8 array in ``order``, or an encoded file as bytes or a path, decoded
        here on the caller's thread (EXIF orientation applied, ``max_pixels`` enforced before
        any pixel memory is allocated); a file that cannot be decoded raises
        :class:`~vetrina.errors.InputError` here, as a bad array does."""
        return self._batcher.submit(self._pixels(image))

    async def aedit(self, image: np.ndarray | Encoded) -> np.ndarray:
        """Edit one image from asyncio code without blocking the loop (a file is decoded on a
        worker thread)."""
        if not isinstance(image, np.ndarray):
            image = await asyncio.get_running_loop().run_in_executor(None, self._pixels, image)
        return await self._batcher.asubmit(image)

    def edit(self, image: np.ndarray | Encoded, timeout: float | None = None) -> np.ndarray:
        """Edit one image, blocking the calling thread (batched with concurrent callers)."""
        return self.submit(image).result(timeout)

    def _pixels(self, image: np.ndarray | Encoded) -> np.ndarray:
        """An array as given; bytes or a path decoded into ``order``."""
        if isinstance(image, np.ndarray):
            return image
        from .requests import to_pixels

        pixels = to_pixels(image, max_pixels=self.max_pixels)  # OpenCV order: BGR(A)
        if self.order == "RGB" and pixels.ndim == 3:
            pixels = np.ascontiguousarray(pixels[:, :, [2, 1, 0, 3][: pixels.shape[2]]])
        return pixels


class GenerationBatcher(_Served):
    """Serves generation requests (seed + labels) from many threads / tasks through a
    :class:`DynamicBatcher`, for a generation pipeline (:class:`~vetrina.pipeline.Pipeline`
    with a generate stage).

    A request's image is the same bytes alone or in a batch (the latent comes from its seed
    alone; tested). A bad request (unknown label, bad seed) raises
    :class:`~vetrina.errors.InputError` from ``submit``; one that fails inside a batch fails
    alone (the batch is retried a request at a time).
    """

    def __init__(
        self,
        pipeline: Any,
        *,
        max_batch_size: int | None = None,
        max_wait_ms: float = 5.0,
        max_queue: int = 64,
        workers: int = 1,
        output_order: str = "RGB",
    ) -> None:
        if getattr(pipeline, "source", None) is None:
            raise ValueError("GenerationBatcher needs a generation pipeline (a generate stage)")
        if output_order not in ("RGB", "BGR"):
            raise ValueError(f"output_order must be 'RGB' or 'BGR', got {output_order!r}")
        self.pipeline = pipeline
        self.output_order = output_order
        self._batcher: DynamicBatcher[Any, np.ndarray] = DynamicBatcher(
            self._handle,
            max_batch_size=max_batch_size or pipeline.batch_size,
            max_wait_ms=max_wait_ms,
            max_queue=max_queue,
            validate=pipeline.check_request,
            workers=workers,
            name="generation-batcher",
        )

    def _handle(self, requests: list[Any]) -> list[np.ndarray]:
        return self.pipeline.generate(requests, output_order=self.output_order)

    def submit(self, request: Any) -> Future[np.ndarray]:
        """Queue one :class:`~vetrina.pipeline.GenerationRequest`; its image arrives on the
        future."""
        return self._batcher.submit(request)

    async def agenerate(self, request: Any) -> np.ndarray:
        """Generate one image from asyncio code without blocking the loop."""
        return await self._batcher.asubmit(request)

    def generate(self, request: Any, timeout: float | None = None) -> np.ndarray:
        """Generate one image, blocking the calling thread (batched with concurrent callers)."""
        return self._batcher.submit(request).result(timeout)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
