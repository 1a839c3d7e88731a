"""Pure Stripe event -> status.billing logic, order-safe under at-least-once, any-order delivery.

Every verified event is stored; a Customer's status.billing is the fold of all its events sorted by
Stripe's `created` time (ties broken by a fixed type order, then id). Arrival order therefore cannot
matter and a duplicate changes nothing. Within the fold:
- The subscription's own `status` is authoritative. Stripe emits an invoice event and the subscription
  update it causes in the same second (a final failed retry: `invoice.payment_failed` beside
  `customer.subscription.updated` to `unpaid`), so within one second subscription objects come last;
  and an invoice event only moves the state along the transition its outcome causes in Stripe
  (a failed payment: active -> past_due; a paid one: incomplete or past_due -> active), never out of
  `unpaid`, `paused` or `trialing`, which only the subscription itself leaves.
- One subscription per Customer: while the recorded subscription is live, events of any other
  subscription or Stripe customer (a second checkout) are ignored and reported, so two folds never
  fight over status.billing.
- A cancelled subscription stays cancelled: no event about that subscription revives it (Stripe never
  reactivates a cancelled subscription; a new checkout brings a new id).
- Upgrade at once: a higher tier in `customer.subscription.updated` sets paidTier and spec.tier now.
- Downgrade at the next period: a lower tier is scheduled and takes effect with the first paid invoice
  whose period starts at or after the scheduled time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clawhost_api.customer import SUBSCRIPTION_STATES, BillingStatus, SubscriptionState
from clawhost_api.tiers import TIER_ORDER, TierName

HANDLED = frozenset(
    {
        "checkout.session.completed",
        "invoice.paid",
        "invoice.payment_succeeded",
        "invoice.payment_failed",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.paused",
        "customer.subscription.resumed",
        "customer.subscription.deleted",
    }
)
# Events whose object is the subscription itself: their `status` is Stripe's word on the state.
_SUBSCRIPTION_EVENTS = frozenset(
    {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.paused",
        "customer.subscription.resumed",
    }
)
# States a subscription has ended in: only then may another subscription take the Customer over.
SUBSCRIPTION_ENDED: frozenset[str | None] = frozenset({None, "canceled", "incomplete_expired"})
# What an invoice's outcome may change, mirroring the transition Stripe makes on that outcome.
_FAILED_PAYMENT_FROM: frozenset[str | None] = frozenset({None, "active"})
_PAID_FROM: frozenset[str | None] = frozenset({None, "incomplete", "past_due", "active"})

# Within one second: the checkout, then invoice outcomes, then the subscription objects (their status
# is authoritative, so they have the last word), the deletion last.
_TIE_ORDER = {
    "checkout.session.completed": 0,
    "invoice.payment_failed": 1,
    "invoice.paid": 2,
    "invoice.payment_succeeded": 2,
    "customer.subscription.created": 3,
    "customer.subscription.updated": 4,
    "customer.subscription.paused": 4,
    "customer.subscription.resumed": 4,
    "customer.subscription.deleted": 5,
}


@dataclass(frozen=True)
class ScheduledTier:
    tier: TierName
    effective_at: datetime


@dataclass(frozen=True)
class Decision:
    billing: BillingStatus | None  # None: the event changes nothing
    spec_tier: TierName | None = None  # patch spec.tier to this now
    schedule: ScheduledTier | None = None  # record a downgrade for the next period
    clear_schedule: bool = False


NO_CHANGE = Decision(None)


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if isinstance(value, int) else None


def _id(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def tier_of(obj: dict[str, Any], price_tiers: dict[str, TierName]) -> TierName | None:
    """The tier a subscription (its first item's price) or a session (its metadata) stands for."""
    items = (obj.get("items") or {}).get("data") or []
    for item in items:
        price = _id((item or {}).get("price"))
        if price in price_tiers:
            return price_tiers[price]
    tier = (obj.get("metadata") or {}).get("tier")
    return tier if tier in TIER_ORDER else None


def subscription_of(obj: dict[str, Any]) -> str | None:
    """The subscription id an invoice, session or subscription refers to (old and new API shapes)."""
    if obj.get("object") == "subscription":
        return _id(obj.get("id"))
    found = _id(obj.get("subscription"))
    if found:
        return found
    details = ((obj.get("parent") or {}).get("subscription_details")) or {}
    return _id(details.get("subscription"))


def _period_of(obj: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    if obj.get("object") == "invoice":
        for line in (obj.get("lines") or {}).get("data") or []:
            period = (line or {}).get("period") or {}
            if "start" in period and "end" in period:
                return _ts(period["start"]), _ts(period["end"])
        return _ts(obj.get("period_start")), _ts(obj.get("period_end"))
    start, end = _ts(obj.get("current_period_start")), _ts(obj.get("current_period_end"))
    if start is None:
        for item in (obj.get("items") or {}).get("data") or []:
            start, end = _ts((item or {}).get("current_period_start")), _ts((item or {}).get("current_period_end"))
            if start is not None:
                break
    return start, end


def _rank(tier: TierName | None) -> int:
    return TIER_ORDER.index(tier) if tier else -1


def decide(
    event: dict[str, Any],
    current: BillingStatus | None,
    price_tiers: dict[str, TierName],
    scheduled: ScheduledTier | None = None,
) -> Decision:
    """What one verified Stripe event does to a Customer's status.billing (pure, deterministic)."""
    kind = str(event.get("type"))
    created = _ts(event.get("created"))
    obj: dict[str, Any] = (event.get("data") or {}).get("object") or {}
    if kind not in HANDLED or created is None:
        return NO_CHANGE
    now = current or BillingStatus()
    subscription = subscription_of(obj)
    customer_id = _id(obj.get("customer"))
    same_subscription = subscription is None or now.subscription_id in (None, subscription)
    if now.state == "canceled" and same_subscription:
        return NO_CHANGE
    if is_foreign(event, now):
        return NO_CHANGE
    fields: dict[str, Any] = {"last_event_at": created, "last_event_id": str(event.get("id"))}
    if customer_id:
        fields["customer_id"] = customer_id
    if subscription:
        fields["subscription_id"] = subscription
    spec_tier: TierName | None = None
    schedule: ScheduledTier | None = None
    clear = False

    if kind == "checkout.session.completed":
        tier = tier_of(obj, price_tiers)
        if tier:
            fields["paid_tier"] = tier
            spec_tier = tier if _rank(tier) > _rank(now.paid_tier) else None
        if now.state is None or not same_subscription:
            fields["state"] = "active" if obj.get("payment_status") in ("paid", "no_payment_required") else "incomplete"
    elif kind in ("invoice.paid", "invoice.payment_succeeded"):
        if now.state in _PAID_FROM:
            fields["state"] = "active"
        start, end = _period_of(obj)
        if start and end:
            fields["current_period_start"], fields["current_period_end"] = start, end
            if scheduled and start >= scheduled.effective_at:
                fields["paid_tier"] = scheduled.tier
                spec_tier, clear = scheduled.tier, True
    elif kind == "invoice.payment_failed":
        if now.state in _FAILED_PAYMENT_FROM:
            fields["state"] = "past_due"
    elif kind in _SUBSCRIPTION_EVENTS:
        state = obj.get("status")
        if state in SUBSCRIPTION_STATES:
            fields["state"] = state
        start, end = _period_of(obj)
        if start and end:
            fields["current_period_start"], fields["current_period_end"] = start, end
        tier = tier_of(obj, price_tiers)
        if tier and _rank(tier) > _rank(now.paid_tier):
            fields["paid_tier"] = spec_tier = tier
            clear = scheduled is not None
        elif tier and _rank(tier) < _rank(now.paid_tier):
            # A later update repeating the pending tier (say the subscription going past_due) keeps its
            # date: moving it to that update's period end would put the downgrade off month after month.
            same = scheduled is not None and scheduled.tier == tier
            schedule = scheduled if same else ScheduledTier(tier, end or now.current_period_end or created)
        elif tier and scheduled is not None:
            clear = True  # back to the current tier: the pending downgrade is dropped
    elif kind == "customer.subscription.deleted":
        fields["state"] = "canceled"
    return Decision(now.model_copy(update=fields), spec_tier, schedule, clear)


def is_foreign(event: dict[str, Any], current: BillingStatus | None) -> bool:
    """An event of another subscription or Stripe customer while the Customer's recorded one is live."""
    if current is None or current.state in SUBSCRIPTION_ENDED:
        return False
    obj: dict[str, Any] = (event.get("data") or {}).get("object") or {}
    subscription, customer_id = subscription_of(obj), _id(obj.get("customer"))
    other_subscription = subscription is not None and current.subscription_id not in (None, subscription)
    other_customer = customer_id is not None and current.customer_id not in (None, customer_id)
    return other_subscription or other_customer


def event_order(event: dict[str, Any]) -> tuple[int, int, str]:
    """Sort key: Stripe's creation time, then a fixed order of types within one second, then the id."""
    return (int(event.get("created") or 0), _TIE_ORDER.get(str(event.get("type")), 9), str(event.get("id")))


@dataclass(frozen=True)
class Folded:
    billing: BillingStatus
    scheduled: ScheduledTier | None
    ignored: tuple[str, ...] = ()  # ids of events that belong to another, concurrent subscription


def fold(events: list[dict[str, Any]], price_tiers: dict[str, TierName]) -> Folded:
    """status.billing (and any pending downgrade) from all of one customer's events, in any arrival order."""
    billing = BillingStatus()
    scheduled: ScheduledTier | None = None
    seen: set[str] = set()
    ignored: list[str] = []
    for event in sorted(events, key=event_order):
        if str(event.get("id")) in seen:
            continue
        seen.add(str(event.get("id")))
        if is_foreign(event, billing):
            ignored.append(str(event.get("id")))
            continue
        decision = decide(event, billing, price_tiers, scheduled)
        if decision.billing is None:
            continue
        billing = decision.billing
        if decision.clear_schedule:
            scheduled = None
        if decision.schedule is not None:
            scheduled = decision.schedule
    return Folded(billing, scheduled, tuple(ignored))


__all__ = [
    "HANDLED",
    "SUBSCRIPTION_ENDED",
    "Decision",
    "Folded",
    "ScheduledTier",
    "SubscriptionState",
    "decide",
    "fold",
    "is_foreign",
    "tier_of",
]
