"""Large tick buffers go back to the OS when freed (glibc only).

At full speed the app allocates and frees tick buffers many times a second (batches
received from the workers: up to ``pool.max_batch`` × 60 bytes, 600 kB by default;
messages encoded for the link: up to ``batch_max_ticks`` × 60, 300 kB). glibc's malloc
raises its mmap threshold dynamically after such frees, so later buffers come from the
heap (and the reader threads' own arenas) and their pages stay resident when freed: the
app's RSS sat at 600–1,200 MB while what was alive (tracemalloc) was 270–400 MB.
Pinning the threshold keeps every buffer of that size an ``mmap`` of its own, unmapped
on free. At 1 MiB (when batches were 1–5 MB) the default 600 kB batches and 300 kB
messages slipped under it again: 310–330 MB RSS at full speed against 200–295 MB at
256 kiB, in alternating runs of the same pipeline (each buffer then costs its page
faults, a few ns a tick). Smaller objects are unaffected. Elsewhere (macOS, Windows,
musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD_BYTES = 2**18


def return_large_buffers_to_os() -> bool:
    """Pin glibc's mmap threshold; True when it took effect."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    if not ok:
        log.debug("mallopt(M_MMAP_THRESHOLD) refused")
    return ok
