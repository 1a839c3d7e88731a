"""Wait on a condition with a timeout (never a bare sleep as synchronisation)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(
    probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.2, what: str = "condition"
) -> T:
    """Call `probe` until it returns something truthy and return that; raise AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            last_error = None
        except Exception as error:
            last_error = error
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what}; last value {last!r}, last error {last_error!r}"
    )
