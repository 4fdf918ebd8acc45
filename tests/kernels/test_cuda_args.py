"""Kernel parameter packing (vetrina.kernels.gpu._Args and the scalar helpers), read back the
way cuLaunchKernel reads it: through the ``void**`` array at ``address``. Needs no GPU."""

from __future__ import annotations

import ctypes
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vetrina.kernels.gpu import _Args, _f64, _i32, _i64, _u32, _u64


def _read_back(args: _Args, sizes: list[int]) -> list[bytes]:
    pointers = (ctypes.c_uint64 * max(1, len(sizes))).from_address(args.address)
    for p in pointers[: len(sizes)]:
        assert p % 8 == 0, "every parameter 8-byte aligned"
    return [ctypes.string_at(pointers[i], n) for i, n in enumerate(sizes)]


_SCALARS = [
    (_u64, "<Q", st.integers(0, 2**64 - 1)),
    (_i64, "<q", st.integers(-(2**63), 2**63 - 1)),
    (_i32, "<i", st.integers(-(2**31), 2**31 - 1)),
    (_u32, "<I", st.integers(0, 2**32 - 1)),
    (_f64, "<d", st.floats(allow_nan=False)),
]
_VALUE = st.one_of(
    *[st.tuples(st.just(i), v) for i, (_, _, v) in enumerate(_SCALARS)],
    st.tuples(st.just("bytes"), st.binary(min_size=1, max_size=40)),
    st.tuples(st.just("bytearray"), st.binary(min_size=1, max_size=40)),
    st.tuples(st.just("array"), st.binary(min_size=1, max_size=40)),
)


_WRAP = {"bytes": bytes, "bytearray": bytearray, "array": lambda b: np.frombuffer(b, np.uint8)}


@given(st.lists(_VALUE, max_size=12))
def test_every_parameter_reads_back_exactly(values):
    packed, want = [], []
    for kind, v in values:
        if isinstance(kind, int):
            make, fmt, _ = _SCALARS[kind]
            packed.append(make(v))
            want.append(struct.pack(fmt, v))
        else:
            packed.append(_WRAP[kind](v))
            want.append(v)
    args = _Args(*packed)
    assert _read_back(args, [len(w) for w in want]) == want


def test_a_struct_buffer_and_scalars_in_one_launch():
    """The layout the launchers use: a packed struct, then pointers and sizes."""
    block = bytearray(struct.pack("<qqi", 7, -8, 9))  # 20 bytes: padded to 24
    args = _Args(block, _u64(0xDEADBEEF00), _i32(-5), _f64(0.25))
    got = _read_back(args, [20, 8, 4, 8])
    assert got == [bytes(block), struct.pack("<Q", 0xDEADBEEF00), struct.pack("<i", -5),
                   struct.pack("<d", 0.25)]  # fmt: skip


def test_the_buffer_is_a_copy():
    """Launch captures replay a plan later: the caller may reuse its struct buffer."""
    block = bytearray(b"\x01" * 8)
    args = _Args(block)
    block[:] = b"\x02" * 8
    assert _read_back(args, [8]) == [b"\x01" * 8]


@pytest.mark.parametrize(("make", "bad"), [(_i32, 2**31), (_u32, -1), (_u64, -1), (_i64, 2**63)])
def test_out_of_range_scalars_are_refused(make, bad):
    with pytest.raises(struct.error):
        make(bad)
