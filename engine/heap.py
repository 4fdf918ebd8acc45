"""Bulk runs: keep freed memory in the C heap instead of handing it back to the kernel.

By default glibc maps large blocks afresh (``mmap``) and trims the heap once a few MB are free,
so every photo of a folder run maps its buffers anew: a 1024x683 cut-out (decode, alpha,
RGBA, PNG buffers) took about 2,000 page faults, 8 MB of fresh pages, each fault a few
microseconds on a virtual machine. :func:`retain_freed_memory` makes blocks below
:data:`MMAP_THRESHOLD` come from the heap and keeps up to :data:`TRIM_THRESHOLD` of free heap,
so a steady-state run reuses its buffers (8 faults a photo, same photos, same run).

The setting is process-wide, so the library never makes it on its own: ``vetrina run`` calls
it at start, and a service embedding vetrina may call it once at start-up (``vetrina bench``
measures the library's defaults, without it). The cost is resident memory that stays mapped
after a peak (up to the trim threshold per malloc arena).
"""

from __future__ import annotations

import ctypes
import sys

MMAP_THRESHOLD = 16 << 20
"""Blocks at least this large are still mapped on their own (and unmapped when freed)."""
TRIM_THRESHOLD = 64 << 20
"""Free memory at the top of a heap kept before it is handed back."""

_M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
_M_MMAP_THRESHOLD = -3


def retain_freed_memory() -> bool:
    """Set glibc's malloc thresholds as above; False (and nothing changed) where the C
    library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 -- glibc only: musl's mallopt does nothing
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return (
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    )
