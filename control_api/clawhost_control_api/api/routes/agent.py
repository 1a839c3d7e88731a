"""Dashboard routes: the signed-in user's one agent (a Customer), read from the watch cache, changed by SSA."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel, Field, field_validator, model_validator

from clawhost_api import heartbeat
from clawhost_api.customer import Customer, HeartbeatSpec, namespace_for
from clawhost_api.entitlement import effective_tier, entitlement
from clawhost_api.kube import KubeError
from clawhost_api.tiers import ThinkingLevel, Tier, TierName, get_tier
from clawhost_control_api.api.deps import CurrentUser, Kube, State
from clawhost_control_api.api.errors import responses
from clawhost_control_api.api.state import AppState
from clawhost_control_api.db import accounts
from clawhost_control_api.kube.client import API_MANAGER, DASHBOARD_MANAGER, KubeClient

router = APIRouter(tags=["agent"])

_BOT_TOKEN = re.compile(r"^\d{5,12}:[A-Za-z0-9_-]{30,64}$")
BOT_TOKEN_KEY = "token"  # noqa: S105 - the key's name inside the Secret

# Telegram user ids are positive and fit in 52 bits; the CRD stores them as int64.
TelegramId = Annotated[int, Field(gt=0, lt=2**63)]
TelegramIds = Annotated[list[TelegramId], Field(min_length=1, max_length=10)]


def _distinct(ids: list[int] | None) -> list[int] | None:
    if ids is not None and len(set(ids)) != len(ids):
        raise ValueError("Telegram user ids must be distinct")
    return ids


class ActiveHours(BaseModel):
    start: str = Field(description="HH:MM, the window's start (inclusive).", examples=["08:00"])
    end: str = Field(description="HH:MM, the window's end (exclusive; 24:00 is midnight).", examples=["22:00"])
    timezone: str | None = Field(default=None, description="IANA time zone, e.g. Europe/Berlin; default UTC.")

    _start = field_validator("start")(heartbeat.check_start)
    _end = field_validator("end")(heartbeat.check_end)
    _timezone = field_validator("timezone")(heartbeat.check_timezone)

    @model_validator(mode="after")
    def _not_empty(self) -> ActiveHours:
        heartbeat.check_window(self.start, self.end)
        return self


class HeartbeatSettings(BaseModel):
    """Turns the agent takes on its own (to follow up, check HEARTBEAT.md): each is a model call on your allowance."""

    every: str = Field(
        default=heartbeat.OFF,
        description=f"How often: like 30m or 2h, from {heartbeat.MIN_MINUTES}m to {heartbeat.MAX_MINUTES // 60}h; "
        "0m turns it off (the default).",
        examples=["2h"],
    )
    light_context: bool = Field(default=True, description="Only HEARTBEAT.md of the workspace files (cheaper).")
    isolated_session: bool = Field(default=True, description="A fresh session each time, no history (cheaper).")
    active_hours: ActiveHours | None = Field(default=None, description="Only inside this daily window.")

    _every = field_validator("every")(heartbeat.check_interval)

    def to_spec(self) -> dict[str, Any]:
        """As the Customer's spec.heartbeat (camelCase, every field: the dashboard owns them all)."""
        return HeartbeatSpec.model_validate(self.model_dump()).model_dump(by_alias=True, exclude_none=True)


class HeartbeatView(HeartbeatSettings):
    estimated_monthly_tokens: int = Field(
        description="What the heartbeat alone would spend in 30 days: full context "
        f"{heartbeat.FULL_CONTEXT_PROMPT_TOKENS:,} prompt tokens a turn (measured), light context "
        f"{heartbeat.LIGHT_CONTEXT_PROMPT_TOKENS:,} (assumed), {heartbeat.COMPLETION_TOKENS} completion tokens "
        "(assumed); without an isolated session the conversation history comes on top."
    )
    share_of_allowance: float = Field(description="That estimate as a fraction of the plan's monthly tokens.")


def check_bot_token(value: str | None) -> str | None:
    if value is not None and not _BOT_TOKEN.match(value):
        raise ValueError("not a Telegram bot token (expected <digits>:<secret>)")
    return value


class AgentSettings(BaseModel):
    """What a new agent is, but its bot token: the one shape both POST /agent and the onboarding chat create from."""

    tier: TierName
    allowed_user_ids: TelegramIds
    model: str | None = Field(default=None, max_length=100)
    thinking: ThinkingLevel | None = None
    heartbeat: HeartbeatSettings | None = Field(default=None, description="Off unless given.")

    _ids = field_validator("allowed_user_ids")(_distinct)


class AgentCreate(AgentSettings):
    bot_token: str = Field(max_length=100, description="Telegram bot token from @BotFather.")

    _token = field_validator("bot_token")(check_bot_token)


class AgentUpdate(BaseModel):
    allowed_user_ids: TelegramIds | None = None
    model: str | None = Field(default=None, max_length=100)
    thinking: ThinkingLevel | None = None
    suspend: bool | None = Field(
        default=None,
        description="true suspends the agent (scaled to zero); false resumes it (409 if the platform suspended it).",
    )
    heartbeat: HeartbeatSettings | None = Field(default=None, description="Replaces the heartbeat settings whole.")

    _ids = field_validator("allowed_user_ids")(_distinct)


class BotTokenUpdate(BaseModel):
    bot_token: str = Field(max_length=100)

    _token = field_validator("bot_token")(check_bot_token)


class AgentView(BaseModel):
    name: str
    phase: str | None
    ready: bool
    reason: str | None
    namespace: str
    tier: TierName = Field(description="The plan chosen (spec.tier).")
    effective_tier: TierName = Field(description="The plan that runs: never more than the one paid for.")
    suspended: bool
    suspended_by: list[Literal["you", "platform"]] = Field(
        description="Who suspended it: you (from the dashboard) and/or the platform (only it can resume that)."
    )
    allowed_user_ids: list[int] = Field(description="Every Telegram user id of the agent's allowlist, as saved.")
    active_user_ids: list[int] = Field(description="Those the effective plan lets talk to the agent (the first ones).")
    inactive_user_ids: list[int] = Field(
        description="Those beyond the effective plan's allowance: saved, but the agent does not answer them."
    )
    model: str = Field(description="The model that runs (the plan's default when the chosen one is not offered).")
    thinking: ThinkingLevel = Field(description="The thinking level that runs (at most the plan's).")
    heartbeat: HeartbeatView
    billing_mode: str
    billing_state: str | None
    paid_tier: TierName | None
    current_period_end: datetime | None


def _check_against_tier(tier: Tier, ids: list[int] | None, model: str | None, thinking: ThinkingLevel | None) -> None:
    problems = []
    if ids is not None and len(ids) > tier.telegram_users_max:
        problems.append(f"the {tier.name} tier allows at most {tier.telegram_users_max} Telegram user(s)")
    if ids is not None and any(i <= 0 for i in ids):
        problems.append("Telegram user ids are positive numbers")
    if model is not None and model not in tier.models:
        problems.append(f"model must be one of {', '.join(tier.models)} on the {tier.name} tier")
    if thinking is not None and not tier.allows_thinking(thinking):
        problems.append(f"thinking level at most {tier.thinking} on the {tier.name} tier")
    if problems:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="; ".join(problems))


def _suspended_by(by_dashboard: bool, by_platform: bool) -> list[Literal["you", "platform"]]:
    who: list[Literal["you", "platform"]] = []
    if by_dashboard:
        who.append("you")
    if by_platform:
        who.append("platform")
    return who


def view_of(raw: dict[str, Any]) -> AgentView:
    customer = Customer.model_validate(raw)
    spec, st = customer.spec, customer.status
    billing = st.billing
    entitled = entitlement(spec, billing)
    ready = next((c for c in st.conditions if c.type == "Ready"), None)
    return AgentView(
        name=customer.metadata.name,
        phase=st.phase,
        ready=ready is not None and ready.status == "True",
        reason=ready.reason if ready is not None and ready.status != "True" else None,
        namespace=st.namespace or namespace_for(customer.metadata.name),
        tier=spec.tier,
        effective_tier=entitled.tier.name,
        suspended=spec.suspend or spec.dashboard_suspend,
        suspended_by=_suspended_by(spec.dashboard_suspend, spec.suspend),
        allowed_user_ids=spec.telegram.allowed_user_ids,
        active_user_ids=list(entitled.active_telegram_ids),
        inactive_user_ids=list(entitled.inactive_telegram_ids),
        model=entitled.model,
        thinking=entitled.thinking,
        heartbeat=_heartbeat_view(spec.heartbeat, entitled.tier),
        billing_mode=spec.billing.mode,
        billing_state=billing.state if billing else None,
        paid_tier=billing.paid_tier if billing else None,
        current_period_end=billing.current_period_end if billing else None,
    )


def _heartbeat_view(spec: HeartbeatSpec, tier: Tier) -> HeartbeatView:
    window = spec.active_hours
    tokens = heartbeat.estimated_monthly_tokens(
        spec.every, spec.light_context, (window.start, window.end) if window else None
    )
    return HeartbeatView(
        every=spec.every,
        light_context=spec.light_context,
        isolated_session=spec.isolated_session,
        active_hours=ActiveHours(start=window.start, end=window.end, timezone=window.timezone) if window else None,
        estimated_monthly_tokens=tokens,
        share_of_allowance=round(tokens / tier.monthly_tokens, 3),
    )


def refused(error: KubeError, what: str) -> HTTPException:
    """The API server's verdict as a client error when it judged the input, else a gateway error."""
    if error.status in (400, 422):
        return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"the cluster refused: {error.message}")
    if error.status == 409:
        return HTTPException(status.HTTP_409_CONFLICT, detail="the agent changed meanwhile; retry")
    if error.unreachable:
        return HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"could not reach the cluster to {what}; retry"
        )
    return HTTPException(status.HTTP_502_BAD_GATEWAY, detail=f"the cluster refused to {what}")


def _nothing_created(error: KubeError) -> bool:
    """The API server answered and refused: no write of that request happened. (No answer, or a 5xx: unknown.)"""
    return 400 <= error.status < 500


async def _customer_exists(kube: KubeClient, name: str) -> bool:
    try:
        await kube.get_customer(name)
    except KubeError as error:
        if error.status == 404:
            return False
        raise refused(error, "look up your agent") from None
    return True


def owned_customer(state: State, user: accounts.User) -> dict[str, Any]:
    if user.customer_name is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="you have no agent yet")
    raw = state.cache.get(user.customer_name) if state.cache is not None else None
    if raw is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="your agent is not known to the cluster (yet)")
    return raw


AGENT_ERRORS = responses(400, 401, 404, 409, 422, 502, 503)


async def create_agent_customer(
    body: AgentSettings,
    bot_token: str | None,
    user: accounts.User,
    state: AppState,
    kube: KubeClient,
    reserved_name: str | None = None,
) -> dict[str, Any]:
    """Create the user's one agent: the one way an agent comes to be (POST /agent and the onboarding chat).

    The user's link to a Customer name is written first, as a reservation (one agent per user, atomically);
    it is an agent once that Customer exists. A call that finds a reservation whose Customer does not exist (an
    earlier call lost the API server, or its process died in between) creates the Customer under that name.
    `reserved_name` is the name a caller chose beforehand (the chat keeps it with its session, so a repeated
    result resumes the same agent); any other link of the user is an agent that exists already: 409.
    `bot_token` None: the Secret holds it already (written by an earlier call for this name).
    """
    _check_against_tier(get_tier(body.tier), body.allowed_user_ids, body.model, body.thinking)
    resumed = user.customer_name is not None
    if user.customer_name is not None:
        if reserved_name not in (None, user.customer_name) or await _customer_exists(kube, user.customer_name):
            raise HTTPException(status.HTTP_409_CONFLICT, detail="you already have an agent")
        name = user.customer_name
    else:
        name = reserved_name or f"c{uuid.uuid4().hex[:12]}"
        if not await accounts.link_customer(state.pool, user.id, name):
            raise HTTPException(status.HTTP_409_CONFLICT, detail="you already have an agent")
    secret = f"bot-{name}"
    agent: dict[str, Any] = {}
    if body.model:
        agent["model"] = body.model
    if body.thinking:
        agent["thinking"] = body.thinking
    customer = {
        "apiVersion": "clawhost.dev/v1alpha1",
        "kind": "Customer",
        "metadata": {"name": name},
        "spec": {
            "tier": body.tier,
            "telegram": {
                "botTokenSecretRef": {"name": secret, "key": BOT_TOKEN_KEY},
                "allowedUserIds": body.allowed_user_ids,
            },
            "agent": agent,
            "heartbeat": (body.heartbeat or HeartbeatSettings()).to_spec(),
            "billing": {"mode": "stripe"},
        },
    }
    try:
        if bot_token is not None:
            await kube.apply_bot_token_secret(secret, BOT_TOKEN_KEY, bot_token)
        created = await kube.create_customer(customer)
    except KubeError as error:
        if error.status == 409 and resumed:  # a concurrent retry created it first
            raise HTTPException(status.HTTP_409_CONFLICT, detail="you already have an agent") from None
        if _nothing_created(error):
            await accounts.unlink_customer(state.pool, user.id, name)
        # Otherwise the Customer may exist or not: the reservation stays, and a retry finds out which.
        raise refused(error, "create the agent") from None
    if state.cache is not None:
        state.cache.remember(created)
    return created


@router.post("/agent", status_code=status.HTTP_201_CREATED, responses=AGENT_ERRORS)
async def create_agent(body: AgentCreate, user: CurrentUser, state: State, kube: Kube) -> AgentView:
    """Create the user's one agent (one per account; the bot token goes into its own Secret, never the Customer)."""
    return view_of(await create_agent_customer(body, body.bot_token, user, state, kube))


@router.get("/agent", responses=responses(401, 404))
async def read_agent(user: CurrentUser, state: State) -> AgentView:
    return view_of(owned_customer(state, user))


@router.patch("/agent", responses=AGENT_ERRORS)
async def update_agent(body: AgentUpdate, user: CurrentUser, state: State, kube: Kube) -> AgentView:
    raw = owned_customer(state, user)
    current = Customer.model_validate(raw)
    # Against what is paid for, not only what the spec says: a plan chosen but not paid allows no more.
    tier = get_tier(effective_tier(current.spec, current.status.billing))
    _check_against_tier(tier, body.allowed_user_ids, body.model, body.thinking)
    # The dashboard manager always applies the complete set of user-owned fields, so a partial
    # change never drops another one (server-side apply removes fields a manager stops sending).
    ids = body.allowed_user_ids if body.allowed_user_ids is not None else current.spec.telegram.allowed_user_ids
    model = body.model if body.model is not None else current.spec.agent.model
    thinking = body.thinking if body.thinking is not None else current.spec.agent.thinking
    # spec.suspend is the platform's switch (a person with kubectl, GitOps); the dashboard owns only
    # spec.dashboardSuspend, so its apply can never take the platform's suspension over.
    if body.suspend is False and current.spec.suspend:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail="this agent was suspended by the platform, not from the dashboard: contact support to resume it",
        )
    suspend = body.suspend if body.suspend is not None else current.spec.dashboard_suspend
    agent: dict[str, Any] = {}
    if model:
        agent["model"] = model
    if thinking:
        agent["thinking"] = thinking
    beat = body.heartbeat.to_spec() if body.heartbeat is not None else _spec_heartbeat(current)
    spec: dict[str, Any] = {"telegram": {"allowedUserIds": ids}, "dashboardSuspend": suspend, "heartbeat": beat}
    if agent:
        spec["agent"] = agent
    try:
        updated = await kube.apply_customer(current.metadata.name, {"spec": spec}, DASHBOARD_MANAGER)
    except KubeError as error:
        raise refused(error, "change the agent") from None
    if state.cache is not None:
        state.cache.remember(updated)
    return view_of(updated)


def _spec_heartbeat(current: Customer) -> dict[str, Any]:
    return current.spec.heartbeat.model_dump(by_alias=True, exclude_none=True)


@router.put("/agent/bot-token", status_code=status.HTTP_204_NO_CONTENT, responses=AGENT_ERRORS)
async def update_bot_token(body: BotTokenUpdate, user: CurrentUser, state: State, kube: Kube) -> Response:
    current = Customer.model_validate(owned_customer(state, user))
    ref = current.spec.telegram.bot_token_secret_ref
    try:
        await kube.apply_bot_token_secret(ref.name, ref.key, body.bot_token)
    except KubeError as error:
        # Never echo the API server's words here: they could quote the Secret.
        code = status.HTTP_422_UNPROCESSABLE_CONTENT if error.status in (400, 422) else status.HTTP_502_BAD_GATEWAY
        raise HTTPException(code, detail="the cluster refused to store the token") from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


__all__ = ["API_MANAGER", "router"]
