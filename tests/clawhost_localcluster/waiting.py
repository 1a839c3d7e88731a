"""Wait on a condition with a timeout (never a bare sleep as synchronisation)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Poll(Generic[T]):
    """One wait's state, shared by the blocking and the async form: the deadline, the last value and error."""

    def __init__(self, probe: Callable[[], T | None], timeout: float, what: str) -> None:
        self.probe, self.timeout, self.what = probe, timeout, what
        self.deadline = time.monotonic() + timeout
        self.last: T | None = None
        self.last_error: Exception | None = None

    def pending(self) -> bool:
        return time.monotonic() < self.deadline

    def attempt(self) -> T | None:
        """Call the probe once; its value when truthy, else None."""
        try:
            self.last = self.probe()
            self.last_error = None
        except Exception as error:
            self.last_error = error
        return self.last or None

    def failure(self) -> AssertionError:
        return AssertionError(
            f"timed out after {self.timeout}s waiting for {self.what}; "
            f"last value {self.last!r}, last error {self.last_error!r}"
        )


def eventually(
    probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.2, what: str = "condition"
) -> T:
    """Call `probe` until it returns something truthy and return that; raise AssertionError on timeout."""
    poll = _Poll(probe, timeout, what)
    while poll.pending():
        if (value := poll.attempt()) is not None:
            return value
        time.sleep(interval)
    raise poll.failure()


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
    poll = _Poll(probe, timeout, what)
    while poll.pending():
        if (value := poll.attempt()) is not None:
            return value
        await asyncio.sleep(interval)
    raise poll.failure()
