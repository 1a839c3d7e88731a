"""The Customer resource as typed models: what every service reads and writes, field for field with the CRD."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

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


def namespace_for(customer_name: str) -> str:
    """The namespace that holds one customer's gateway."""
    return f"{NAMESPACE_PREFIX}{customer_name}"


def hash_proxy_token(token: str) -> str:
    """The only form in which a proxy token leaves its Secret: `sha256:<hex>`."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class SecretKeyRef(_Model):
    """A key of a Secret in the bot-token namespace."""

    name: str = Field(min_length=1, max_length=253, description="Name of the Secret in the clawhost-secrets namespace.")
    key: str = Field(default="token", min_length=1, max_length=253, description="Key within the Secret.")


class TelegramSpec(_Model):
    bot_token_secret_ref: SecretKeyRef = Field(description="The Secret holding the Telegram bot token.")
    allowed_user_ids: list[int] = Field(
        min_length=1, description="Numeric Telegram user ids allowed to talk to the agent (DM allowlist)."
    )


class AgentSpec(_Model):
    model: str | None = Field(default=None, description="Model id; one of the tier's models. Defaults to the tier's.")
    thinking: ThinkingLevel | None = Field(
        default=None, description="Thinking level, at most the tier's. Defaults to the tier's level."
    )


class BillingSpec(_Model):
    mode: BillingMode = Field(
        default="stripe", description="stripe: runs only while the subscription is in good standing; none: comped."
    )


class CustomerSpec(_Model):
    tier: TierName = Field(description="Plan: starter, pro or team.")
    telegram: TelegramSpec
    agent: AgentSpec = Field(default_factory=AgentSpec)
    suspend: bool = Field(default=False, description="Manual switch: true scales the gateway to zero, keeping data.")
    billing: BillingSpec = Field(default_factory=BillingSpec)


class Condition(_Model):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    observed_generation: int | None = None
    last_transition_time: str


class BillingStatus(_Model):
    """Written only by the billing webhooks."""

    customer_id: str | None = None
    subscription_id: str | None = None
    state: SubscriptionState | None = None
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    paid_tier: TierName | None = None
    last_event_at: datetime | None = None
    last_event_id: str | None = None


class ProxyTokenStatus(_Model):
    hash: str | None = None
    rotated_at: datetime | None = None


class AppliedStatus(_Model):
    tier: TierName | None = None
    replicas: int | None = None
    config_hash: str | None = None


class CustomerStatus(_Model):
    observed_generation: int | None = None
    phase: Phase | None = None
    namespace: str | None = None
    conditions: list[Condition] = Field(default_factory=list)
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
