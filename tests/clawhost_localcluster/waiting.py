"""Wait on a condition with a timeout (never a bare sleep as synchronisation)."""

from __future__ import annotations

import asyncio
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


async def eventually_async(
    probe: Callable[[], T | None],
    timeout: float = 30.0,  # noqa: ASYNC109 - on timeout it says what it waited for and what it last saw
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """`eventually` for async tests: polls on the event loop, so the loop's other tasks keep running meanwhile.

    Not `asyncio.to_thread(eventually, ...)`: Python code in a second thread can run the cyclic garbage
    collector there, and with it the finalizers of an earlier test's unclosed HTTP clients, which touch the
    event loop's sockets from the wrong thread. Seen here: 40 of 200 OpenAI SDK calls waiting forever on
    responses that sat unread in their sockets' receive buffers (gone with the GC disabled, or the clients closed).
    """
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
        await asyncio.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what}; last value {last!r}, last error {last_error!r}"
    )
