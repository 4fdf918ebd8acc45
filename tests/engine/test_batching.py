"""The dynamic batcher: grouping, flush rules, buckets, backpressure, failure isolation, asyncio,
shutdown, thread safety, and the Editor adapter against the editor run on each image alone.

No test asserts an upper bound on time: the ordering of batches is forced with a handler that
blocks on an event until the test has queued what it needs.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from concurrent.futures import CancelledError

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vetrina.batching import DynamicBatcher, EditorBatcher
from vetrina.errors import InputError, OverloadedError

TIMEOUT = 10.0  # generous bound for futures; never reached unless something hangs


class Gate:
    """A handler that records its batches and blocks its first call until released."""

    def __init__(self, fn=lambda x: x * 2, block_first: bool = True) -> None:
        self.fn = fn
        self.calls: list[list] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not block_first:
            self.release.set()
        self._lock = threading.Lock()

    def __call__(self, items: list) -> list:
        with self._lock:
            self.calls.append(list(items))
            first = len(self.calls) == 1
        if first:
            self.entered.set()
            assert self.release.wait(TIMEOUT)
        return [self.fn(x) for x in items]

    def start(self, batcher: DynamicBatcher, *items):
        """Submit ``items`` (default: 0) and wait until the worker is blocked inside the
        handler with them; returns the first future."""
        futs = [batcher.submit(item) for item in items or (0,)]
        assert self.entered.wait(TIMEOUT)
        return futs[0]


def test_concurrent_submits_are_grouped_up_to_max_batch_size():
    gate = Gate()
    with DynamicBatcher(gate, max_batch_size=4, max_wait_ms=50, max_queue=32) as b:
        first = gate.start(b, 0)
        futs = [b.submit(i) for i in range(1, 10)]  # queued while the worker is busy
        assert b.queue_depth == 9
        gate.release.set()
        assert first.result(TIMEOUT) == 0
        assert [f.result(TIMEOUT) for f in futs] == [2 * i for i in range(1, 10)]
    # The backlog is older than max_wait, so the 1-item remainder goes without waiting.
    assert gate.calls == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9]]
    stats = b.stats
    assert stats.batches == 4 and stats.items == 10 and stats.submitted == 10
    assert stats.batch_sizes == {1: 2, 4: 2}
    assert stats.mean_batch_size == 2.5
    assert stats.queue_high_water == 9 and stats.queue_depth == 0


def test_single_request_is_flushed_after_max_wait_not_before():
    seen: list[float] = []

    def handler(items):
        seen.append(time.monotonic())
        return items

    with DynamicBatcher(handler, max_batch_size=8, max_wait_ms=20, max_queue=8) as b:
        t0 = time.monotonic()
        assert b.submit("x").result(TIMEOUT) == "x"
    assert seen[0] - t0 >= 0.019  # waited for company (lower bound only: cannot flake)
    assert b.stats.batch_sizes == {1: 1}


def test_full_batch_does_not_wait():
    gate = Gate(block_first=False)
    # max_wait of 10 minutes: only "full" (or drain) can flush these.
    b = DynamicBatcher(gate, max_batch_size=3, max_wait_ms=600_000, max_queue=8)
    futs = [b.submit(i) for i in range(3)]
    assert [f.result(TIMEOUT) for f in futs] == [0, 2, 4]
    assert b.close(timeout=TIMEOUT)


def test_zero_wait_runs_each_request_at_once():
    with DynamicBatcher(lambda xs: xs, max_batch_size=8, max_wait_ms=0, max_queue=8) as b:
        assert b.submit(1).result(TIMEOUT) == 1


def test_overload_raises_at_once_and_recovers():
    gate = Gate()
    b = DynamicBatcher(gate, max_batch_size=2, max_wait_ms=1, max_queue=2)
    first = gate.start(b, 0)
    queued = [b.submit(1), b.submit(2)]
    with pytest.raises(OverloadedError, match=r"queue is full \(2 requests waiting\)") as info:
        b.submit(3)
    assert "back off" in str(info.value)
    assert b.stats.rejected == 1 and b.stats.submitted == 3
    gate.release.set()
    assert first.result(TIMEOUT) == 0 and [f.result(TIMEOUT) for f in queued] == [2, 4]
    assert b.submit(4).result(TIMEOUT) == 8  # room again
    b.close()


def test_buckets_never_mix_and_the_oldest_ready_bucket_goes_first():
    gate = Gate()
    b = DynamicBatcher(
        gate, max_batch_size=2, max_wait_ms=20, max_queue=32, bucket_key=lambda s: s[0]
    )
    gate.start(b, "z0")
    order = ["a1", "b1", "a2", "b2", "a3"]
    futs = [b.submit(s) for s in order]
    gate.release.set()
    assert [f.result(TIMEOUT) for f in futs] == [s * 2 for s in order]
    b.close()
    # a and b are both full; a's head is oldest. Then b1 (older than a3) before a3.
    assert gate.calls[1:] == [["a1", "a2"], ["b1", "b2"], ["a3"]]


def test_a_rare_bucket_is_not_starved_by_a_busy_one():
    gate = Gate()
    b = DynamicBatcher(
        gate, max_batch_size=2, max_wait_ms=20, max_queue=32, bucket_key=lambda s: s[0]
    )
    gate.start(b, "z0")
    rare = b.submit("r")
    busy = [b.submit(f"b{i}") for i in range(8)]
    time.sleep(0.03)  # the rare item passes its max wait while the worker is busy
    gate.release.set()
    assert rare.result(TIMEOUT) == "rr"
    [f.result(TIMEOUT) for f in busy]
    b.close()
    assert gate.calls[1] == ["r"]  # past its deadline and oldest: before the full busy batches
    assert all(len(c) == 2 for c in gate.calls[2:])


def test_returned_exception_fails_only_that_item():
    def fn(x):
        return ValueError(f"bad item {x}") if x == 13 else x + 1

    gate = Gate(fn)
    b = DynamicBatcher(gate, max_batch_size=3, max_wait_ms=1, max_queue=8)
    gate.start(b, 0)
    futs = [b.submit(x) for x in (1, 13, 3)]
    gate.release.set()
    assert futs[0].result(TIMEOUT) == 2 and futs[2].result(TIMEOUT) == 4
    with pytest.raises(ValueError, match="bad item 13"):
        futs[1].result(TIMEOUT)
    b.close()
    assert gate.calls[1] == [1, 13, 3]  # one batch, no retry
    assert b.stats.retried_batches == 0 and b.stats.failed == 1


def test_raising_handler_retries_each_item_alone():
    calls: list[list[int]] = []
    release = threading.Event()

    def handler(items):
        calls.append(list(items))
        if len(calls) == 1:
            assert release.wait(TIMEOUT)
        if 13 in items:
            raise ValueError("cannot handle 13")
        return [x + 1 for x in items]

    b = DynamicBatcher(handler, max_batch_size=3, max_wait_ms=1, max_queue=8)
    first = b.submit(0)
    while not calls:
        time.sleep(0.001)
    futs = [b.submit(x) for x in (1, 13, 3)]
    release.set()
    assert first.result(TIMEOUT) == 1
    assert futs[0].result(TIMEOUT) == 2 and futs[2].result(TIMEOUT) == 4
    with pytest.raises(ValueError, match="cannot handle 13"):
        futs[1].result(TIMEOUT)
    b.close()
    assert calls[1:] == [[1, 13, 3], [1], [13], [3]]
    assert b.stats.retried_batches == 1 and b.stats.failed == 1 and b.stats.batches == 2


def test_a_single_item_batch_is_not_retried():
    calls = []

    def handler(items):
        calls.append(items)
        raise RuntimeError("always")

    with (
        DynamicBatcher(handler, max_batch_size=4, max_wait_ms=0, max_queue=4) as b,
        pytest.raises(RuntimeError, match="always"),
    ):
        b.submit(1).result(TIMEOUT)
    assert calls == [[1]]


def test_wrong_number_of_results_is_a_clear_error():
    with (
        DynamicBatcher(lambda xs: [], max_batch_size=2, max_wait_ms=0, max_queue=4) as b,
        pytest.raises(RuntimeError, match="returned 0 results for 1 items"),
    ):
        b.submit(1).result(TIMEOUT)


def test_validate_and_bucket_key_reject_before_queueing():
    def validate(x):
        if not isinstance(x, int):
            raise TypeError(f"expected an int, got {type(x).__name__}")

    gate = Gate(block_first=False)
    with DynamicBatcher(gate, max_batch_size=2, max_wait_ms=0, max_queue=4, validate=validate) as b:
        with pytest.raises(TypeError, match="expected an int, got str"):
            b.submit("nope")
        assert b.submit(2).result(TIMEOUT) == 4
    assert gate.calls == [[2]] and b.stats.submitted == 1
    with (
        DynamicBatcher(
            gate, max_batch_size=2, max_wait_ms=0, max_queue=4, bucket_key=lambda x: [x]
        ) as b,
        pytest.raises(TypeError, match="unhashable list"),
    ):
        b.submit(1)


def test_asyncio_api_does_not_block_the_loop_and_cancels():
    gate = Gate(lambda x: x * 10)

    async def main():
        b = DynamicBatcher(gate, max_batch_size=4, max_wait_ms=1, max_queue=16)
        first = asyncio.create_task(b.asubmit(0))
        while not gate.entered.is_set():  # the loop keeps running while the worker is busy
            await asyncio.sleep(0.001)
        tasks = [asyncio.create_task(b.asubmit(i)) for i in range(1, 6)]
        doomed = asyncio.create_task(b.asubmit(99))
        await asyncio.sleep(0)  # let the tasks submit
        assert b.queue_depth == 6
        doomed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await doomed  # by now its queued request is cancelled too
        gate.release.set()
        results = await asyncio.wait_for(asyncio.gather(first, *tasks), TIMEOUT)
        b.close()
        return results, b.stats

    results, stats = asyncio.run(main())
    assert results == [0, 10, 20, 30, 40, 50]
    assert all(99 not in c for c in gate.calls)  # cancelled while queued: never handled
    assert stats.cancelled == 1


def test_close_drains_without_waiting_and_refuses_new_work():
    gate = Gate()
    b = DynamicBatcher(gate, max_batch_size=2, max_wait_ms=600_000, max_queue=16)
    first = gate.start(b, 0, 1)  # a full batch goes at once; a lone item would wait 10 min
    futs = [b.submit(2)]
    closer = threading.Thread(target=b.close)
    closer.start()
    while not b.closed:
        time.sleep(0.001)
    with pytest.raises(RuntimeError, match="closed"):
        b.submit(5)
    gate.release.set()
    closer.join(TIMEOUT)
    assert not closer.is_alive()  # did not wait out the 10-minute max_wait
    assert first.result(0) == 0 and [f.result(0) for f in futs] == [4]
    assert gate.calls == [[0, 1], [2]]
    assert b.close() is True  # idempotent


def test_close_without_drain_cancels_queued_but_finishes_running():
    gate = Gate()
    b = DynamicBatcher(gate, max_batch_size=2, max_wait_ms=600_000, max_queue=16)
    first = gate.start(b, 0, 1)
    futs = [b.submit(i) for i in range(2, 6, 2)] + [b.submit(3)]  # [2, 4] is full, 3 waits

    def release_once_closed():  # close() cancels the queue under the lock that sets `closed`
        while not b.closed:
            time.sleep(0.001)
        gate.release.set()

    threading.Thread(target=release_once_closed).start()
    assert b.close(drain=False, timeout=TIMEOUT)
    assert first.result(0) == 0
    for f in futs:
        with pytest.raises(CancelledError):
            f.result(0)
    assert b.stats.cancelled == 3 and gate.calls == [[0, 1]]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_batch_size": 0}, "max_batch_size must be an int >= 1"),
        ({"max_batch_size": True}, "max_batch_size must be an int"),
        ({"max_wait_ms": -1}, "max_wait_ms must be a finite number >= 0"),
        ({"max_wait_ms": float("nan")}, "max_wait_ms"),
        ({"max_queue": 2}, r"max_queue \(2\) is smaller than max_batch_size \(4\)"),
        ({"workers": 0}, "workers must be an int >= 1"),
    ],
)
def test_bad_parameters_are_refused(kwargs, match):
    args = {"max_batch_size": 4, "max_wait_ms": 1, "max_queue": 8, **kwargs}
    with pytest.raises(ValueError, match=match):
        DynamicBatcher(lambda xs: xs, **args)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_items=st.integers(1, 120),
    clients=st.integers(1, 6),
    max_batch=st.integers(1, 8),
    buckets=st.integers(1, 4),
    workers=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_concurrent_workload_results_match_items(
    n_items, clients, max_batch, buckets, workers, seed
):
    rng = random.Random(seed)
    bad = {i for i in range(n_items) if rng.random() < 0.05}
    raising = {i for i in range(n_items) if rng.random() < 0.03}
    batches: list[list[int]] = []
    lock = threading.Lock()

    def handler(items):
        with lock:
            batches.append(list(items))
        if any(i in raising for i in items):
            raise KeyError(f"raised for {sorted(set(items) & raising)}")
        if rng.random() < 0.3:
            time.sleep(0.0005)
        return [ValueError(f"bad {i}") if i in bad else i * i for i in items]

    b = DynamicBatcher(
        handler,
        max_batch_size=max_batch,
        max_wait_ms=1,
        max_queue=max(n_items, max_batch),
        bucket_key=lambda i: i % buckets,
        workers=workers,
    )
    futures: dict[int, object] = {}

    def client(ids):
        for i in ids:
            futures[i] = b.submit(i)

    threads = [
        threading.Thread(target=client, args=(range(c, n_items, clients),)) for c in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    for i in range(n_items):
        if i in bad or i in raising:
            with pytest.raises(ValueError if i in bad and i not in raising else KeyError):
                futures[i].result(TIMEOUT)
        else:
            assert futures[i].result(TIMEOUT) == i * i
    assert b.close(timeout=TIMEOUT)
    stats = b.stats
    assert stats.submitted == n_items == stats.items
    assert sum(k * v for k, v in stats.batch_sizes.items()) == n_items
    assert max(stats.batch_sizes) <= max_batch
    assert all(len({i % buckets for i in c}) == 1 for c in batches)
    assert stats.failed == len(bad | raising)


# -- the Editor adapter ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def editor(small_model):
    from vetrina.editor import Editor
    from vetrina.model import Model

    return Editor(Model.open(small_model, threads=1), max_side=128, batch_size=3)


def test_editor_batcher_buckets_by_working_size_and_matches_alone(editor):
    rng = np.random.default_rng(7)
    # The first three share the working size (38, 54) but not their sizes; the last differs.
    images = [
        rng.integers(0, 256, (38, 54, 3), dtype=np.uint8),
        rng.integers(0, 256, (37, 53, 3), dtype=np.uint8),
        rng.integers(0, 256, (38, 53, 4), dtype=np.uint8),
        rng.integers(0, 256, (64, 32), dtype=np.uint8),
    ]
    assert {editor.working_size(*im.shape[:2]) for im in images[:3]} == {(38, 54)}
    alone = [editor.edit([im])[0] for im in images]
    # A 10-minute max_wait: the full bucket of 3 flushes at once, the last one on close.
    service = EditorBatcher(editor, max_wait_ms=600_000, max_queue=8)
    futs = [service.submit(im) for im in images]
    assert service.close(timeout=TIMEOUT)
    got = [f.result(0) for f in futs]
    assert service.stats.batch_sizes == {3: 1, 1: 1}
    for g, a, im in zip(got, alone, images, strict=True):
        assert g.shape[:2] == im.shape[:2]
        np.testing.assert_array_equal(g, a)  # byte-identical to the image processed alone
    np.testing.assert_array_equal(got[2][:, :, 3], images[2][:, :, 3])  # alpha kept


def test_editor_batcher_rejects_bad_images_at_submit_and_serves_asyncio(editor):
    rng = np.random.default_rng(8)
    img = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    with EditorBatcher(editor, max_wait_ms=1, max_queue=8, order="BGR") as service:
        with pytest.raises(InputError, match="uint8"):
            service.submit(img.astype(np.float32))
        with pytest.raises(InputError, match="zero size"):
            service.submit(np.zeros((0, 4, 3), np.uint8))

        async def main():
            return await asyncio.gather(*(service.aedit(img) for _ in range(3)))

        outs = asyncio.run(main())
        assert service.edit(img, timeout=TIMEOUT).shape == img.shape
    want = editor.edit([img], order="BGR")[0]
    for out in outs:
        np.testing.assert_array_equal(out, want)
    assert service.stats.submitted == 4
    with pytest.raises(ValueError, match="exceeds the editor's batch_size 3"):
        EditorBatcher(editor, max_batch_size=8)


@pytest.mark.parametrize("order", ["RGB", "BGR"])
def test_editor_batcher_takes_encoded_files_as_bytes_and_paths(editor, tmp_path, order):
    """A service hands on what it received: PNG bytes or a file path are decoded at submit
    (in the batcher's channel order) and give what the decoded array gives."""
    import cv2

    rng = np.random.default_rng(9)
    bgr = rng.integers(0, 256, (30, 44, 3), dtype=np.uint8)
    png = cv2.imencode(".png", bgr)[1].tobytes()
    path = tmp_path / "photo.png"
    path.write_bytes(png)
    array = bgr if order == "BGR" else np.ascontiguousarray(bgr[:, :, ::-1])
    with EditorBatcher(editor, max_wait_ms=1, max_queue=8, order=order, max_pixels=2000) as s:
        want = s.edit(array, timeout=TIMEOUT)
        for item in (png, bytearray(png), str(path), path):
            np.testing.assert_array_equal(s.edit(item, timeout=TIMEOUT), want)
        np.testing.assert_array_equal(asyncio.run(s.aedit(png)), want)
        with pytest.raises(InputError, match="truncated"):
            s.submit(png[: len(png) // 2])
        with pytest.raises(InputError, match="limit"):
            s.submit(cv2.imencode(".png", np.zeros((50, 50, 3), np.uint8))[1].tobytes())
        with pytest.raises(InputError, match="unsupported request type int"):
            s.submit(7)  # type: ignore[arg-type]
    assert s.stats.submitted == 6


class _Recording:
    """Wraps an editor and records the batch sizes it was given."""

    def __init__(self, inner):
        self.inner, self.sizes = inner, []
        self.batch_size, self.working_size = inner.batch_size, inner.working_size

    def edit(self, images, **kw):
        self.sizes.append(len(images))
        return self.inner.edit(images, **kw)


def test_a_lone_request_runs_on_the_solo_editor_with_the_same_bytes(small_model, editor):
    """Batches go to the single-thread editor; a batch of one with nothing else running goes
    to ``solo_editor`` (more threads). ONNX Runtime gives the same bytes on either."""
    from vetrina.editor import Editor
    from vetrina.model import Model

    solo = _Recording(Editor(Model.open(small_model, threads=2), max_side=128, batch_size=1))
    main = _Recording(editor)
    rng = np.random.default_rng(11)
    images = [rng.integers(0, 256, (38, 54, 3), dtype=np.uint8) for _ in range(4)]
    alone = [editor.edit([im])[0] for im in images]
    service = EditorBatcher(main, max_wait_ms=600_000, max_queue=8, solo_editor=solo)
    futs = [service.submit(im) for im in images]  # 3 fill a batch, 1 flushes on close
    assert service.close(timeout=TIMEOUT)
    assert main.sizes == [3] and solo.sizes == [1]
    for fut, expected in zip(futs, alone, strict=True):
        np.testing.assert_array_equal(fut.result(0), expected)
