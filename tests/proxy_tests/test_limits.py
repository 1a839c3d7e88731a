"""The limiter's per-customer cache of the usage period: always the key `usage_period` gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from clawhost_api.customer import BillingStatus
from clawhost_api.usage import usage_counter_key, usage_period
from clawhost_proxy.directory import CustomerAuth
from clawhost_proxy.limits import RETAIN_AFTER_PERIOD_SECONDS, TokenLimiter
from clawhost_proxy.resp import PipelinedRedis


def _auth(billing: BillingStatus | None) -> CustomerAuth:
    return CustomerAuth("acme", "starter", "sha256:x", "Running", billing)


def test_counter_key_and_ttl_follow_the_period() -> None:
    limiter = TokenLimiter(PipelinedRedis("redis://127.0.0.1:1/0"), "ledger")  # never connects here
    now = datetime.now(UTC)
    current = BillingStatus(current_period_start=now - timedelta(days=3), current_period_end=now + timedelta(days=27))
    future = BillingStatus(current_period_start=now + timedelta(days=40), current_period_end=now + timedelta(days=70))
    past = BillingStatus(current_period_start=now - timedelta(days=70), current_period_end=now - timedelta(days=40))
    for billing in (None, current, future, past):
        auth = _auth(billing)
        for _ in range(2):  # worked out, then from the cache
            key, ttl = limiter._counter(auth)
            period = usage_period(billing)
            assert key == usage_counter_key("acme", period)
            expected = int((period.end - datetime.now(UTC)).total_seconds()) + RETAIN_AFTER_PERIOD_SECONDS
            assert abs(ttl - expected) <= 1
    # A Customer whose billing changed is a new CustomerAuth: the new period's key at once.
    assert limiter._counter(_auth(current))[0] != limiter._counter(_auth(None))[0]


def test_a_billing_period_that_starts_later_takes_over_when_it_starts() -> None:
    limiter = TokenLimiter(PipelinedRedis("redis://127.0.0.1:1/0"), "ledger")
    now = datetime.now(UTC)
    auth = _auth(
        BillingStatus(current_period_start=now - timedelta(days=1), current_period_end=now + timedelta(days=29))
    )
    # Seen before its period started (a cache entry from then): valid only until that start.
    limiter._periods["acme"] = (
        auth,
        "clawhost:usage:acme:stale",
        (now + timedelta(days=5)).timestamp(),
        now.timestamp(),
    )
    assert limiter._counter(auth)[0] == usage_counter_key("acme", usage_period(auth.billing))
