"""The Telegram Bot API stand-in answers like Telegram: shapes, errors, long polling, conflicts and the test API."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from clawhost_localcluster.telegram_bot_api import Bot, TelegramBotApi


@pytest.fixture(scope="module")
def telegram() -> Iterator[TelegramBotApi]:
    server = TelegramBotApi()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def bot(telegram: TelegramBotApi) -> Bot:
    return telegram.register_bot()


def call(telegram: TelegramBotApi, token: str, method: str, how: str = "json", **params: Any) -> httpx.Response:
    url = f"{telegram.api_root}/bot{token}/{method}"
    timeout = float(params.get("timeout", 0)) + 10
    if how == "json":
        return httpx.post(url, json=params, timeout=timeout)
    encoded = {
        key: json.dumps(value) if isinstance(value, list | dict) else str(value) for key, value in params.items()
    }
    if how == "form":
        return httpx.post(url, data=encoded, timeout=timeout)
    if how == "multipart":
        return httpx.post(url, files={key: (None, value) for key, value in encoded.items()}, timeout=timeout)
    return httpx.get(url, params=encoded, timeout=timeout)


def test_get_me_answers_the_bot_in_every_encoding_telegram_accepts(telegram: TelegramBotApi, bot: Bot) -> None:
    for how in ("json", "form", "multipart", "query"):
        answer = call(telegram, bot.token, "getMe", how)
        assert answer.status_code == 200, how
        assert answer.json() == {"ok": True, "result": bot.user()}
        assert answer.json()["result"]["is_bot"] is True
    assert call(telegram, bot.token, "GETME").json()["ok"] is True  # method names are case-insensitive
    assert bot.token.split(":")[0] == str(bot.id)


def test_unknown_and_revoked_tokens_are_401_and_unknown_methods_404(telegram: TelegramBotApi, bot: Bot) -> None:
    unknown = call(telegram, "123456:AAnotARealTokenButWellFormed000000000", "getMe")
    assert (unknown.status_code, unknown.json()) == (
        401,
        {"ok": False, "error_code": 401, "description": "Unauthorized"},
    )
    assert call(telegram, bot.token, "getMe").status_code == 200
    telegram.revoke(bot.token)
    revoked = call(telegram, bot.token, "getMe")
    assert (revoked.status_code, revoked.json()) == (
        401,
        {"ok": False, "error_code": 401, "description": "Unauthorized"},
    )
    other = telegram.register_bot()
    missing = call(telegram, other.token, "sendTelepathy")
    assert (missing.status_code, missing.json()) == (404, {"ok": False, "error_code": 404, "description": "Not Found"})
    assert httpx.get(f"{telegram.api_root}/nothing-here").json()["error_code"] == 404


def test_get_updates_long_polls_until_a_dm_arrives_and_offset_confirms(telegram: TelegramBotApi, bot: Bot) -> None:
    answers: list[httpx.Response] = []
    poller = threading.Thread(target=lambda: answers.append(call(telegram, bot.token, "getUpdates", timeout=30)))
    poller.start()
    telegram.register_bot()  # anything but this bot's own update leaves the poll waiting
    assert poller.is_alive()
    started = time.monotonic()
    update_id = telegram.send_dm(bot.token, 424242, "hello agent")
    poller.join(20)
    assert time.monotonic() - started < 5, "the waiting poll was answered when the update arrived"
    [update] = answers[0].json()["result"]
    assert update["update_id"] == update_id
    message = update["message"]
    assert message["from"] == {"id": 424242, "is_bot": False, "first_name": "Alice", "language_code": "en"}
    assert (message["chat"]["id"], message["chat"]["type"], message["text"]) == (424242, "private", "hello agent")
    # Not confirmed yet: the same update again; confirmed by offset: gone for good.
    assert [u["update_id"] for u in call(telegram, bot.token, "getUpdates").json()["result"]] == [update_id]
    assert call(telegram, bot.token, "getUpdates", offset=update_id + 1).json()["result"] == []
    assert telegram.pending_updates(bot.token) == 0


def test_an_empty_long_poll_returns_an_empty_list_after_its_timeout(telegram: TelegramBotApi, bot: Bot) -> None:
    started = time.monotonic()
    assert call(telegram, bot.token, "getUpdates", "form", timeout=1).json() == {"ok": True, "result": []}
    assert time.monotonic() - started >= 0.9


def test_allowed_updates_filters_and_is_remembered(telegram: TelegramBotApi, bot: Bot) -> None:
    telegram.send_dm(bot.token, 7, "hi")
    assert call(telegram, bot.token, "getUpdates", "query", allowed_updates=["callback_query"]).json()["result"] == []
    assert call(telegram, bot.token, "getUpdates").json()["result"] == []  # still only callback queries
    assert len(call(telegram, bot.token, "getUpdates", allowed_updates=["message"]).json()["result"]) == 1


def test_a_webhook_makes_get_updates_conflict_until_deleted(telegram: TelegramBotApi, bot: Bot) -> None:
    assert call(telegram, bot.token, "setWebhook", url="https://example.org/hook").json() == {
        "ok": True,
        "result": True,
    }
    assert call(telegram, bot.token, "getWebhookInfo").json()["result"]["url"] == "https://example.org/hook"
    conflict = call(telegram, bot.token, "getUpdates")
    assert conflict.status_code == 409
    assert conflict.json()["description"].startswith("Conflict: can't use getUpdates method while webhook is active")
    telegram.send_dm(bot.token, 7, "hi")
    assert call(telegram, bot.token, "deleteWebhook", drop_pending_updates=True).json()["result"] is True
    assert call(telegram, bot.token, "getWebhookInfo").json()["result"] == {
        "url": "",
        "has_custom_certificate": False,
        "pending_update_count": 0,
    }
    assert call(telegram, bot.token, "getUpdates").json() == {"ok": True, "result": []}


def test_a_second_poller_terminates_the_first_with_409(telegram: TelegramBotApi, bot: Bot) -> None:
    answers: list[httpx.Response] = []
    first = threading.Thread(target=lambda: answers.append(call(telegram, bot.token, "getUpdates", timeout=30)))
    first.start()
    telegram.wait_until_polling(bot.token)
    assert call(telegram, bot.token, "getUpdates", timeout=0).json()["ok"] is True
    first.join(10)
    assert answers[0].status_code == 409
    assert answers[0].json()["description"] == (
        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
    )


def test_revoking_ends_a_waiting_poll_with_401(telegram: TelegramBotApi, bot: Bot) -> None:
    answers: list[httpx.Response] = []
    poller = threading.Thread(target=lambda: answers.append(call(telegram, bot.token, "getUpdates", timeout=30)))
    poller.start()
    telegram.wait_until_polling(bot.token)
    telegram.revoke(bot.token)
    poller.join(10)
    assert answers[0].status_code == 401


def test_send_message_is_recorded_and_waited_for(telegram: TelegramBotApi, bot: Bot) -> None:
    sent = call(telegram, bot.token, "sendMessage", "form", chat_id=424242, text="<b>hi</b>", parse_mode="HTML").json()
    assert sent["ok"] is True
    assert (sent["result"]["chat"]["id"], sent["result"]["text"], sent["result"]["from"]["id"]) == (
        424242,
        "<b>hi</b>",
        bot.id,
    )
    message = telegram.wait_for_message(bot.token, 424242, timeout=5)
    assert (message.text, message.params["parse_mode"]) == ("<b>hi</b>", "HTML")
    later: list[Any] = []
    waiter = threading.Thread(
        target=lambda: later.append(telegram.wait_for_message(bot.token, 424242, 10, after=message.message_id))
    )
    waiter.start()
    call(telegram, bot.token, "sendMessage", chat_id=424242, text="second")
    waiter.join(10)
    assert later[0].text == "second"
    with pytest.raises(AssertionError, match="no message to chat 5"):
        telegram.wait_for_message(bot.token, 5, timeout=0.3)
    assert call(telegram, bot.token, "sendMessage", chat_id=424242, text=" ").json() == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: message text is empty",
    }
    assert call(telegram, bot.token, "sendMessage", text="x").json()["description"] == "Bad Request: chat not found"
    assert call(telegram, bot.token, "sendChatAction", chat_id=424242, action="typing").json() == {
        "ok": True,
        "result": True,
    }


def test_commands_round_trip_and_calls_are_recorded(telegram: TelegramBotApi, bot: Bot) -> None:
    commands = [{"command": "help", "description": "Show available commands."}]
    assert call(telegram, bot.token, "setMyCommands", "form", commands=commands).json()["result"] is True
    assert call(telegram, bot.token, "getMyCommands").json()["result"] == commands
    assert call(telegram, bot.token, "deleteMyCommands", scope={"type": "all_group_chats"}).json()["result"] is True
    assert call(telegram, bot.token, "getMyCommands").json()["result"] == []
    assert [c.method for c in telegram.calls(bot.token)] == [
        "setMyCommands",
        "getMyCommands",
        "deleteMyCommands",
        "getMyCommands",
    ]
    assert call(telegram, bot.token, "setMyCommands", commands="not json").json()["error_code"] == 400


def test_any_well_formed_token_is_a_bot_when_asked_and_a_malformed_one_still_401() -> None:
    """`make up`'s stand-in: a Customer's made-up token (crds/examples/customer.yaml's) connects offline."""
    server = TelegramBotApi(any_token_is_a_bot=True)
    server.start()
    try:
        token = "123456789:AAExampleExampleExampleExampleExample"
        first = call(server, token, "getMe")
        assert first.status_code == 200, first.text
        assert first.json()["result"]["id"] == 123456789
        assert call(server, token, "getMe").json() == first.json(), "the same bot on every call"
        server.send_dm(token, 42, "hi")
        assert call(server, token, "getUpdates").json()["result"][0]["message"]["text"] == "hi"
        assert call(server, "not-a-token", "getMe").status_code == 401
    finally:
        server.stop()
