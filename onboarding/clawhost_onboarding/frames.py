"""The frames of the internal WebSocket (onboarding/PROTOCOL.md), typed at the edge."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from clawhost_onboarding.session import Line
from clawhost_onboarding.states import State


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore")  # a field added by a newer control API is not an error


class Hello(_In):
    type: Literal["hello"]
    session_id: str | None = Field(default=None, max_length=200)
    language: str | None = Field(default=None, max_length=35)  # the browser's hint; null when it sent none
    client_ip: str = Field(default="unknown", max_length=64)
    user_id: str | None = Field(default=None, max_length=100)


class Message(_In):
    type: Literal["message"]
    text: str


class Retry(_In):
    type: Literal["retry"]


class Authenticated(_In):
    type: Literal["authenticated"]
    user_id: str = Field(min_length=1, max_length=100)


class CheckoutCreated(_In):
    type: Literal["checkout_created"]
    customer_name: str = Field(min_length=1, max_length=253)
    url: str = Field(min_length=1, max_length=2000)


class AgentCreationFailed(_In):
    type: Literal["agent_creation_failed"]
    message: str = Field(max_length=1000)
    retryable: bool = True


class SecretWritten(_In):
    type: Literal["secret_written"]


ProvisioningPhase = Literal["payment_received", "starting", "live", "failed"]


class Provisioning(_In):
    type: Literal["provisioning"]
    phase: ProvisioningPhase
    bot_username: str | None = Field(default=None, max_length=64)
    text: str | None = Field(default=None, max_length=2000)  # the control API's words: for `failed`, what went wrong


Incoming = Annotated[
    Hello | Message | Retry | Authenticated | CheckoutCreated | AgentCreationFailed | SecretWritten | Provisioning,
    Field(discriminator="type"),
]
INCOMING: TypeAdapter[Incoming] = TypeAdapter(Incoming)

ErrorCode = Literal[
    "bad_request",
    "rate_limited",
    "session_expired",
    "forbidden",
    "session_message_limit",
    "session_token_limit",
    "upstream_unavailable",
    "internal",
    "agent_creation_failed",
]


def session_frame(
    session_id: str,
    state: State,
    transcript: list[Line],
    checkout_url: str | None,
    bot_username: str | None,
    user_id: str | None,
    customer_name: str | None,
) -> dict[str, Any]:
    return {
        "type": "session",
        "session_id": session_id,
        "state": state.value,
        "transcript": [line.model_dump() for line in transcript],
        "checkout_url": checkout_url,
        "bot_username": bot_username,
        "user_id": user_id,
        "customer_name": customer_name,
    }


def error_frame(code: ErrorCode, message: str, retryable: bool) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, "retryable": retryable}
