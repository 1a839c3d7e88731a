"""Give freed heap back to the OS after bursts.

A burst (the initial listing of every object at start-up, or many Customers created at once) parks
thousands of watch events in queues; once handled, glibc keeps the freed pages mapped, so resident
memory stays at the burst's high-water mark. `malloc_trim(0)` returns free pages from every arena.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import threading
from collections.abc import Callable

logger = logging.getLogger("clawhost.operator")


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)  # glibc only
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


def start_trimmer(interval: float, stop: threading.Event) -> bool:
    """Every `interval` seconds: a full collection, then malloc_trim. False where the C library has no trim."""
    trim = _malloc_trim()
    if trim is None:
        logger.info("malloc_trim not available; freed heap stays mapped")
        return False

    def loop() -> None:
        while not stop.wait(interval):
            gc.collect()
            trim(0)

    threading.Thread(target=loop, name="malloc-trim", daemon=True).start()
    return True
