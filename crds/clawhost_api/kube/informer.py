"""LIST + WATCH of one collection, kept current in a thread: the cache behind every service's view of the cluster.

What it does on trouble is the same for every service: a watch ends after `watch_seconds` and is opened again
from the last resourceVersion; 410 Gone (the API server no longer has that history) lists again at once; any
other failure lists again after a back-off that doubles up to a limit and starts over once a watch is up.
It records when it last heard from the API server (a listing, a watch opening, an event, a watch's normal
end), so a service can tell how stale its cache may be.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from clawhost_api.backoff import Backoff
from clawhost_api.kube.errors import KubeError
from clawhost_api.kube.http import KubeHttp, Stream

logger = logging.getLogger("clawhost.kube.informer")

Obj = dict[str, Any]
WATCH_SECONDS = 300


class Sink(Protocol):
    """Where an informer's news goes. Called from the informer's thread only."""

    def listed(self, items: list[Obj], resource_version: str) -> None:
        """A complete, fresh listing (each item with its kind and apiVersion) as of `resource_version`: replaces
        everything known (but what the service wrote itself after that version)."""

    def changed(self, event: str, obj: Obj) -> None:
        """One watch event: ADDED, MODIFIED or DELETED, with the object."""


DEFAULT_BACKOFF = Backoff()  # frozen: one shared default


class _ExpiredError(Exception):
    """410 Gone: the API server no longer has the history our resourceVersion points into."""


class Informer:
    """Keeps `sink` current with the objects at `path` (a cluster-wide or namespaced collection)."""

    def __init__(
        self,
        http: KubeHttp,
        path: str,
        sink: Sink,
        *,
        name: str,
        label_selector: str = "",
        field_selector: str = "",
        watch_seconds: int = WATCH_SECONDS,
        backoff: Backoff = DEFAULT_BACKOFF,
        on_health: Callable[[bool], None] | None = None,
    ) -> None:
        self.http = http
        self.path = path
        self.sink = sink
        self.name = name
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.watch_seconds = watch_seconds
        self.backoff = backoff
        # Told False when a listing or watch fails and True when one succeeds again (from the informer's thread),
        # so a service can say at once that its view may be out of date instead of waiting for it to grow stale.
        self.on_health = on_health
        self.healthy = False
        self.synced = threading.Event()  # set by the first complete listing
        self._version = ""
        self._heard = float("-inf")  # time.monotonic() of the last sign the cache was current
        self._stop = threading.Event()
        self._stream: Stream | None = None
        self._watches_opened = 0

    def seconds_since_sync(self) -> float:
        """How long since the cache was last known current (infinite before the first listing)."""
        return time.monotonic() - self._heard

    def _query(self) -> list[tuple[str, str]]:
        query = [("labelSelector", self.label_selector)] if self.label_selector else []
        if self.field_selector:
            query.append(("fieldSelector", self.field_selector))
        return query

    def list_once(self) -> None:
        """One LIST into the sink."""
        response = self.http.request("GET", self.path, query=self._query())
        if not response.ok:
            raise response.error()
        listing = orjson.loads(response.body)
        # A list's items carry no kind or apiVersion (a watch's objects do): put them back.
        identity = {"kind": str(listing["kind"]).removesuffix("List"), "apiVersion": listing["apiVersion"]}
        items: list[Obj] = listing.get("items") or []
        for obj in items:
            obj.update(identity)
        self._version = str(listing["metadata"]["resourceVersion"])
        self.sink.listed(items, self._version)
        self._heard = time.monotonic()
        self._set_health(True)
        self.synced.set()

    def _set_health(self, healthy: bool) -> None:
        changed = healthy != self.healthy
        self.healthy = healthy
        if changed and self.on_health is not None:
            self.on_health(healthy)

    def _event(self, event: Obj) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _ExpiredError
            raise KubeError(
                int(obj.get("code") or 500), str(obj.get("reason") or "WatchError"), str(obj.get("message") or "")
            )
        self._version = obj["metadata"]["resourceVersion"]
        if kind != "BOOKMARK":
            self.sink.changed(str(kind), obj)

    def _watch(self) -> None:
        query = [
            *self._query(),
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", self._version),
            ("timeoutSeconds", str(self.watch_seconds)),
        ]
        try:
            stream = self.http.watch(self.path, query, self.watch_seconds + 30)
        except KubeError as error:
            if error.status == 410:
                raise _ExpiredError from error
            raise
        self._stream = stream
        self._watches_opened += 1
        self._heard = time.monotonic()
        try:
            for line in stream:
                if self._stop.is_set():
                    return
                if line.strip():
                    self._event(orjson.loads(line))
                    self._heard = time.monotonic()
            self._heard = time.monotonic()  # the server ended the watch on time: it was current until now
        finally:
            self._stream = None

    def run(self, stop: threading.Event | None = None) -> None:
        """List, then watch from there until stopped; list again after any failure (see the module's docstring)."""
        if stop is not None:
            self._stop = stop
        try:
            self._list_and_watch()
        finally:
            self.http.release()  # this thread's kept-alive LIST connection: no one else would close it

    def _list_and_watch(self) -> None:
        listed = False
        delays = self.backoff.delays()
        while not self._stop.is_set():
            opened = self._watches_opened
            try:
                if not listed:
                    self.list_once()
                    listed = True
                self._watch()
            except _ExpiredError:
                listed = False
            except Exception as error:  # a cache must outlive any one failed request
                if self._stop.is_set():
                    return
                self._set_health(False)
                if self._watches_opened != opened:
                    delays = self.backoff.delays()  # a watch was up: this failure starts the pauses over
                pause = next(delays)
                logger.warning(
                    "watch failed; listing again",
                    extra={"informer": self.name, "error": str(error), "retry_seconds": round(pause, 1)},
                )
                listed = False
                self._stop.wait(pause)

    def start(self, stop: threading.Event | None = None) -> threading.Thread:
        """`run` in a daemon thread; `stop` (or `self.stop()`) ends it."""
        if stop is not None:
            self._stop = stop
        thread = threading.Thread(target=self.run, name=f"informer-{self.name}", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Ends the thread soon: also cuts the watch it may be waiting on."""
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.close()
