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
)


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
