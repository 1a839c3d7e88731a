"""Pure billing logic: order safety, tier changes, cancellation is final."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from clawhost_control_api.billing.events import fold
from clawhost_localcluster import stripe_events as se

PRICES = {"starter": "price_starter", "pro": "price_pro", "team": "price_team"}
PRICE_TIERS = {v: k for k, v in PRICES.items()}
T0 = 1_780_000_000


def _at(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def test_old_update_after_delete_cannot_revive() -> None:
    checkout = se.checkout_completed(T0, "c1", "cus_1", "sub_1", "pro")
    deleted = se.subscription(
        "customer.subscription.deleted", T0 + 100, "c1", "cus_1", "sub_1", "canceled", "price_pro", T0, T0 + se.MONTH
    )
    old_active = se.subscription(
        "customer.subscription.updated", T0 + 50, "c1", "cus_1", "sub_1", "active", "price_pro", T0, T0 + se.MONTH
    )
    same_second = se.subscription(
        "customer.subscription.updated", T0 + 100, "c1", "cus_1", "sub_1", "active", "price_pro", T0, T0 + se.MONTH
    )
    for arrival in ([checkout, deleted, old_active, same_second], [same_second, deleted, old_active, checkout]):
        state = fold(arrival, PRICE_TIERS).billing  # type: ignore[arg-type]
        assert state.state == "canceled"
        assert state.paid_tier == "pro"
        assert state.subscription_id == "sub_1"


def test_upgrade_at_once_downgrade_next_period() -> None:
    p1, p2 = T0, T0 + se.MONTH
    events = [
        se.checkout_completed(T0, "c2", "cus_2", "sub_2", "pro"),
        se.invoice("invoice.paid", T0 + 1, "c2", "cus_2", "sub_2", p1, p2),
        se.subscription(
            "customer.subscription.updated", T0 + 10, "c2", "cus_2", "sub_2", "active", "price_team", p1, p2
        ),
    ]
    up = fold(events, PRICE_TIERS)  # type: ignore[arg-type]
    assert up.billing.paid_tier == "team"
    assert up.scheduled is None
    events.append(
        se.subscription(
            "customer.subscription.updated", T0 + 20, "c2", "cus_2", "sub_2", "active", "price_starter", p1, p2
        )
    )
    down = fold(events, PRICE_TIERS)  # type: ignore[arg-type]
    assert down.billing.paid_tier == "team", "a downgrade waits for the next period"
    assert down.scheduled is not None
    assert down.scheduled.tier == "starter"
    assert down.scheduled.effective_at == _at(p2)
    events.append(se.invoice("invoice.paid", p2 + 5, "c2", "cus_2", "sub_2", p2, p2 + se.MONTH))
    later = fold(events, PRICE_TIERS)  # type: ignore[arg-type]
    assert later.billing.paid_tier == "starter"
    assert later.scheduled is None
    assert later.billing.current_period_start == _at(p2)


def test_payment_failed_then_recovered() -> None:
    events = [
        se.checkout_completed(T0, "c3", "cus_3", "sub_3", "starter"),
        se.invoice("invoice.payment_failed", T0 + 5, "c3", "cus_3", "sub_3", T0, T0 + se.MONTH),
    ]
    assert fold(events, PRICE_TIERS).billing.state == "past_due"  # type: ignore[arg-type]
    events.append(se.invoice("invoice.paid", T0 + 9, "c3", "cus_3", "sub_3", T0, T0 + se.MONTH))
    assert fold(events, PRICE_TIERS).billing.state == "active"  # type: ignore[arg-type]


def test_shuffled_duplicated_replay_equals_in_order() -> None:
    rng = random.Random(7)
    for n in range(200):
        events = se.lifecycle(rng, f"c{n}", PRICES, T0 + n)
        expected = fold(events, PRICE_TIERS)  # type: ignore[arg-type]
        noisy = events + [rng.choice(events) for _ in range(len(events))]
        rng.shuffle(noisy)
        assert fold(noisy, PRICE_TIERS) == expected  # type: ignore[arg-type]
        last = max(events, key=lambda e: e["created"])
        if last["type"] == "customer.subscription.deleted":
            assert expected.billing.state == "canceled"
        assert expected.billing.last_event_id == last["id"]
