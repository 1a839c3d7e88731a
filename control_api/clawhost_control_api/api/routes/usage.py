"""This period's tokens used against the tier's limit (Redis counter) and a per-day series (ledger)."""

from __future__ import annotations

from datetime import date, datetime

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from clawhost_api.customer import Customer
from clawhost_api.entitlement import effective_tier
from clawhost_api.tiers import get_tier
from clawhost_api.usage import usage_counter_key, usage_period
from clawhost_control_api.api.deps import CurrentUser, State
from clawhost_control_api.api.errors import responses
from clawhost_control_api.api.routes.agent import owned_customer
from clawhost_control_api.api.state import AppState

router = APIRouter(tags=["usage"])


class DayUsage(BaseModel):
    day: date
    tokens: int = Field(description="Prompt and completion tokens as the model service reported them")
    cached_prompt_tokens: int = Field(description="Of the prompt tokens, those served from the prompt cache")
    charged_tokens: int = Field(description="What the day counted against the limit (cached at the tier's weight)")
    requests: int


class Usage(BaseModel):
    period_start: datetime
    period_end: datetime
    tokens_used: int = Field(description="Counted against the limit this period (cached prompt tokens weighted)")
    tokens_limit: int
    cached_prompt_weight: float = Field(description="What a cached prompt token counts, relative to a fresh one")
    days: list[DayUsage]


USAGE_UNAVAILABLE = (
    "usage figures cannot be read right now (the usage store does not answer); retry in a minute. "
    "Nothing you saved is affected"
)


class UsageUnavailableError(Exception):
    """The proxy's usage store (Redis) did not answer."""


async def tokens_used(state: AppState, customer: Customer) -> int:
    """This period's counter (what the proxy charged so far); UsageUnavailableError when Redis does not answer."""
    try:
        raw = await state.redis.get(usage_counter_key(customer.metadata.name, usage_period(customer.status.billing)))
    except (RedisError, OSError):
        raise UsageUnavailableError from None
    return int(raw or 0)


async def usage_of(state: AppState, customer: Customer) -> Usage:
    period = usage_period(customer.status.billing)
    name = customer.metadata.name
    used = await tokens_used(state, customer)
    async with state.pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT (created_at AT TIME ZONE 'UTC')::date AS day, sum(prompt_tokens + completion_tokens),"
                " sum(cached_prompt_tokens), sum(charged_tokens), count(*)"
                " FROM token_ledger WHERE customer = %s AND created_at >= %s AND created_at < %s"
                " GROUP BY day ORDER BY day",
                (name, period.start, period.end),
            )
        ).fetchall()
    # The allowance of the plan that runs (what the proxy limits by), not of a chosen plan not paid for yet.
    tier = get_tier(effective_tier(customer.spec, customer.status.billing))
    return Usage(
        period_start=period.start,
        period_end=period.end,
        tokens_used=used,
        tokens_limit=tier.monthly_tokens,
        cached_prompt_weight=tier.cached_prompt_weight,
        days=[
            DayUsage(
                day=r[0], tokens=int(r[1]), cached_prompt_tokens=int(r[2]), charged_tokens=int(r[3]), requests=int(r[4])
            )
            for r in rows
        ],
    )


@router.get("/usage", responses=responses(401, 404, 503))
async def read_usage(user: CurrentUser, state: State) -> Usage:
    customer = Customer.model_validate(owned_customer(state, user))
    try:
        return await usage_of(state, customer)
    except UsageUnavailableError:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=USAGE_UNAVAILABLE) from None
