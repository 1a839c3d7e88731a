"""A de-duplicating work queue of Customer names (the controller-runtime pattern), drained by worker threads.

Watch handlers only mark a customer dirty and return, so kopf drops each raw event at once instead of
holding it until a worker thread is free; a customer marked several times while queued is reconciled
once; one customer is never reconciled by two workers at the same time (marked while in progress, it is
queued again when that pass ends).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable


class WorkQueue:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._order: deque[tuple[str, str]] = deque()
        self._queued: set[str] = set()
        self._active: set[str] = set()
        self._again: dict[str, str] = {}
        self._closed = False

    def add(self, name: str, trigger: str) -> None:
        with self._cond:
            if name in self._active:
                self._again.setdefault(name, trigger)
            elif name not in self._queued:
                self._queued.add(name)
                self._order.append((name, trigger))
                self._cond.notify()

    def add_after(self, name: str, trigger: str, delay: float) -> None:
        timer = threading.Timer(delay, self.add, (name, trigger))
        timer.daemon = True
        timer.start()

    def get(self) -> tuple[str, str] | None:
        """The next (name, trigger), now marked in progress; None once closed."""
        with self._cond:
            while not self._order and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            name, trigger = self._order.popleft()
            self._queued.discard(name)
            self._active.add(name)
            return name, trigger

    def done(self, name: str) -> None:
        with self._cond:
            self._active.discard(name)
            trigger = self._again.pop(name, None)
            if trigger is not None and name not in self._queued:
                self._queued.add(name)
                self._order.append((name, trigger))
                self._cond.notify()

    def depth(self) -> int:
        with self._cond:
            return len(self._order)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def start_workers(self, count: int, work: Callable[[str, str], None]) -> None:
        def loop() -> None:
            while (item := self.get()) is not None:
                try:
                    work(*item)
                finally:
                    self.done(item[0])

        for index in range(count):
            threading.Thread(target=loop, name=f"reconcile-{index}", daemon=True).start()
