"""`make up` without a Kimi key: the onboarding chat against the local stand-in model (onboarding_stand_in.py, on the
FakeKimi as make up serves it), through the control API's /ws/onboarding, from the first message to the checkout
and the payment; no test script, so every model answer is the stand-in's own reading of the real request."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from clawhost_localcluster.control_api_process import ControlApiProcess
from clawhost_localcluster.fake_kimi import FakeKimi
from clawhost_localcluster.onboarding_chat import ChatClient, Frame
from clawhost_localcluster.onboarding_stand_in import answer
from clawhost_localcluster.telegram_bot_api import TelegramBotApi

SITE = "https://site.test"


@pytest.fixture(scope="module")
def kimi() -> Iterator[FakeKimi]:
    """This module's model: the stand-in as `make up` starts it (the conftest's onboarding service uses it)."""
    server = FakeKimi(responder=answer)
    server.start()
    yield server
    server.stop()


def _say(chat: ChatClient, text: str) -> Frame:
    chat.send({"type": "message", "text": text})
    reply = chat.until(lambda f: f["type"] in ("reply", "error"), timeout=60, what="the assistant's reply")
    assert reply["type"] == "reply", reply
    assert reply["text"].count("?") <= 2, reply["text"]
    return reply


def test_the_local_stand_in_model_takes_the_chat_to_the_checkout_and_the_payment(
    control_api: ControlApiProcess, kimi: FakeKimi, telegram: TelegramBotApi
) -> None:
    bot = telegram.register_bot(f"local_{uuid.uuid4().hex[:6]}_bot")
    chat = ChatClient.open(control_api.url, origin=SITE)
    chat.hello()
    assert chat.until_type("session")["state"] == "GATHERING_USE_CASE"

    asked_token = _say(chat, "I want an agent that reminds me of my bakery's orders")
    assert (asked_token["state"], "@BotFather" in asked_token["text"]) == ("GATHERING_TELEGRAM", True)
    asked_start = _say(chat, f"here you go: {bot.token}")
    assert f"t.me/{bot.username}" in asked_start["text"], asked_start
    telegram.send_dm(bot.token, 812_345, "/start", first_name="Ana")
    asked_who = _say(chat, "done")
    assert "Is this you, Ana?" in asked_who["text"], asked_who
    asked_use = _say(chat, "yes, that's me")
    assert asked_use["state"] == "GATHERING_PREFERENCES"
    plans = _say(chat, "daily, only me")
    assert plans["state"] == "RECOMMENDING_TIER"
    assert "I recommend Pro" in plans["text"], plans
    assert "$" in plans["text"], "the prices, from the plan table"
    chosen = _say(chat, "Pro please")
    assert "Pro" in chosen["text"]
    reason = chat.until_type("sign_in_required")["reason"]
    assert reason

    # Signs up in the page (as the site does), which hands the chat its token: the agent and the checkout follow.
    email = f"local{uuid.uuid4().hex[:8]}@example.com"
    with httpx.Client(base_url=control_api.url, timeout=30) as client:
        assert client.post("/auth/signup", json={"email": email, "password": "long enough pw"}).status_code == 201
        token = client.post("/auth/login", json={"email": email, "password": "long enough pw"}).json()["access_token"]
    chat.send({"type": "authenticate", "access_token": token})
    checkout = chat.until_type("checkout", timeout=60)
    assert checkout["url"].startswith(f"{control_api.url}/local-checkout/"), checkout
    agent = httpx.get(f"{control_api.url}/agent", headers={"Authorization": f"Bearer {token}"}, timeout=30).json()
    assert (agent["tier"], agent["allowed_user_ids"]) == ("pro", [812_345])

    assert httpx.post(checkout["url"], follow_redirects=False, timeout=30).status_code == 303
    paid = chat.until(lambda f: f["type"] == "provisioning", timeout=120, what="the payment seen in the chat")
    assert paid["phase"] in ("payment_received", "starting", "live"), paid
    assert [f for f in chat.seen if f["type"] == "error"] == []
    # Six user messages, each answered by the stand-in from the request alone (no script was set).
    assert kimi.scripts == []
    assert sum(1 for f in chat.seen if f["type"] == "reply") == 6
    chat.close()
