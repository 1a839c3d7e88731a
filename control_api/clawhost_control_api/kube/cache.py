"""Customers kept in memory by the shared LIST+WATCH informer, so dashboard reads never call the API server.

Every change it takes in (a watch event, a fresh listing, this process's own write) is announced on its `feed`
by Customer name, and so is every change of the API server's reachability: the dashboard's live stream waits on
those notices instead of asking anyone.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from clawhost_api.kube import Informer
from clawhost_control_api.kube.changes import ChangeFeed
from clawhost_control_api.kube.client import CUSTOMERS, KubeClient

Obj = dict[str, Any]


def _rv(obj: Obj) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class CustomerCache:
    """name → Customer. Written by the informer's thread and by request handlers (their own writes), read lock-free."""

    def __init__(self, kube: KubeClient) -> None:
        self._items: dict[str, Obj] = {}
        self._lock = threading.Lock()
        self.feed = ChangeFeed()
        self._informer = Informer(kube.http, CUSTOMERS, self, name="customers", on_health=self._health_changed)

    def get(self, name: str) -> Obj | None:
        return self._items.get(name)

    @property
    def reachable(self) -> bool:
        """False from a failed listing or watch until one succeeds again: the cache may be out of date meanwhile."""
        return self._informer.healthy

    def _health_changed(self, _: bool) -> None:
        self.feed.everyone()

    def remember(self, obj: Obj) -> None:
        """Record an object this process just wrote (read-your-writes), unless the cache already has newer."""
        name = str((obj.get("metadata") or {}).get("name"))
        with self._lock:
            known = self._items.get(name)
            if known is not None and _rv(obj) < _rv(known):
                return
            self._items[name] = obj
        self.feed.changed({name})

    def forget(self, name: str) -> None:
        """A Customer this process deleted: gone from its reads at once (the watch's DELETED event follows)."""
        with self._lock:
            self._items.pop(name, None)
        self.feed.changed({name})

    def listed(self, items: list[Obj], resource_version: str) -> None:
        fresh = {str(item["metadata"]["name"]): item for item in items}
        as_of = int(resource_version or 0)
        with self._lock:
            for name, known in self._items.items():  # this process's own writes that the listing predates
                if _rv(known) > max(as_of, _rv(fresh.get(name) or {})):
                    fresh[name] = known
            previous, self._items = self._items, fresh
        news = {
            name
            for name in previous.keys() | fresh.keys()
            if _rv(previous.get(name) or {}) != _rv(fresh.get(name) or {})
        }
        self.feed.changed(news)

    def changed(self, event: str, obj: Obj) -> None:
        if event == "DELETED":
            self.forget(str(obj["metadata"]["name"]))
        else:
            self.remember(obj)

    async def start(self, sync_seconds: float = 30) -> None:
        self._informer.start()
        if not await asyncio.to_thread(self._informer.synced.wait, sync_seconds):
            self._informer.stop()
            raise TimeoutError(f"no listing of Customers within {sync_seconds} s")

    async def stop(self) -> None:
        self._informer.stop()
