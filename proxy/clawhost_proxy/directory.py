"""Which proxy token belongs to which customer: an in-memory map of token hashes fed by the shared informer."""

from __future__ import annotations

import hmac
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from clawhost_api.customer import GROUP, PLURAL, VERSION, BillingStatus, hash_proxy_token
from clawhost_api.tiers import TierName

_SERVED_PHASES = {"Running", "Provisioning"}
CUSTOMERS = f"/apis/{GROUP}/{VERSION}/{PLURAL}"


class SyncClock(Protocol):
    def seconds_since_sync(self) -> float: ...


@dataclass(frozen=True)
class CustomerAuth:
    name: str
    tier: TierName
    token_hash: str
    phase: str | None
    billing: BillingStatus | None


def _entry(customer: dict[str, Any]) -> CustomerAuth | None:
    status = customer.get("status") or {}
    token_hash = (status.get("proxyToken") or {}).get("hash")
    if not token_hash:
        return None
    tier: TierName = (status.get("applied") or {}).get("tier") or (customer.get("spec") or {}).get("tier") or "starter"
    billing = BillingStatus.model_validate(status["billing"]) if status.get("billing") else None
    return CustomerAuth(customer["metadata"]["name"], tier, token_hash, status.get("phase"), billing)


class TokenDirectory:
    """hash → customer; replaced atomically per event, read lock-free on the hot path.

    A `Sink` of the shared informer (`clawhost_api.kube.Informer`), which is also its `clock`: how long since
    the directory was last known to match the cluster.
    """

    def __init__(self) -> None:
        self._by_hash: dict[str, CustomerAuth] = {}
        self._by_name: dict[str, str] = {}
        self._lock = threading.Lock()
        self.synced = threading.Event()
        self.clock: SyncClock | None = None  # None: filled by hand (benchmarks), never stale

    def seconds_since_sync(self) -> float:
        return self.clock.seconds_since_sync() if self.clock is not None else 0.0

    def listed(self, items: list[dict[str, Any]], resource_version: str) -> None:
        self.replace_all(items)

    def changed(self, event: str, obj: dict[str, Any]) -> None:
        if event == "DELETED":
            self.remove(obj["metadata"]["name"])
        else:
            self.upsert(obj)

    def upsert(self, customer: dict[str, Any]) -> None:
        entry = _entry(customer)
        name = customer["metadata"]["name"]
        with self._lock:
            old = self._by_name.pop(name, None)
            if old is not None:
                self._by_hash.pop(old, None)
            if entry is not None:
                self._by_hash[entry.token_hash] = entry
                self._by_name[name] = entry.token_hash

    def remove(self, name: str) -> None:
        with self._lock:
            old = self._by_name.pop(name, None)
            if old is not None:
                self._by_hash.pop(old, None)

    def replace_all(self, customers: list[dict[str, Any]]) -> None:
        entries = [e for e in (_entry(c) for c in customers) if e is not None]
        with self._lock:
            self._by_hash = {e.token_hash: e for e in entries}
            self._by_name = {e.name: e.token_hash for e in entries}
        self.synced.set()

    def authenticate(self, token: str) -> CustomerAuth | None:
        """Only the token's hash is looked up; the final comparison is constant-time."""
        presented = hash_proxy_token(token)
        entry = self._by_hash.get(presented)
        if entry is None or not hmac.compare_digest(entry.token_hash, presented):
            return None
        return entry

    @staticmethod
    def serves(entry: CustomerAuth) -> bool:
        return entry.phase in _SERVED_PHASES
