"""The onboarding service's result, as the control API receives it (onboarding/PROTOCOL.md): one type for both ends."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from clawhost_api.tiers import TierName

Activity = Literal["occasional", "daily", "heavy"]
ACTIVITIES: tuple[Activity, ...] = ("occasional", "daily", "heavy")


class AgentRequest(BaseModel):
    """The body of the control API's `POST /agent`, so the agent is created by the one code path."""

    tier: TierName
    bot_token: str | None = Field(description="None once the control API reported the Secret written.")
    allowed_user_ids: list[int] = Field(min_length=1, max_length=10)
    model: str | None = None
    thinking: str | None = None
    heartbeat: dict[str, Any] | None = None


class OnboardingResult(BaseModel):
    """What the conversation gathered. Every field is written by code from a tool's checked arguments, the Bot API's
    answers or the tiers file: the model never produces a price or a billing mode."""

    agent: AgentRequest
    billing_mode: Literal["stripe"] = "stripe"
    price_cents: int
    bot_username: str
    bot_id: int
    telegram_user_first_name: str
    use_case: str
    language: str
    activity: Activity | None
