"""Limits: monthly tokens (reserve before serving, settle after, atomically in Redis) and requests per second.

Why usage never passes the limit under any concurrency (with an upstream that honours the cap it
is sent): a request reserves an upper bound of what it can cost (prompt bytes are an upper bound of
prompt tokens, plus the completion cap we forward upstream), clamped to what is left; the one
completion cap sent upstream is cut to fit the grant, and `n` is 1. Reservations and settlements
are single Lua scripts, so no two requests ever see the same "remaining". Settling charges what
the upstream reported, not what was granted: an upstream that ignores the cap is charged in full,
the counter passes the limit by that one response, and every later reservation is refused.

Optimistic (speculative) reservations: when this replica last saw comfortably more left than a
request needs (`limit - last seen usage - this replica's own unsettled reservations >=
SPECULATE_FACTOR x wanted`), the proxy sends the reservation and starts the upstream call at the
same time instead of one after the other, which takes a Redis round trip off the request's path.
Such a reservation is all or nothing (`minimum = wanted`), so when it is granted the completion
cap needs no cut and the request is exactly as if it had reserved first. The client gets no byte
before the grant is in; when it is refused (only possible when other replicas, or requests this
replica has not seen settle, used up the budget meanwhile) the upstream call is cancelled and the
request takes the ordinary path (reserve with clamping, then forward, or 429). The limit
argument above is untouched: the counter still only changes inside the same two scripts, and a
speculative reservation passes the same check. What a lost race costs is one cancelled upstream
call, never usage past the limit. The "last seen usage" is only a hint for choosing the path:
it comes from this replica's latest reserve or settle reply for the customer's period.

Settling also appends the request's ledger row to a Redis stream in the same script, so the
usage correction and the ledger entry land together or not at all (see `ledger.py`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import NoScriptError

from clawhost_api.usage import UsagePeriod, usage_counter_key, usage_period
from clawhost_proxy.directory import CustomerAuth
from clawhost_proxy.ledger import LedgerEntry
from clawhost_proxy.resp import PipelinedRedis, Script

# KEYS[1] counter; ARGV: wanted, limit, minimum, ttl. Returns {granted (0 = refused), used after}.
_RESERVE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local left = tonumber(ARGV[2]) - used
local grant = math.min(tonumber(ARGV[1]), left)
if grant < tonumber(ARGV[3]) then return {0, used} end
used = redis.call('INCRBY', KEYS[1], grant)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return {grant, used}
"""
# KEYS[1] counter, KEYS[2] ledger stream; ARGV: granted, actual (what the upstream reported), ledger row.
# Returns used after: past the limit when the upstream produced more than the cap it was sent.
_SETTLE = """
local used = redis.call('INCRBY', KEYS[1], tonumber(ARGV[2]) - tonumber(ARGV[1]))
redis.call('XADD', KEYS[2], '*', 'row', ARGV[3])
return used
"""
RETAIN_AFTER_PERIOD_SECONDS = 90 * 24 * 3600
# Speculate only when at least this many times the wanted amount looks left (see the module docstring).
SPECULATE_FACTOR = 2


@dataclass(slots=True)
class Reservation:
    customer: str
    key: str
    granted: int
    used_after: int
    limit: int
    held: bool = True  # still counted in this replica's unsettled reservations (see `TokenLimiter.release`)


class TokenLimiter:
    def __init__(self, client: PipelinedRedis, ledger_stream: str) -> None:
        self._client = client
        self.ledger_stream = ledger_stream
        self._reserve = Script(client, _RESERVE)
        self._settle = Script(client, _SETTLE)
        # Hints for choosing the speculative path only, never for the limit itself:
        self._seen: dict[str, tuple[str, int]] = {}  # customer -> (counter key, usage in the latest reply)
        self._held: dict[str, int] = {}  # counter key -> tokens in this replica's unsettled reservations
        # customer -> (the CustomerAuth it was worked out for, counter key, period end, valid until), in epoch seconds
        self._periods: dict[str, tuple[CustomerAuth, str, float, float]] = {}

    @staticmethod
    def period(customer: CustomerAuth, now: datetime | None = None) -> UsagePeriod:
        return usage_period(customer.billing, now)

    def _counter(self, customer: CustomerAuth) -> tuple[str, int]:
        """The customer's counter key for the current period and the TTL it gets.

        Worked out once per customer and period: valid until the period ends, or until a billing
        period that has not started yet starts; a changed Customer is a new CustomerAuth object.
        """
        now = time.time()
        cached = self._periods.get(customer.name)
        if cached is None or cached[0] is not customer or now >= cached[3]:
            period = self.period(customer, datetime.fromtimestamp(now, UTC))
            end = period.end.timestamp()
            valid_until = end
            starts = customer.billing.current_period_start if customer.billing else None
            if starts is not None and starts.timestamp() > now:
                valid_until = min(end, starts.timestamp())
            cached = (customer, usage_counter_key(customer.name, period), end, valid_until)
            self._periods[customer.name] = cached
        return cached[1], int(cached[2] - now) + RETAIN_AFTER_PERIOD_SECONDS

    def _hold(self, key: str, amount: int) -> None:
        self._held[key] = self._held.get(key, 0) + amount

    def _unhold(self, key: str, amount: int) -> None:
        left = self._held.get(key, 0) - amount
        if left > 0:
            self._held[key] = left
        else:
            self._held.pop(key, None)

    def release(self, reservation: Reservation) -> None:
        """The reservation is no longer in flight here (settled, or abandoned after a failure); idempotent."""
        if reservation.held:
            reservation.held = False
            self._unhold(reservation.key, reservation.granted)

    async def reserve(self, customer: CustomerAuth, wanted: int, minimum: int, limit: int) -> Reservation | None:
        key, ttl = self._counter(customer)
        granted, used = await self._reserve([key], [wanted, limit, minimum, ttl])
        return self._reserved(customer.name, key, int(granted), int(used), limit)

    def _reserved(self, customer: str, key: str, granted: int, used: int, limit: int) -> Reservation | None:
        self._seen[customer] = (key, used)
        if granted == 0:
            return None
        self._hold(key, granted)
        return Reservation(customer, key, granted, used, limit)

    def speculate(self, customer: CustomerAuth, wanted: int, limit: int) -> Awaitable[Reservation | None] | None:
        """Send an all-or-nothing reservation of `wanted` now, when this replica saw plenty left; else None.

        The returned awaitable gives the reservation (None: refused) and must be awaited. None is
        also returned when there is no Redis connection at the moment: then nothing is started
        before the ordinary reservation has answered (fail closed, forward nothing).
        """
        key, ttl = self._counter(customer)
        seen = self._seen.get(customer.name)
        if seen is None or seen[0] != key or limit - seen[1] - self._held.get(key, 0) < SPECULATE_FACTOR * wanted:
            return None
        args: list[bytes | str | int] = [wanted, limit, wanted, ttl]
        sent = self._reserve.send([key], args)
        if sent is None:
            return None
        self._hold(key, wanted)  # while in flight, so concurrent requests see it too
        return self._speculated(sent, customer.name, key, args, wanted, limit)

    async def _speculated(
        self, sent: Awaitable[Any], customer: str, key: str, args: list[bytes | str | int], wanted: int, limit: int
    ) -> Reservation | None:
        try:
            try:
                granted, used = await sent
            except NoScriptError:
                granted, used = await self._reserve.load([key], args)
        finally:
            self._unhold(key, wanted)  # `_reserved` holds what was granted
        return self._reserved(customer, key, int(granted), int(used), limit)

    async def close(self) -> None:
        await self._client.close()

    async def settle(self, reservation: Reservation, actual: int, entry: LedgerEntry) -> int:
        """Charge what the request used instead of what it reserved and append its ledger row, in one atomic step.

        `actual` is charged in full even beyond the grant (an upstream that ignored the cap): the
        counter then passes the limit and the next reservation is refused.
        """
        self.release(reservation)
        used = int(
            await self._settle([reservation.key, self.ledger_stream], [reservation.granted, actual, entry.encode()])
        )
        self._seen[reservation.customer] = (reservation.key, used)
        return used


@dataclass
class RateLimiter:
    """Per-customer token bucket of requests per second (per proxy replica): stops runaway loops."""

    rate: float
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def allow(self, customer: str) -> bool:
        now = time.monotonic()
        tokens, last = self.buckets.get(customer, (self.rate, now))
        tokens = min(self.rate, tokens + (now - last) * self.rate)
        if tokens < 1:
            self.buckets[customer] = (tokens, now)
            return False
        self.buckets[customer] = (tokens - 1, now)
        return True
