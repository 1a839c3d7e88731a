"""What should run for a Customer, decided from its spec and Stripe's facts in status.billing together."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from clawhost_api.customer import BillingStatus, CustomerSpec
from clawhost_api.entitlement import effective_tier
from clawhost_api.tiers import TierName

Action = Literal["run", "suspend", "destroy", "await"]


@dataclass(frozen=True)
class Decision:
    action: Action
    tier: TierName
    reason: str
    message: str

    @property
    def replicas(self) -> int:
        return 1 if self.action == "run" else 0


def decide(spec: CustomerSpec, billing: BillingStatus | None) -> Decision:
    tier = effective_tier(spec, billing)
    if spec.billing.mode == "stripe":
        state = billing.state if billing else None
        if state in (None, "incomplete"):
            return Decision("await", tier, "AwaitingPayment", "waiting for the first payment to complete")
        if state in ("canceled", "incomplete_expired"):
            return Decision("destroy", tier, "SubscriptionCanceled", f"subscription {state}: the agent was removed")
        if state == "unpaid":
            return Decision("suspend", tier, "PaymentFailed", "payment failed after Stripe's retries: agent suspended")
        if state == "paused":
            return Decision("suspend", tier, "SubscriptionPaused", "subscription paused: agent suspended")
    if spec.suspend:
        return Decision("suspend", tier, "Suspended", "suspended by spec.suspend")
    if spec.dashboard_suspend:
        return Decision("suspend", tier, "Suspended", "suspended from the dashboard (spec.dashboardSuspend)")
    return Decision("run", tier, "Running", "the gateway is running")
