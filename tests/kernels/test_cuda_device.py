"""The parts of vetrina.kernels.cuda_device that need no GPU: how a caller's stream is read
(vetrina, cuda.core, PyTorch and CuPy conventions) and how reused buffers grow."""

from __future__ import annotations

import numpy as np
import pytest

from vetrina.kernels.cuda_device import ALIGNMENT, _align, _stream_handle, grown_capacity


class _CudaCoreStream:
    def __cuda_stream__(self):
        return (0, 0x1234)


class _TorchStream:
    cuda_stream = 0x2345


class _CupyStream:
    ptr = 0x3456


@pytest.mark.parametrize(
    ("stream", "handle"),
    [
        (None, 0),
        (0, 0),
        (0x77, 0x77),
        (np.uint64(0x88), 0x88),
        (_CudaCoreStream(), 0x1234),
        (_TorchStream(), 0x2345),
        (_CupyStream(), 0x3456),
    ],
)
def test_stream_conventions(stream, handle):
    assert _stream_handle(stream) == handle


@pytest.mark.parametrize("stream", [True, "0x12", 1.5, object(), [1]])
def test_other_objects_are_not_streams(stream):
    with pytest.raises(TypeError, match="expected None, an int handle"):
        _stream_handle(stream)


def test_a_negative_handle_is_refused():
    with pytest.raises(ValueError, match="CUDA stream handle"):
        _stream_handle(-1)


@pytest.mark.parametrize("nbytes", [1, 255, 256, 257, 4096, 4097, 10**9])
def test_buffers_grow_to_the_next_power_of_two_at_least_the_alignment(nbytes):
    size = grown_capacity(nbytes)
    assert size >= max(nbytes, ALIGNMENT) and size & (size - 1) == 0
    assert size < 2 * max(nbytes, ALIGNMENT)  # at most twice what was asked
    assert _align(nbytes) % ALIGNMENT == 0 and 0 <= _align(nbytes) - nbytes < ALIGNMENT
