"""The frames of /ws/onboarding this API reads and writes (onboarding/PROTOCOL.md is the whole protocol).

Browser frames are parsed into these models and only the models are forwarded, so a field the browser adds (a
`user_id`, a `client_ip`) never reaches the onboarding service: those are this API's to set.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from clawhost_api.onboarding import OnboardingResult
from clawhost_control_api.api.routes.agent import AgentSettings, check_bot_token


class _Frame(BaseModel):
    model_config = ConfigDict(extra="ignore")  # fields not listed are ignored (the protocol's rule)


class Hello(_Frame):
    type: Literal["hello"]
    session_id: str | None = Field(default=None, max_length=200)
    language: str | None = Field(default=None, max_length=35)
    access_token: str | None = Field(default=None, max_length=8192)


class Message(_Frame):
    type: Literal["message"]
    text: str


class Retry(_Frame):
    type: Literal["retry"]


class Authenticate(_Frame):
    type: Literal["authenticate"]
    access_token: str = Field(max_length=8192)


BrowserFrame = Annotated[Hello | Message | Retry | Authenticate, Field(discriminator="type")]
BROWSER_FRAME: TypeAdapter[BrowserFrame] = TypeAdapter(BrowserFrame)

# What the onboarding service may send that reaches the browser; anything else (its `result` above all) stays here.
TO_BROWSER = frozenset({"session", "typing", "delta", "reply", "sign_in_required", "checkout", "provisioning", "error"})

_BOT_USERNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{3,31}$")


class OnboardedAgent(AgentSettings):
    """POST /agent's body as the chat gathered it; `bot_token` is None once the service dropped it (Secret written)."""

    bot_token: str | None = Field(default=None, max_length=100)

    _token = field_validator("bot_token")(check_bot_token)


class ResultFrame(_Frame):
    """The service's `result`, in the type it builds it with (clawhost_api.onboarding)."""

    type: Literal["result"]
    session_id: str = Field(min_length=1, max_length=200)
    user_id: str | None = None
    result: OnboardingResult

    @field_validator("result")
    @classmethod
    def _username(cls, value: OnboardingResult) -> OnboardingResult:
        if not _BOT_USERNAME.match(value.bot_username):
            raise ValueError("not a Telegram bot username")
        return value

    def agent(self) -> OnboardedAgent:
        """As POST /agent's body is checked (tier, ids, model, thinking, heartbeat, token format); ValidationError."""
        return OnboardedAgent.model_validate(self.result.agent.model_dump())


def error(code: str, message: str, retryable: bool) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, "retryable": retryable}
