"""This period's tokens used against the tier's limit (Redis counter) and a per-day series (ledger)."""

from __future__ import annotations

from datetime import date, datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from clawhost_api.customer import Customer
from clawhost_api.tiers import get_tier
from clawhost_api.usage import usage_counter_key, usage_period
from clawhost_control_api.api.deps import CurrentUser, State
from clawhost_control_api.api.errors import responses
from clawhost_control_api.api.routes.agent import owned_customer

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


@router.get("/usage", responses=responses(401, 404))
async def read_usage(user: CurrentUser, state: State) -> Usage:
    customer = Customer.model_validate(owned_customer(state, user))
    period = usage_period(customer.status.billing)
    name = customer.metadata.name
    raw = await state.redis.get(usage_counter_key(name, period))
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
    tier = get_tier(customer.spec.tier)
    return Usage(
        period_start=period.start,
        period_end=period.end,
        tokens_used=int(raw or 0),
        tokens_limit=tier.monthly_tokens,
        cached_prompt_weight=tier.cached_prompt_weight,
        days=[
            DayUsage(
                day=r[0], tokens=int(r[1]), cached_prompt_tokens=int(r[2]), charged_tokens=int(r[3]), requests=int(r[4])
            )
            for r in rows
        ],
    )
