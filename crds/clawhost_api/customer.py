"""The Customer resource as typed models: what every service reads and writes, field for field with the CRD."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from clawhost_api import heartbeat
from clawhost_api.tiers import ThinkingLevel, TierName

GROUP = "clawhost.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Customer"
PLURAL = "customers"
SINGULAR = "customer"
SHORT_NAMES = ("cust",)
CATEGORIES = ("clawhost",)

# Where bot-token Secrets live; a Customer names a Secret in this namespace only, so a spec can
# never make the operator read an arbitrary Secret of the cluster.
BOT_TOKEN_NAMESPACE = "clawhost-secrets"  # noqa: S105 - a namespace name, not a secret
PLATFORM_NAMESPACE = "platform"
NAMESPACE_PREFIX = "customer-"

LABEL_CUSTOMER = f"{GROUP}/customer"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
ANNOTATION_ROTATE_TOKEN = f"{GROUP}/rotate-proxy-token"

BillingMode = Literal["stripe", "none"]
# Stripe's subscription statuses, verbatim.
SubscriptionState = Literal[
    "incomplete", "incomplete_expired", "trialing", "active", "past_due", "canceled", "unpaid", "paused"
]
Phase = Literal["AwaitingPayment", "Provisioning", "Running", "Suspended", "Destroyed", "Failed"]
SUBSCRIPTION_STATES: tuple[SubscriptionState, ...] = get_args(SubscriptionState)
PHASES: tuple[Phase, ...] = get_args(Phase)


def namespace_for(customer_name: str) -> str:
    """The namespace that holds one customer's gateway."""
    return f"{NAMESPACE_PREFIX}{customer_name}"


def hash_proxy_token(token: str) -> str:
    """The only form in which a proxy token leaves its Secret: `sha256:<hex>`."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


# The descriptions below are what `kubectl explain customer` prints: the CRD's schema is generated from these models.


class SecretKeyRef(_Model):
    """The Secret (in namespace clawhost-secrets) that holds the Telegram bot token; the token itself never appears
    in a Customer."""

    name: str = Field(min_length=1, max_length=253, description="Name of the Secret in the clawhost-secrets namespace.")
    key: str = Field(
        default="token", min_length=1, max_length=253, description="Key within the Secret whose value is the bot token."
    )


TelegramUserId = Annotated[int, Field(ge=1, description="A Telegram user id (a positive integer).")]


class TelegramSpec(_Model):
    """Telegram channel of the agent."""

    bot_token_secret_ref: SecretKeyRef
    allowed_user_ids: list[TelegramUserId] = Field(
        min_length=1,
        description="Numeric Telegram user ids allowed to message the agent (DM allowlist); how many depends on the "
        "tier.",
    )


class AgentSpec(_Model):
    """How the agent thinks."""

    model: str | None = Field(
        default=None, description="Model id, one of the tier's models; empty means the tier's default."
    )
    thinking: ThinkingLevel | None = Field(
        default=None, description="Thinking level, at most the tier's own; empty means the tier's level."
    )


class ActiveHours(_Model):
    """A daily window (local time of `timezone`) outside which no heartbeat runs."""

    start: str = Field(pattern=heartbeat.CLOCK_PATTERN, description="HH:MM, the window's start (inclusive).")
    end: str = Field(
        pattern=heartbeat.END_PATTERN, description="HH:MM, the window's end (exclusive; 24:00 is midnight)."
    )
    timezone: str | None = Field(
        default=None,
        max_length=64,
        pattern=heartbeat.TIMEZONE_PATTERN,
        description="IANA time zone of the window, e.g. Europe/Berlin; empty means the gateway's (UTC).",
    )

    @model_validator(mode="after")
    def _not_empty(self) -> ActiveHours:
        heartbeat.check_window(self.start, self.end)
        return self


class HeartbeatSpec(_Model):
    """Turns the agent takes on its own, each one a full model call billed to the customer's allowance."""

    every: str = Field(
        default=heartbeat.OFF,
        pattern=heartbeat.EVERY_PATTERN,
        description=f"How often: minutes or hours like 30m or 2h, from {heartbeat.MIN_MINUTES}m to "
        f"{heartbeat.MAX_MINUTES // 60}h; 0m (the default) turns the heartbeat off.",
    )
    light_context: bool = Field(
        default=True, description="Give a heartbeat turn only HEARTBEAT.md of the workspace files (cheaper)."
    )
    isolated_session: bool = Field(
        default=True, description="Run each heartbeat in a fresh session, without the conversation history (cheaper)."
    )
    active_hours: ActiveHours | None = Field(default=None, description="Only run heartbeats inside this daily window.")

    _every = field_validator("every")(heartbeat.check_interval)


class BillingSpec(_Model):
    """How the customer pays. Immutable: to comp a paying customer, create a new Customer."""

    mode: BillingMode = Field(
        default="stripe",
        description="stripe: the gateway runs while the Stripe subscription is in good standing (see status.billing); "
        "none: comped, internal or GitOps-only, runs without Stripe.",
    )


class CustomerSpec(_Model):
    """Desired state of a customer's agent. Owned by git or the dashboard; billing never writes it."""

    tier: TierName = Field(description="Plan: " + ", ".join(get_args(TierName)) + ".")
    telegram: TelegramSpec
    agent: AgentSpec = Field(default_factory=AgentSpec)
    heartbeat: HeartbeatSpec = Field(default_factory=HeartbeatSpec)
    suspend: bool = Field(
        default=False,
        description="The platform's manual switch (kubectl, GitOps): true scales the gateway to zero replicas; "
        "namespace and data are kept. The dashboard never writes it.",
    )
    dashboard_suspend: bool = Field(
        default=False,
        description="The customer's own switch, written only by the dashboard: true suspends like spec.suspend. "
        "The gateway runs only when both are false.",
    )
    billing: BillingSpec = Field(default_factory=BillingSpec)


class Condition(_Model):
    """A standard Kubernetes condition."""

    type: str = Field(description="Ready, Reconciling or Stalled.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="One CamelCase word saying why.")
    message: str = Field(default="", description="Human-readable details.")
    observed_generation: int | None = Field(
        default=None, description="The metadata.generation this condition was computed from."
    )
    last_transition_time: str = Field(
        json_schema_extra={"format": "date-time"}, description="When status last changed."
    )


class BillingStatus(_Model):
    """Stripe facts, written only by the billing webhooks; the operator reads them to decide what runs."""

    customer_id: str | None = Field(default=None, description="Stripe customer id (cus_...).")
    subscription_id: str | None = Field(default=None, description="Stripe subscription id (sub_...).")
    state: SubscriptionState | None = Field(default=None, description="Stripe subscription status.")
    current_period_start: datetime | None = Field(default=None, description="Start of the current billing period.")
    current_period_end: datetime | None = Field(default=None, description="End of the current billing period.")
    paid_tier: TierName | None = Field(default=None, description="The tier the subscription pays for.")
    last_event_at: datetime | None = Field(
        default=None, description="Creation time of the newest Stripe event applied (order safety)."
    )
    last_event_id: str | None = Field(default=None, description="Id of the newest Stripe event applied.")


class ProxyTokenStatus(_Model):
    """The token proxy's view of this customer's credential (never the token itself)."""

    hash: str | None = Field(default=None, description="sha256:<hex> of the current proxy token; empty once revoked.")
    rotated_at: datetime | None = Field(default=None, description="When the token was last issued.")


class AppliedStatus(_Model):
    """What the operator last applied."""

    tier: TierName | None = Field(default=None, description="Effective tier of the running gateway.")
    replicas: int | None = Field(default=None, description="Replicas of the gateway Deployment (0 when suspended).")
    config_hash: str | None = Field(
        default=None, description="Hash of the rendered gateway inputs; a change restarts the pod."
    )
    active_telegram_user_ids: list[TelegramUserId] | None = Field(
        default=None,
        description="The spec's Telegram user ids the effective tier lets talk to the agent (the first ones, in spec "
        "order).",
    )
    inactive_telegram_user_ids: list[TelegramUserId] | None = Field(
        default=None,
        description="The spec's Telegram user ids beyond the effective tier's allowance: kept in the spec, not allowed "
        "to talk to the agent.",
    )


class CustomerStatus(_Model):
    """Observed state, written by the operator (and status.billing by billing)."""

    observed_generation: int | None = Field(
        default=None, description="The metadata.generation the operator last acted on; 0 until it has."
    )
    phase: Phase | None = Field(
        default=None, description="Summary: " + ", ".join(PHASES[:-1]) + " or " + PHASES[-1] + "."
    )
    namespace: str | None = Field(default=None, description="The namespace holding the gateway (customer-<name>).")
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready, Reconciling and Stalled (kstatus conventions)."
    )
    applied: AppliedStatus | None = None
    proxy_token: ProxyTokenStatus | None = None
    billing: BillingStatus | None = None


class ObjectMeta(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    generation: int | None = None
    resourceVersion: str | None = None  # noqa: N815 - Kubernetes' own spelling
    uid: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Customer(BaseModel):
    """A whole Customer object as the API server returns it."""

    model_config = ConfigDict(extra="ignore")

    apiVersion: str = API_VERSION  # noqa: N815
    kind: str = KIND
    metadata: ObjectMeta
    spec: CustomerSpec
    status: CustomerStatus = Field(default_factory=CustomerStatus)
