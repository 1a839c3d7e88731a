"""A de-duplicating work queue of Customer names (the controller-runtime pattern), drained by worker threads.

Watch threads only mark a customer dirty and return, so each raw event is dropped at once instead of
held until a worker thread is free; a customer marked several times while queued is reconciled
once; one customer is never reconciled by two workers at the same time (marked while in progress, it is
queued again when that pass ends).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable


class WorkQueue:
    """Two lanes: urgent marks (a child changed: a Deployment became Ready, drift to repair) are served before
    the others (new or edited Customers, the periodic pass), so a burst of 1,000 new customers neither keeps
    the first ones from showing Ready nor delays a repair until the whole burst has been provisioned.
    """

    def __init__(self, conditional: frozenset[str] = frozenset()) -> None:
        # Triggers whose pass may be skipped when it is no longer needed (a new Customer's deferred first-status
        # look): a mark with another trigger merged into such an entry replaces its trigger, or it would be skipped
        # with it (a Deployment turning Ready then waited for the periodic pass).
        self._conditional = conditional
        self._triggers: dict[str, str] = {}  # name -> the trigger its queued pass runs as
        lock = threading.RLock()
        self._cond = threading.Condition(lock)  # workers wait on it
        self._timer_cond = threading.Condition(lock)  # the timer thread waits on it
        self._lanes: tuple[deque[tuple[str, str]], deque[tuple[str, str]]] = (deque(), deque())  # urgent, normal
        self._queued: dict[str, bool] = {}  # name -> in the urgent lane; a lane may still hold a taken name
        self._active: set[str] = set()
        self._again: dict[str, tuple[str, bool]] = {}
        self._later: list[tuple[float, int, str, str, bool]] = []  # (due, order, name, trigger, urgent), a heap
        self._order = itertools.count()
        self._timer: threading.Thread | None = None
        self._closed = False

    def _merged(self, held: str, new: str, prefer_new: bool = False) -> str:
        """The trigger of one pass marked twice: one that is not conditional wins; else the first (the new one
        when it promotes the entry to the urgent lane)."""
        if (held in self._conditional) != (new in self._conditional):
            return held if new in self._conditional else new
        return new if prefer_new else held

    def add(self, name: str, trigger: str, urgent: bool = False) -> None:
        with self._cond:
            if name in self._active:
                first_trigger, was_urgent = self._again.get(name, (trigger, False))
                self._again[name] = (self._merged(first_trigger, trigger), urgent or was_urgent)
            elif name not in self._queued or (urgent and not self._queued[name]):
                # Promoted from the normal lane: its old entry there is skipped when reached.
                held = self._triggers.get(name)
                self._triggers[name] = trigger if held is None else self._merged(held, trigger, prefer_new=True)
                self._queued[name] = urgent
                self._lanes[0 if urgent else 1].append((name, trigger))
                self._cond.notify()
            else:
                self._triggers[name] = self._merged(self._triggers[name], trigger)

    def add_after(self, name: str, trigger: str, delay: float, urgent: bool = False) -> None:
        """`add` once `delay` seconds have passed (one timer thread for all: a burst may defer hundreds)."""
        with self._cond:
            heapq.heappush(self._later, (time.monotonic() + delay, next(self._order), name, trigger, urgent))
            if self._timer is None:
                self._timer = threading.Thread(target=self._release_due, name="workqueue-timer", daemon=True)
                self._timer.start()
            self._timer_cond.notify()

    def _release_due(self) -> None:
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                while self._later and self._later[0][0] <= now:
                    _, _, name, trigger, urgent = heapq.heappop(self._later)
                    self.add(name, trigger, urgent)
                self._timer_cond.wait(self._later[0][0] - now if self._later else None)

    def get(self) -> tuple[str, str] | None:
        """The next (name, trigger), now marked in progress; None once closed."""
        with self._cond:
            while not self._closed:
                for lane in self._lanes:
                    while lane:
                        name, trigger = lane.popleft()
                        if self._queued.pop(name, None) is not None:
                            self._active.add(name)
                            return name, self._triggers.pop(name, trigger)
                self._cond.wait()
            return None

    def done(self, name: str) -> None:
        with self._cond:
            self._active.discard(name)
            again = self._again.pop(name, None)
            if again is not None:
                self.add(name, *again)  # the condition's lock is re-entrant

    def depth(self) -> int:
        with self._cond:
            return len(self._queued)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            self._timer_cond.notify_all()

    def start_workers(self, count: int, work: Callable[[str, str], None]) -> None:
        def loop() -> None:
            while (item := self.get()) is not None:
                try:
                    work(*item)
                finally:
                    self.done(item[0])

        for index in range(count):
            threading.Thread(target=loop, name=f"reconcile-{index}", daemon=True).start()
