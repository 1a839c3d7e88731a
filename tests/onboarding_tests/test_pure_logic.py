"""The pure pieces beside the conversation tests: recognising a token in text, the tier recommendation, the
state machine's transitions, the frames' validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from clawhost_api.onboarding import Activity
from clawhost_api.tiers import get_tier
from clawhost_onboarding import bot_token, tiers
from clawhost_onboarding.frames import INCOMING, Hello
from clawhost_onboarding.states import State, TransitionError, advance

TOKEN = "7000000001:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


@pytest.mark.parametrize(
    "text",
    [
        TOKEN,
        f"here: {TOKEN}",
        f"token={TOKEN}.",
        f"«{TOKEN}»",
        f"https://api.telegram.org/bot{TOKEN}/getMe",
        f"first {TOKEN[:-3]}xyz then {TOKEN}",
        "7000000001 : AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",  # spaces around the colon, as phones insert them
    ],
)
def test_a_token_anywhere_in_a_message_is_taken_out(text: str) -> None:
    found = bot_token.extract(text)
    assert TOKEN.split(":")[1] not in found.text
    assert bot_token.PLACEHOLDER in found.text
    assert found.token == TOKEN


@pytest.mark.parametrize("text", ["12345:short_but_secretish_x", "99:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw!"])
def test_something_token_shaped_but_malformed_is_removed_without_a_token(text: str) -> None:
    found = bot_token.extract(text)
    assert found.candidates
    assert found.token is None
    assert "secretish" not in found.text


@pytest.mark.parametrize(
    "text", ["meet me at 10:30", "ratio 16:9", "my id is 123456789", "see https://example.com:8443/path", "a:b"]
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    found = bot_token.extract(text)
    assert found.text == text
    assert found.candidates == ()


@pytest.mark.parametrize(
    ("activity", "users", "expected"),
    [
        (None, None, "pro"),  # unsure: Pro
        ("daily", 1, "pro"),
        ("occasional", 1, "starter"),
        ("heavy", 1, "team"),
        ("occasional", 3, "team"),  # only Team allows more than one Telegram user
        ("daily", 10, "team"),
    ],
)
def test_the_recommendation_follows_use_and_the_files_telegram_allowances(
    activity: Activity | None, users: int | None, expected: str
) -> None:
    assert tiers.recommend(activity, users) == expected


def test_the_plan_table_quotes_the_file() -> None:
    table = tiers.table()
    for name in ("starter", "pro", "team"):
        tier = get_tier(name)
        assert f"${tier.price_cents // 100}/month, {tier.monthly_tokens:,} tokens" in table


def test_the_state_machine_moves_one_step_forward_only() -> None:
    assert advance(State.GATHERING_USE_CASE, State.GATHERING_TELEGRAM) == State.GATHERING_TELEGRAM
    assert advance(State.PROVISIONING, State.PROVISIONING) == State.PROVISIONING
    for current, target in (
        (State.GATHERING_USE_CASE, State.RECOMMENDING_TIER),  # no skipping
        (State.RECOMMENDING_TIER, State.GATHERING_TELEGRAM),  # no going back
        (State.GATHERING_PREFERENCES, State.COMPLETE),
        (State.COMPLETE, State.FAILED),
    ):
        with pytest.raises(TransitionError):
            advance(current, target)


def test_frames_are_typed_at_the_edge() -> None:
    hello = INCOMING.validate_json('{"type": "hello", "session_id": null, "language": "de-DE", "extra": 1}')
    assert isinstance(hello, Hello)
    assert isinstance(INCOMING.validate_json('{"type": "hello", "language": null}'), Hello)  # as the relay sends it
    with pytest.raises(ValidationError):
        INCOMING.validate_json('{"type": "provisioning", "phase": "free"}')
    with pytest.raises(ValidationError):
        INCOMING.validate_json('{"type": "authenticated"}')
