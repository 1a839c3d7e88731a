"""Pauses between retries after a failure, the same for every loop that retries (watches, the ledger flusher)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Pauses after consecutive failures: first, doubled each time, at most limit (with 20% jitter, so that many
    clients failing together do not retry together)."""

    first: float = 1.0
    limit: float = 16.0

    def delays(self) -> Iterator[float]:
        delay = self.first
        while True:
            yield delay * random.uniform(0.8, 1.0)  # noqa: S311 - spreading retries, not a secret
            delay = min(delay * 2, self.limit)
