"""The dashboard's live stream: the agent's state, usage and the platform's health as Server-Sent Events.

It waits on the Customer cache's change notices (no request to the API server, no polling of the cache), sends an
`agent` event whenever what the page shows of the agent changes, a `usage` event when the usage counter moves (one
Redis GET per `dashboard_usage_seconds`), and a `health` event when the cluster's or the usage store's reachability
changes. A comment line keeps idle connections open through proxies; on each one the session is checked again, so
a logout ends the stream. The stream ends when the access token expires: the page refreshes it and reconnects.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import orjson

from clawhost_api.customer import Customer
from clawhost_api.entitlement import effective_tier
from clawhost_api.usage import usage_period
from clawhost_control_api.api.routes.agent import AgentView, view_of
from clawhost_control_api.api.routes.usage import Usage, UsageUnavailableError, tokens_used, usage_of
from clawhost_control_api.api.state import AppState
from clawhost_control_api.dashboard.agent_status import NO_AGENT, NOT_IN_CLUSTER, AgentFacts, AgentStatus, describe
from clawhost_control_api.dashboard.plan_words import plan_words, setting_choices
from clawhost_control_api.dashboard.usage_chart import ChartDay, render_usage_chart
from clawhost_control_api.dashboard.usage_gauge import usage_gauge
from clawhost_control_api.db import accounts
from clawhost_control_api.kube.cache import CustomerCache
from clawhost_control_api.kube.changes import ChangeNotice

# The proxy counts a request in Redis at once and writes its ledger row to PostgreSQL a moment later (a busy
# machine or a PostgreSQL restart can make that moment long). So after the counter moves, the per-day rows are read
# again on every tick until they add up to the counter, for at most this long after the last move (a counter set by
# hand, or rows lost, never catches up; the rows are read again at the next move).
LEDGER_CATCH_UP_SECONDS = 60.0

CLUSTER_DOWN = (
    "We cannot reach the cluster right now, so what you see here may be out of date. Your agent keeps running; "
    "changes you make may fail until it is back. This page updates by itself when it is."
)
USAGE_DOWN = (
    "Usage figures cannot be read right now. While this lasts your agent may not be able to answer; "
    "it recovers by itself and nothing you saved is lost."
)


def sse(event: str, data: object) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def facts_of(view: AgentView) -> AgentFacts:
    return AgentFacts(
        phase=view.phase,
        ready=view.ready,
        reason=view.reason,
        suspended_by=tuple(view.suspended_by),
        billing_mode=view.billing_mode,
        billing_state=view.billing_state,
    )


def agent_payload(user: accounts.User, cache: CustomerCache | None) -> dict[str, Any]:
    """What the page shows of the agent: its view (GET /agent) and the words for its state."""
    if user.customer_name is None:
        return {"agent": None, "status": asdict(NO_AGENT)}
    raw = cache.get(user.customer_name) if cache is not None else None
    if raw is None:
        return {"agent": None, "status": asdict(NOT_IN_CLUSTER)}
    view = view_of(raw)
    status: AgentStatus = describe(facts_of(view))
    billed = view.billing_mode == "stripe"
    plan = plan_words(view.tier, view.effective_tier, view.paid_tier, billed, view.current_period_end)
    return {
        "agent": view.model_dump(mode="json"),
        "status": asdict(status),
        "plan": asdict(plan),
        "choices": asdict(setting_choices(view.effective_tier)),
    }


def usage_payload(usage: Usage, now: datetime | None = None) -> dict[str, Any]:
    """The usage figures with the gauge's words and the chart's SVG, drawn here so the page needs no chart code."""
    moment = now or datetime.now(UTC)
    gauge = usage_gauge(usage.tokens_used, usage.tokens_limit, usage.period_end, moment)
    series = [ChartDay(d.day, d.charged_tokens) for d in usage.days]
    return {
        "usage": usage.model_dump(mode="json"),
        "gauge": asdict(gauge),
        "chart_svg": render_usage_chart(series, usage.period_start, usage.period_end, moment.date()),
    }


def health_payload(cluster: bool, usage: bool) -> dict[str, Any]:
    problems = [text for ok, text in ((cluster, CLUSTER_DOWN), (usage, USAGE_DOWN)) if not ok]
    return {"cluster": cluster, "usage": usage, "messages": problems}


class _UsageWatch:
    """The usage part of one stream: reads the counter each tick, the per-day rows when it moved until they match it."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.counter: tuple[str, str, int] | None = None
        self.sent: dict[str, Any] | None = None
        self.catch_up_until = 0.0  # time.monotonic() until which lagging per-day rows are read again
        self.ledger_total = 0  # the charged tokens of the per-day rows last read
        self.reachable = True

    def _ledger_caught_up(self) -> bool:
        """Whether the per-day rows last read add up to the counter (the rows written so far, all of them)."""
        return self.counter is not None and self.ledger_total >= self.counter[2]

    async def tick(self, raw: dict[str, Any] | None) -> dict[str, Any] | None:
        """The payload to send, or None when nothing changed (or there is no agent to read usage for)."""
        if raw is None:
            return None
        customer = Customer.model_validate(raw)
        try:
            # The period (a payment opens one) and the tier (its limit) matter as much as the count.
            counter = (
                usage_period(customer.status.billing).key,
                effective_tier(customer.spec, customer.status.billing),
                await tokens_used(self.state, customer),
            )
            now = time.monotonic()
            if counter != self.counter:
                self.counter, self.catch_up_until = counter, now + LEDGER_CATCH_UP_SECONDS
            elif self.sent is not None and (now >= self.catch_up_until or self._ledger_caught_up()):
                self.reachable = True
                return None
            usage = await usage_of(self.state, customer)
            self.ledger_total = sum(day.charged_tokens for day in usage.days)
            payload = usage_payload(usage)
        except UsageUnavailableError:
            self.reachable = False
            return None
        self.reachable = True
        if payload == self.sent:
            return None
        self.sent = payload
        return payload


@contextmanager
def _listening(cache: CustomerCache | None, name: str | None) -> Iterator[ChangeNotice | None]:
    if cache is None or name is None:
        yield None
        return
    with cache.feed.listen(name) as notice:
        yield notice


async def agent_events(
    state: AppState, user: accounts.User, session_id: str, expires_at: datetime
) -> AsyncIterator[bytes]:
    """The event stream of one signed-in page, until the access token expires or the session is revoked."""
    settings = state.settings
    cache = state.cache
    yield b"retry: 2000\n\n"  # EventSource's reconnect delay, should the page use one
    usage = _UsageWatch(state)
    sent_agent: dict[str, Any] | None = None
    sent_health: dict[str, Any] | None = None
    next_usage = next_check = time.monotonic()
    while True:
        name = user.customer_name
        with _listening(cache, name) as notice:
            while user.customer_name == name:
                agent = agent_payload(user, cache)
                if agent != sent_agent:
                    sent_agent = agent
                    yield sse("agent", agent)
                now = time.monotonic()
                if now >= next_usage:
                    next_usage = now + settings.dashboard_usage_seconds
                    payload = await usage.tick(cache.get(name) if cache is not None and name else None)
                    if payload is not None:
                        yield sse("usage", payload)
                health = health_payload(cache.reachable if cache is not None else False, usage.reachable)
                if health != sent_health:
                    sent_health = health
                    yield sse("health", health)
                if datetime.now(UTC) >= expires_at:
                    yield sse("expired", {"detail": "your sign-in expired: refresh it and reconnect"})
                    return
                if now >= next_check:
                    next_check = now + settings.dashboard_keepalive_seconds
                    yield b": keep-alive\n\n"
                    fresh = await accounts.session_user(state.pool, uuid.UUID(session_id), user.id)
                    if fresh is None:
                        yield sse("expired", {"detail": "you were signed out"})
                        return
                    user = fresh
                until_expiry = (expires_at - datetime.now(UTC)).total_seconds()
                wait = max(min(next_usage - time.monotonic(), next_check - time.monotonic(), until_expiry), 0.0)
                if notice is not None:
                    await notice.wait(wait)
                else:  # no agent to listen for yet: its link is read again with the session
                    await asyncio.sleep(wait)
