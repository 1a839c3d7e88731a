"""The journey a person takes, through the browser's one WebSocket: chat to a checkout link, pay (the local checkout
sends signed webhooks), and watch the agent come up; every component real but the LLM and Telegram."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import redis

from clawhost_localcluster.control_api_process import ControlApiProcess
from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.fake_kimi import FakeKimi
from clawhost_localcluster.onboarding_chat import ChatClient, Frame
from clawhost_localcluster.onboarding_process import OnboardingProcess
from clawhost_localcluster.onboarding_script import Conversation
from clawhost_localcluster.platform import OperatorProcess, get_json
from clawhost_localcluster.services import RedisServer
from clawhost_localcluster.telegram_bot_api import Bot, TelegramBotApi
from clawhost_localcluster.waiting import eventually

SITE = "https://site.test"  # as the control_api fixture lets in


def _account(api: ControlApiProcess) -> str:
    email = f"j{uuid.uuid4().hex[:8]}@example.com"
    with httpx.Client(base_url=api.url, timeout=30) as client:
        assert client.post("/auth/signup", json={"email": email, "password": "long enough pw"}).status_code == 201
        return str(
            client.post("/auth/login", json={"email": email, "password": "long enough pw"}).json()["access_token"]
        )


def _say(chat: ChatClient, text: str) -> Frame:
    chat.send({"type": "message", "text": text})
    answer = chat.until(lambda f: f["type"] in ("reply", "error"), timeout=60, what="the assistant's reply")
    assert answer["type"] == "reply", answer
    return answer


def _converse(chat: ChatClient, talk: Conversation, telegram: TelegramBotApi, bot: Bot, telegram_user: int) -> int:
    """The happy path's six user messages (the conversation script's); returns how many the user sent."""
    said = [
        f"Hi {talk.marker(1)} I want an agent that reminds me of my bakery's orders",
        f"Here it is {talk.marker(2)} {bot.token}",
    ]
    for text in said:
        _say(chat, text)
    telegram.send_dm(bot.token, telegram_user, "/start", first_name="Ana")
    for text in (f"done {talk.marker(3)}", f"yes, that's me {talk.marker(4)}", f"daily, only me {talk.marker(5)}"):
        _say(chat, text)
        said.append(text)
    last = _say(chat, f"Pro please {talk.marker(6)}")
    said.append(last["text"])
    return len(said)


def _agent(api: ControlApiProcess, token: str) -> dict[str, Any]:
    answer = httpx.get(f"{api.url}/agent", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _phases(chat: ChatClient) -> list[str]:
    return [f["phase"] for f in chat.seen if f["type"] == "provisioning"]


def test_from_the_first_message_to_a_live_agent(
    control_api: ControlApiProcess,
    onboarding: OnboardingProcess,
    operator: OperatorProcess,
    platform: Cluster,
    kimi: FakeKimi,
    telegram: TelegramBotApi,
    redis_server: RedisServer,
) -> None:
    talk = Conversation(kimi)
    talk.happy_path()
    bot = telegram.register_bot(f"bakery_{uuid.uuid4().hex[:6]}_bot")
    telegram_user = 400_000 + uuid.uuid4().int % 100_000

    # Anonymous until everything is gathered, as a visitor of the site is; what a browser says of its own account
    # or address is not passed on (only the control API sets those).
    someone = str(uuid.uuid4())
    chat = ChatClient.open(control_api.url, origin=SITE)
    chat.send({"type": "hello", "session_id": None, "language": "en", "user_id": someone, "client_ip": "10.9.9.9"})
    session = chat.until_type("session")
    assert session["state"] == "GATHERING_USE_CASE" or session["state"] == "NEW"
    user_messages = _converse(chat, talk, telegram, bot, telegram_user)
    assert user_messages <= 7
    chat.until_type("sign_in_required")

    # Signs up in the page, which hands the chat the new token.
    token = _account(control_api)
    chat.send({"type": "authenticate", "access_token": token})
    checkout = chat.until_type("checkout", timeout=60)
    assert checkout["url"].startswith(f"{control_api.url}/local-checkout/lcs_"), checkout
    agent = _agent(control_api, token)
    name = agent["name"]
    assert (agent["tier"], agent["allowed_user_ids"], agent["billing_mode"]) == ("pro", [telegram_user], "stripe")
    assert agent["billing_state"] is None, "nothing is paid yet"
    customer = get_json(platform, "customer", name)
    assert bot.token.split(":")[1] not in json.dumps(customer), "the bot token is never in the Customer"
    assert get_json(
        platform, "secret", customer["spec"]["telegram"]["botTokenSecretRef"]["name"], "-n", "clawhost-secrets"
    )

    # Pays: the local checkout page's button sends the signed events to the real webhook.
    paid = httpx.post(checkout["url"], follow_redirects=False, timeout=30)
    assert paid.status_code == 303, paid.text
    live = chat.until(lambda f: f.get("phase") in ("live", "failed"), timeout=180, what="the agent live")
    assert live["phase"] == "live", live
    assert f"@{bot.username}" in live["text"]
    assert _phases(chat) == ["payment_received", "starting", "live"]
    ready = get_json(platform, "customer", name)
    assert ready["status"]["phase"] == "Running"
    assert ready["status"]["billing"]["state"] == "active"
    assert _agent(control_api, token)["ready"] is True
    chat.close()

    # The bot token: not in the Customer, its Events, either service's log, Redis, or what the model was sent.
    secret_part = bot.token.split(":")[1]
    events = platform.kubectl("get", "events", "-A", "-o", "json", "--field-selector", f"involvedObject.name={name}")
    assert secret_part not in events.stdout
    assert secret_part not in json.dumps(get_json(platform, "customer", name))
    assert secret_part not in control_api.process.log_path.read_text(errors="replace")
    assert secret_part not in onboarding.log()
    store = redis.Redis.from_url(redis_server.url)
    holding = [
        key for key in store.scan_iter("clawhost:onboarding:*") if secret_part.encode() in (store.dump(key) or b"")
    ]
    assert holding == [], "the onboarding service dropped its copy once the Secret was written"
    assert secret_part not in json.dumps([r for r in kimi.requests if talk.tag in json.dumps(r)])


def test_a_reconnect_mid_provisioning_picks_up_where_it_stands(
    control_api: ControlApiProcess,
    operator: OperatorProcess,
    platform: Cluster,
    kimi: FakeKimi,
    telegram: TelegramBotApi,
) -> None:
    talk = Conversation(kimi)
    talk.happy_path()
    bot = telegram.register_bot(f"shop_{uuid.uuid4().hex[:6]}_bot")
    token = _account(control_api)
    chat = ChatClient.open(control_api.url, origin=SITE)
    chat.hello(access_token=token)  # signed in from the start: the checkout follows the plan at once
    session_id = chat.until_type("session")["session_id"]
    _converse(chat, talk, telegram, bot, 500_000 + uuid.uuid4().int % 100_000)
    checkout = chat.until_type("checkout", timeout=60)
    assert not [f for f in chat.seen if f["type"] == "sign_in_required"]
    chat.close()  # off to the payment page
    name = _agent(control_api, token)["name"]

    operator.kill()  # provisioning stalls after the payment: the reconnect lands in the middle of it
    try:
        assert httpx.post(checkout["url"], follow_redirects=False, timeout=30).status_code == 303

        def paid() -> bool:
            billing = (get_json(platform, "customer", name) or {}).get("status", {}).get("billing") or {}
            return billing.get("state") == "active"

        eventually(paid, timeout=30, what="status.billing active from the signed webhooks")
        back = ChatClient.open(control_api.url, origin=SITE)
        back.hello(session_id=session_id, access_token=token)
        resumed = back.until_type("session")
        assert resumed["session_id"] == session_id
        assert any(checkout["url"] in line["text"] for line in resumed["transcript"]) or resumed["checkout_url"]
        first = back.until_type("provisioning", timeout=60)
        assert first["phase"] == "payment_received", "the first look says where it stands"
    finally:
        operator.start()
    back.until(lambda f: f.get("phase") == "live", timeout=180, what="the agent live after the operator is back")
    assert _phases(back) == ["payment_received", "starting", "live"]
    back.close()


def test_two_tabs_signing_in_at_once_make_one_agent_and_one_checkout(
    control_api: ControlApiProcess, platform: Cluster, kimi: FakeKimi, telegram: TelegramBotApi
) -> None:
    talk = Conversation(kimi)
    talk.happy_path()
    bot = telegram.register_bot(f"twin_{uuid.uuid4().hex[:6]}_bot")
    telegram_user = 600_000 + uuid.uuid4().int % 100_000
    first = ChatClient.open(control_api.url, origin=SITE)
    first.hello()
    session_id = first.until_type("session")["session_id"]
    _converse(first, talk, telegram, bot, telegram_user)
    first.until_type("sign_in_required")
    second = ChatClient.open(control_api.url, origin=SITE)  # the same chat open in a second tab
    second.hello(session_id=session_id)
    second.until_type("sign_in_required")

    token = _account(control_api)
    # Both tabs hand over the sign-in at once: each connection gets the service's result.
    first.send({"type": "authenticate", "access_token": token})
    second.send({"type": "authenticate", "access_token": token})
    links = {first.until_type("checkout", timeout=90)["url"], second.until_type("checkout", timeout=90)["url"]}
    assert len(links) == 1, links
    listing = json.loads(platform.kubectl("get", "customers", "-o", "json").stdout)["items"]
    theirs = [c for c in listing if c["spec"]["telegram"]["allowedUserIds"] == [telegram_user]]
    assert len(theirs) == 1, [c["metadata"]["name"] for c in theirs]
    assert _agent(control_api, token)["name"] == theirs[0]["metadata"]["name"]
    first.close()
    second.close()


def test_an_agent_that_cannot_start_is_a_clear_failure_in_the_chat(
    control_api: ControlApiProcess,
    operator: OperatorProcess,
    platform: Cluster,
    kimi: FakeKimi,
    telegram: TelegramBotApi,
) -> None:
    talk = Conversation(kimi)
    talk.happy_path()
    bot = telegram.register_bot(f"gone_{uuid.uuid4().hex[:6]}_bot")
    token = _account(control_api)
    chat = ChatClient.open(control_api.url, origin=SITE)
    chat.hello(access_token=token)
    chat.until_type("session")
    _converse(chat, talk, telegram, bot, 700_000 + uuid.uuid4().int % 100_000)
    checkout = chat.until_type("checkout", timeout=60)
    customer = get_json(platform, "customer", _agent(control_api, token)["name"])
    # The bot token's Secret is lost (someone deleted it): the operator cannot start the gateway.
    secret = customer["spec"]["telegram"]["botTokenSecretRef"]["name"]
    platform.kubectl("delete", "secret", secret, "-n", "clawhost-secrets")
    assert httpx.post(checkout["url"], follow_redirects=False, timeout=30).status_code == 303
    failed = chat.until(lambda f: f.get("phase") in ("failed", "live"), timeout=120, what="the outcome")
    assert failed["phase"] == "failed", failed
    # What went wrong, in the control API's words from the Customer's status (not a generic line), and what to do.
    assert "could not read its Telegram bot token" in failed["text"], failed
    assert "Set the token again in the dashboard" in failed["text"]
    assert "support@clawhost.dev" in failed["text"]
    assert "live" not in _phases(chat)
    shown = json.dumps(chat.seen)
    assert bot.token.split(":")[1] not in shown
    assert "chp_" not in shown, "no proxy token"
    chat.close()


def test_an_agent_the_control_api_refuses_to_create_says_why_in_the_chat(
    control_api: ControlApiProcess, kimi: FakeKimi, telegram: TelegramBotApi
) -> None:
    token = _account(control_api)
    first = telegram.register_bot(f"first_{uuid.uuid4().hex[:6]}_bot")
    made = httpx.post(
        f"{control_api.url}/agent",
        json={"tier": "starter", "bot_token": first.token, "allowed_user_ids": [123_456]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert made.status_code == 201, made.text
    talk = Conversation(kimi)
    talk.happy_path()
    second = telegram.register_bot(f"second_{uuid.uuid4().hex[:6]}_bot")
    chat = ChatClient.open(control_api.url, origin=SITE)
    chat.hello(access_token=token)
    chat.until_type("session")
    _converse(chat, talk, telegram, second, 800_000 + uuid.uuid4().int % 100_000)
    refused = chat.until(lambda f: f["type"] in ("error", "checkout"), timeout=60, what="the control API's answer")
    assert refused["type"] == "error", refused
    assert refused["code"] == "agent_creation_failed"
    assert refused["message"] == "You already have an agent: manage it from the dashboard (one agent per account).", (
        "the control API's own reason"
    )
    shown = json.dumps(chat.seen)
    for secret in (first.token.split(":")[1], second.token.split(":")[1], token):
        assert secret not in shown
    chat.close()
