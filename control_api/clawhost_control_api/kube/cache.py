"""Customers kept in memory by one LIST and a WATCH, so dashboard reads never call the API server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from clawhost_control_api.kube.client import KubeClient, KubeError

log = logging.getLogger(__name__)


def _rv(obj: dict[str, Any]) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class CustomerCache:
    def __init__(self, kube: KubeClient) -> None:
        self._kube = kube
        self._items: dict[str, dict[str, Any]] = {}
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def get(self, name: str) -> dict[str, Any] | None:
        return self._items.get(name)

    def __len__(self) -> int:
        return len(self._items)

    def remember(self, obj: dict[str, Any]) -> None:
        """Record an object this process just wrote (read-your-writes), unless the cache already has newer."""
        name = str((obj.get("metadata") or {}).get("name"))
        known = self._items.get(name)
        if known is None or _rv(obj) >= _rv(known):
            self._items[name] = obj

    async def start(self, sync_seconds: float = 30) -> None:
        self._task = asyncio.create_task(self._run(), name="customer-cache")
        await asyncio.wait_for(self._synced.wait(), sync_seconds)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                listed = await self._kube.list_customers()
                self._items = {item["metadata"]["name"]: item for item in listed.get("items", [])}
                self._synced.set()
                version = str(listed["metadata"]["resourceVersion"])
                while True:
                    version = await self._follow(version)
            except asyncio.CancelledError:
                raise
            except (KubeError, OSError, ValueError, KeyError) as error:
                log.warning("customer watch restarts after %s", type(error).__name__)
                await asyncio.sleep(1)
            except Exception as error:  # the watch must outlive any surprise
                log.warning("customer watch restarts after %s", type(error).__name__)
                await asyncio.sleep(1)

    async def _follow(self, version: str) -> str:
        async for change in self._kube.watch_customers(version):
            kind, obj = change.get("type"), change.get("object") or {}
            if kind == "ERROR":
                raise KubeError(int(obj.get("code") or 500), str(obj.get("reason") or "watch error"))
            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            if kind == "BOOKMARK":
                continue
            name = str(obj["metadata"]["name"])
            if kind == "DELETED":
                self._items.pop(name, None)
            else:
                self.remember(obj)
        return version
