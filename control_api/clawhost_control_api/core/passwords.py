"""Password hashing (argon2id) in a bounded pool: at most a few hashes at once, a bounded queue, then 503.

Each argon2id hash with argon2-cffi's defaults holds 64 MiB for its duration, so the number running at
once, not the request rate, is what decides the process's memory. A flood of logins therefore waits
for one of `concurrency` worker threads; beyond `queue` waiting requests it is refused at once with a
`BusyError` (503, Retry-After) instead of queueing without end.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from clawhost_control_api.core.errors import BusyError

_T = TypeVar("_T")
_hasher = PasswordHasher()
HASH_MEMORY_BYTES = _hasher.memory_cost * 1024  # argon2's memory_cost is in KiB


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@cache
def _decoy_hash() -> str:
    return _hasher.hash(uuid.uuid4().hex)


class PasswordHashing:
    """argon2 off the event loop, `concurrency` at a time, at most `queue` more waiting."""

    def __init__(self, concurrency: int, queue: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="argon2")
        self._limit = concurrency + queue
        self._admitted = 0

    async def _run(self, fn: Callable[..., _T], *args: str) -> _T:
        if self._admitted >= self._limit:
            raise BusyError("too many sign-ins at once")
        self._admitted += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self._admitted -= 1

    async def hash(self, password: str) -> str:
        return await self._run(hash_password, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """Verify against `stored_hash`; without one, spend the same time on a decoy (no user-enumeration timing)."""
        if stored_hash is None:
            await self._run(_verify_decoy, password)
            return False
        return await self._run(verify_password, stored_hash, password)

    @property
    def admitted(self) -> int:
        """Hashes running or waiting now."""
        return self._admitted

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _verify_decoy(password: str) -> bool:
    return verify_password(_decoy_hash(), password)
