"""retain_freed_memory: after it, a loop that frees and re-allocates large buffers reuses
them instead of faulting in fresh pages each round (measured in a child process, so this
process's allocator stays as it was)."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHILD = """
import resource, sys
import numpy as np
if sys.argv[1] == "retain":
    from vetrina.heap import retain_freed_memory
    assert retain_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(2):  # warm: the first round maps whatever it needs
    blocks = [np.ones(3 << 20, np.uint8) for _ in range(4)]
    del blocks
start = faults()
for _ in range(10):
    blocks = [np.ones(3 << 20, np.uint8) for _ in range(4)]  # 12 MB, like a photo's buffers
    del blocks
print(faults() - start)
"""


def _faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True
    )
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_buffers_are_reused_instead_of_faulted_in_again():
    import ctypes

    try:
        ctypes.CDLL(None).gnu_get_libc_version  # noqa: B018
    except AttributeError:
        pytest.skip("not glibc")
    pages = 10 * (12 << 20) // 4096
    assert _faults("default") > pages // 2  # glibc hands the 12 MB back every round...
    assert _faults("retain") < pages // 20  # ...and keeps it once told to
