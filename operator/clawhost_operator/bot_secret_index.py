"""Which Customers read their bot token from which Secret, so a changed Secret queues exactly those customers."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any


def bot_secret_name(spec: Mapping[str, Any]) -> str:
    return str(((spec.get("telegram") or {}).get("botTokenSecretRef") or {}).get("name", ""))


class BotSecretIndex:
    """Customer name → Secret name and back; updated by the Customer watch thread, read by the bot-Secret one."""

    def __init__(self) -> None:
        self._secret_of: dict[str, str] = {}
        self._by_secret: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def link(self, customer: str, secret: str | None) -> None:
        """`customer` now reads `secret` (None: the customer is gone)."""
        with self._lock:
            previous = self._secret_of.get(customer)
            if previous == secret:
                return
            if previous is not None:
                names = self._by_secret[previous]
                names.discard(customer)
                if not names:
                    del self._by_secret[previous]
                del self._secret_of[customer]
            if secret is not None:
                self._secret_of[customer] = secret
                self._by_secret.setdefault(secret, set()).add(customer)

    def referring_to(self, secret: str) -> list[str]:
        """The customers whose bot token is in this Secret."""
        with self._lock:
            return sorted(self._by_secret.get(secret, ()))
