"""One onboarding conversation as it is kept in Redis: what the user saw, what the model saw, what was gathered."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from clawhost_api.onboarding import Activity
from clawhost_api.tiers import TierName
from clawhost_onboarding.states import State, advance


class Line(BaseModel):
    """One message of the transcript the browser shows (the bot token already replaced)."""

    role: Literal["user", "assistant"]
    text: str


class BotIdentity(BaseModel):
    id: int
    username: str
    first_name: str = ""


class TelegramUser(BaseModel):
    id: int
    first_name: str = ""
    confirmed: bool = False  # the user said "that is me" (or typed the id themselves)


class Gathered(BaseModel):
    """What the conversation has established so far; every field written by code (a tool or the token check)."""

    use_case: str | None = None
    language: str | None = None
    bot: BotIdentity | None = None
    telegram_user: TelegramUser | None = None
    activity: Activity | None = None
    telegram_users: int | None = None
    recommended_tier: TierName | None = None
    tier: TierName | None = None


class Session(BaseModel):
    id: str
    state: State = State.NEW
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    language_hint: str = "en"
    transcript: list[Line] = Field(default_factory=list)
    history: list[dict[str, Any]] = Field(default_factory=list)  # langchain messages_to_dict of what the model saw
    gathered: Gathered = Field(default_factory=Gathered)
    messages_used: int = 0  # user messages accepted
    tokens_used: int = 0  # model tokens (prompt + completion) spent on this session
    pending_reply: bool = False  # the last user message has no complete answer yet (resume or retry answers it)
    complete: bool = False  # the user chose a tier and confirmed: a result can be made
    user_id: str | None = None
    customer_name: str | None = None
    checkout_url: str | None = None
    token_deleted: bool = False  # the control API wrote the Secret; the token is gone from Redis
    provisioning_phase: str | None = None

    @classmethod
    def new(cls, language_hint: str) -> Session:
        return cls(id=secrets.token_urlsafe(24), language_hint=language_hint[:35] or "en")

    def move(self, target: State) -> None:
        self.state = advance(self.state, target)
