"""Change notices from the Customer cache to the event loop: which Customer changed, and whether the cluster answers.

The cache is written on the informer's thread (and by request handlers), the listeners wait on an asyncio loop:
a notice is a flag set with `call_soon_threadsafe`, never a queue, so a slow listener cannot make the cache wait or
hold memory. A listener that wakes reads the cache's current object, so notices that came while it was busy
collapse into one look at the newest state.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ChangeNotice:
    """One listener's wake-up flag, set from any thread, awaited on the loop that made it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._flag = asyncio.Event()

    def notify(self) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: its listener is gone
            self._loop.call_soon_threadsafe(self._flag.set)

    async def wait(self, seconds: float) -> bool:
        """True when notified within `seconds` (the flag is cleared for the next wait), else False."""
        try:
            async with asyncio.timeout(seconds):
                await self._flag.wait()
        except TimeoutError:
            return False
        self._flag.clear()
        return True


class ChangeFeed:
    """Listeners by Customer name; the cache calls `changed(names)` and `everyone()` from whatever thread it is on."""

    def __init__(self) -> None:
        self._listeners: dict[str, set[ChangeNotice]] = {}
        self._lock = threading.Lock()

    @contextmanager
    def listen(self, name: str) -> Iterator[ChangeNotice]:
        """Notices for Customer `name` (and for every change of the cluster's reachability) while inside."""
        notice = ChangeNotice(asyncio.get_running_loop())
        with self._lock:
            self._listeners.setdefault(name, set()).add(notice)
        try:
            yield notice
        finally:
            with self._lock:
                listeners = self._listeners.get(name)
                if listeners is not None:
                    listeners.discard(notice)
                    if not listeners:
                        del self._listeners[name]

    def listening(self, name: str) -> int:
        with self._lock:
            return len(self._listeners.get(name, ()))

    def changed(self, names: set[str]) -> None:
        with self._lock:
            notices = [n for name in names for n in self._listeners.get(name, ())]
        for notice in notices:
            notice.notify()

    def everyone(self) -> None:
        with self._lock:
            notices = [n for listeners in self._listeners.values() for n in listeners]
        for notice in notices:
            notice.notify()
