"""Monthly token limits: reserve before forwarding, settle after, atomically in Redis (one Lua call each).

Why usage can never pass the limit under any concurrency: a request reserves an upper bound of
what it can cost (prompt bytes are an upper bound of prompt tokens, plus the completion cap we
forward upstream), clamped to what is left; the completion cap sent upstream is cut to fit the
grant. Reservations and settlements are single Lua scripts, so no two requests ever see the
same "remaining".

Settling also appends the request's ledger row to a Redis stream in the same script, so the
usage correction and the ledger entry land together or not at all (see `ledger.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

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
# KEYS[1] counter, KEYS[2] ledger stream; ARGV: granted, actual (<= granted by construction), ledger row.
# Returns used after.
_SETTLE = """
local used = redis.call('INCRBY', KEYS[1], tonumber(ARGV[2]) - tonumber(ARGV[1]))
redis.call('XADD', KEYS[2], '*', 'row', ARGV[3])
return used
"""
RETAIN_AFTER_PERIOD_SECONDS = 90 * 24 * 3600


@dataclass(frozen=True)
class Reservation:
    key: str
    granted: int
    used_after: int
    limit: int


class TokenLimiter:
    def __init__(self, client: PipelinedRedis, ledger_stream: str) -> None:
        self._client = client
        self.ledger_stream = ledger_stream
        self._reserve = Script(client, _RESERVE)
        self._settle = Script(client, _SETTLE)

    @staticmethod
    def period(customer: CustomerAuth, now: datetime | None = None) -> UsagePeriod:
        return usage_period(customer.billing, now)

    async def reserve(self, customer: CustomerAuth, wanted: int, minimum: int, limit: int) -> Reservation | None:
        period = self.period(customer)
        key = usage_counter_key(customer.name, period)
        ttl = int((period.end - datetime.now(UTC)).total_seconds()) + RETAIN_AFTER_PERIOD_SECONDS
        granted, used = await self._reserve([key], [wanted, limit, minimum, ttl])
        if int(granted) == 0:
            return None
        return Reservation(key, int(granted), int(used), limit)

    async def close(self) -> None:
        await self._client.close()

    async def settle(self, reservation: Reservation, actual: int, entry: LedgerEntry) -> int:
        """Give back what the request did not use and append its ledger row, in one atomic step."""
        charged = min(actual, reservation.granted)
        return int(
            await self._settle([reservation.key, self.ledger_stream], [reservation.granted, charged, entry.encode()])
        )
