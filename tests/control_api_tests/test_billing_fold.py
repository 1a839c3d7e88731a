"""Pure billing logic: order safety, tier changes, cancellation is final."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime
from typing import Any

from clawhost_api.customer import BillingStatus
from clawhost_control_api.billing.events import fold
from clawhost_localcluster import stripe_events as se

PRICES = {"starter": "price_starter", "pro": "price_pro", "team": "price_team"}
PRICE_TIERS = {v: k for k, v in PRICES.items()}
T0 = 1_780_000_000
Event = dict[str, Any]


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


def test_shuffled_duplicated_replay_ends_where_the_history_says() -> None:
    # The expectation is what the generator wrote down while making the history, not another fold.
    rng = random.Random(7)
    for n in range(300):
        history = se.lifecycle(rng, f"c{n}", PRICES, T0 + n)
        noisy = history.events + [rng.choice(history.events) for _ in range(len(history.events))]
        rng.shuffle(noisy)
        billing = fold(noisy, PRICE_TIERS).billing  # type: ignore[arg-type]
        assert (billing.state, billing.paid_tier, billing.last_event_id) == (
            history.state,
            history.paid_tier,
            history.last_id,
        ), f"history {n}: {[e['type'] for e in history.events]}"


def _sub(kind: str, at: int, status: str, price: str = "price_pro", sub: str = "sub_s", cus: str = "cus_s") -> Event:
    return se.subscription(kind, at, "cs", cus, sub, status, price, T0, T0 + se.MONTH)


def _inv(kind: str, at: int, sub: str = "sub_s", cus: str = "cus_s") -> Event:
    return se.invoice(kind, at, "cs", cus, sub, T0, T0 + se.MONTH)


def _every_order(events: list[Event]) -> list[BillingStatus]:
    return [fold(list(order), PRICE_TIERS).billing for order in itertools.permutations(events)]  # type: ignore[arg-type]


def test_final_retry_in_one_second_stays_unpaid() -> None:
    t = T0 + se.MONTH
    checkout = se.checkout_completed(T0, "cs", "cus_s", "sub_s", "pro")
    final = [_inv("invoice.payment_failed", t), _sub("customer.subscription.updated", t, "unpaid")]
    assert {b.state for b in _every_order([checkout, *final])} == {"unpaid"}
    # The invoice a second later still cannot undo what the subscription said.
    late = _inv("invoice.payment_failed", t + 1)
    assert {b.state for b in _every_order([checkout, final[1], late])} == {"unpaid"}


def test_checkout_and_first_invoice_in_one_second() -> None:
    burst = [
        se.checkout_completed(T0, "cs", "cus_s", "sub_s", "pro"),
        _sub("customer.subscription.created", T0, "incomplete"),
        _inv("invoice.paid", T0),
        _sub("customer.subscription.updated", T0, "active"),
    ]
    for billing in _every_order(burst):
        assert (billing.state, billing.paid_tier, billing.subscription_id) == ("active", "pro", "sub_s")


def test_trialing_is_left_only_by_the_subscription() -> None:
    burst = [
        se.checkout_completed(T0, "cs", "cus_s", "sub_s", "pro", paid=False),
        _inv("invoice.paid", T0),  # the trial's 0.00 invoice
        _sub("customer.subscription.created", T0, "trialing"),
    ]
    assert {b.state for b in _every_order(burst)} == {"trialing"}
    later_invoice = _inv("invoice.paid", T0 + 60)
    assert fold([*burst, later_invoice], PRICE_TIERS).billing.state == "trialing"  # type: ignore[arg-type]
    trial_end = T0 + 14 * 24 * 3600
    ended = [_inv("invoice.paid", trial_end), _sub("customer.subscription.updated", trial_end, "active")]
    assert {b.state for b in _every_order([*burst, *ended])} == {"active"}


def test_paused_is_left_only_by_the_subscription() -> None:
    t = T0 + 100
    history = [
        se.checkout_completed(T0, "cs", "cus_s", "sub_s", "pro"),
        _sub("customer.subscription.paused", t, "paused"),
        _sub("customer.subscription.updated", t, "paused"),
        _inv("invoice.paid", t + 1),
        _inv("invoice.payment_failed", t + 2),
    ]
    assert fold(history, PRICE_TIERS).billing.state == "paused"  # type: ignore[arg-type]
    resumed = _sub("customer.subscription.resumed", t + 50, "active")
    assert fold([*history, resumed], PRICE_TIERS).billing.state == "active"  # type: ignore[arg-type]


def test_unpaid_recovers_only_when_the_subscription_says_so() -> None:
    t = T0 + se.MONTH
    history = [
        se.checkout_completed(T0, "cs", "cus_s", "sub_s", "pro"),
        _inv("invoice.payment_failed", t),
        _sub("customer.subscription.updated", t, "unpaid"),
        _inv("invoice.paid", t + 3600),
    ]
    assert fold(history, PRICE_TIERS).billing.state == "unpaid"  # type: ignore[arg-type]
    reactivated = _sub("customer.subscription.updated", t + 3600, "active")
    assert {b.state for b in _every_order([*history[:3], history[3], reactivated])} == {"active"}


def test_cancel_at_period_end_in_one_second() -> None:
    end = T0 + se.MONTH
    history = [
        se.checkout_completed(T0, "cs", "cus_s", "sub_s", "pro"),
        _sub("customer.subscription.updated", T0 + 500, "active"),  # cancel_at_period_end set
        _inv("invoice.paid", end),  # a last proration invoice settling at the end
        _sub("customer.subscription.updated", end, "canceled"),
        _sub("customer.subscription.deleted", end, "canceled"),
    ]
    states = {b.state for b in _every_order(history)}
    assert states == {"canceled"}


def test_a_second_subscription_never_takes_over_a_live_one() -> None:
    first = [
        se.checkout_completed(T0, "cs", "cus_1", "sub_1", "pro"),
        _sub("customer.subscription.updated", T0 + 1, "active", sub="sub_1", cus="cus_1"),
    ]
    # A second checkout in another tab: its own Stripe customer and subscription, later cancelled.
    second = [
        se.checkout_completed(T0 + 10, "cs", "cus_2", "sub_2", "team"),
        _sub("customer.subscription.updated", T0 + 11, "active", price="price_team", sub="sub_2", cus="cus_2"),
        _sub("customer.subscription.deleted", T0 + 20, "canceled", price="price_team", sub="sub_2", cus="cus_2"),
    ]
    folded = fold(first + second, PRICE_TIERS)  # type: ignore[arg-type]
    assert (folded.billing.state, folded.billing.subscription_id, folded.billing.customer_id) == (
        "active",
        "sub_1",
        "cus_1",
    )
    assert folded.billing.paid_tier == "pro"
    assert set(folded.ignored) == {e["id"] for e in second}
    # Once the first has ended, a new checkout is the Customer's subscription.
    ended = _sub("customer.subscription.deleted", T0 + 30, "canceled", sub="sub_1", cus="cus_1")
    again = se.checkout_completed(T0 + 40, "cs", "cus_1", "sub_3", "team")
    after = fold([*first, ended, again], PRICE_TIERS).billing  # type: ignore[arg-type]
    assert (after.state, after.subscription_id, after.paid_tier) == ("active", "sub_3", "team")
