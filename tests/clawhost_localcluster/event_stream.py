"""A Server-Sent Events reader for tests and benchmarks: a thread reads the stream, each event lands in a queue
with the moment it arrived, so a test can wait for one (with a timeout) and say how long it took."""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Event:
    name: str
    data: Any
    arrived: float  # time.monotonic()


class EventStream:
    """`GET url` as an event stream with `headers`; iterate with `next_event`, stop with `close`."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.events: queue.Queue[Event] = queue.Queue()
        self.status: int | None = None
        self.ended = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=None))
        self._opened = threading.Event()
        self._response: httpx.Response | None = None
        self._thread = threading.Thread(target=self._read, args=(url, headers), daemon=True, name="sse-reader")
        self._thread.start()
        if not self._opened.wait(20):
            raise AssertionError(f"the event stream {url} did not answer within 20 s")

    def _read(self, url: str, headers: dict[str, str]) -> None:
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                self._response = response
                self.status = response.status_code
                self._opened.set()
                name, data = "message", list[str]()
                for line in response.iter_lines():
                    if line == "":
                        if data:
                            self.events.put(Event(name, json.loads("\n".join(data)), time.monotonic()))
                        name, data = "message", list[str]()
                    elif line.startswith("event:"):
                        name = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].strip())
        except httpx.HTTPError:
            pass
        finally:
            self._opened.set()
            self.ended.set()

    def next_event(self, name: str, timeout: float = 20, where: Any = None) -> Event:
        """The next event called `name` (for which `where(data)` holds, when given); others are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {name!r} event within {timeout} s")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if event.name == name and (where is None or where(event.data)):
                return event

    def close(self) -> None:
        if self._response is not None:
            self._response.close()  # unblocks the reader thread
        self._client.close()
        self._thread.join(timeout=10)
