"""Usage periods and where usage lives (Redis counter keys, PostgreSQL ledger), shared by proxy and billing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from clawhost_api.customer import BillingStatus

REDIS_PREFIX = "clawhost"

# The ledger: one row per request, written by the proxy, read by the control API's usage route.
# Its DDL is the control API's migrations' (the platform database's one migration runner); these
# are the columns the proxy writes and checks for at start.
LEDGER_TABLE = "token_ledger"
LEDGER_COLUMNS = (
    "id",
    "request_id",
    "customer",
    "tier",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "status",
    "estimated",
    "created_at",
    "cached_prompt_tokens",
    "charged_tokens",
)


def charged_tokens(prompt: int, completion: int, cached_prompt: int, cached_prompt_weight: float) -> int:
    """What a request counts against the monthly limit: cached prompt tokens at the tier's weight (rounded up).

    `cached_prompt` is part of `prompt` (as the upstreams report it); the weight is at most 1, so the
    charge never exceeds `prompt + completion` and the reservation's bound still holds.
    """
    cached = min(cached_prompt, prompt)
    per_10k = round(cached_prompt_weight * 10_000)  # in integers: 0.1 x 30 is 3, not 3.0000000000000004
    return prompt - cached - (-cached * per_10k // 10_000) + completion


@dataclass(frozen=True)
class UsagePeriod:
    """The window a monthly token limit applies to."""

    start: datetime
    end: datetime

    @property
    def key(self) -> str:
        return self.start.strftime("%Y%m%dT%H%M%SZ")


def _calendar_month(now: datetime) -> UsagePeriod:
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    end = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    return UsagePeriod(start, end)


def usage_period(billing: BillingStatus | None, now: datetime | None = None) -> UsagePeriod:
    """The Stripe billing period when status.billing gives one that contains `now`, else the calendar month (UTC).

    A new period is a new key, so a paid invoice opening a period resets the counter exactly once,
    and a retried webhook or a mid-period payment never does.
    """
    moment = now or datetime.now(UTC)
    if billing and billing.current_period_start and billing.current_period_end:
        start = billing.current_period_start.astimezone(UTC)
        end = billing.current_period_end.astimezone(UTC)
        if start <= moment < end:
            return UsagePeriod(start, end)
    return _calendar_month(moment)


def usage_counter_key(customer: str, period: UsagePeriod) -> str:
    """Redis key of the tokens counted for `customer` in `period`."""
    return f"{REDIS_PREFIX}:usage:{customer}:{period.key}"
