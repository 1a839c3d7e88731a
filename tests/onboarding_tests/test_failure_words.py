"""What went wrong, in the control API's words: an agent the control API could not create, and a provisioning that
failed, show its specific message (not a generic line), and never a secret even when the message held one."""

from __future__ import annotations

import json

from clawhost_localcluster.fake_kimi import FakeKimi
from clawhost_localcluster.onboarding_process import OnboardingProcess
from clawhost_localcluster.onboarding_script import Conversation, chat_to_a_result, stored_session
from clawhost_localcluster.services import RedisServer
from clawhost_localcluster.telegram_bot_api import TelegramBotApi
from clawhost_onboarding.user_safe import MAX_CHARS, SECRET_REMOVED, scrub

PROXY_TOKEN = "chp_" + "Q" * 43
JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJlLWJ5dGVz"


def test_scrub_takes_out_every_secret_shape_and_keeps_the_words() -> None:
    bot = "123456789:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0"
    text = (
        f"the cluster refused: secret bot-c1 data {bot} proxy {PROXY_TOKEN} gateway gw_abcdefgh1234 "
        f"stripe sk_test_51abcdefgh and whsec_local123456, Authorization: Bearer abc.def-ghijk, jwt {JWT}"
    )
    cleaned = scrub(text)
    for secret in (bot, bot.split(":")[1], PROXY_TOKEN, "gw_abcdefgh1234", "sk_test_51abcdefgh", "whsec_local123456"):
        assert secret not in cleaned
    assert "abc.def-ghijk" not in cleaned
    assert JWT.split(".")[1] not in cleaned
    assert cleaned.startswith("the cluster refused: secret bot-c1 data [bot token removed] proxy")
    assert cleaned.count(SECRET_REMOVED) == 6
    assert scrub("Your payment failed.\n  Update your card.") == "Your payment failed. Update your card."
    assert len(scrub("word " * 500)) == MAX_CHARS


async def test_the_control_apis_reasons_reach_the_user_without_their_secrets(
    onboarding: OnboardingProcess,
    kimi: FakeKimi,
    telegram: TelegramBotApi,
    redis_server: RedisServer,
) -> None:
    talk = Conversation(kimi)
    talk.happy_path()
    bot = telegram.register_bot("failing_helper_bot")
    async with onboarding.connect() as client:
        session_id, frames = await chat_to_a_result(client, talk, telegram, bot.token)
        assert frames[-1]["type"] == "result"

        # The control API could not create the agent: its words, less what must not be shown.
        await client.send(
            {
                "type": "agent_creation_failed",
                "message": f"the cluster refused: the tier allows 1 Telegram user(s) (token {bot.token})",
                "retryable": False,
            }
        )
        refused = (await client.until("error"))[-1]
        assert refused["code"] == "agent_creation_failed"
        assert (
            refused["message"] == "the cluster refused: the tier allows 1 Telegram user(s) (token [bot token removed])"
        )

        await client.send({"type": "checkout_created", "customer_name": "c-failing", "url": "https://x.test/f"})
        await client.until("checkout")
        await client.send({"type": "secret_written"})
        await client.send({"type": "provisioning", "phase": "payment_received"})
        await client.until("provisioning")
        reason = "Your agent could not read its Telegram bot token. Set the token again in the dashboard (Bot token)"
        await client.send(
            {"type": "provisioning", "phase": "failed", "text": f"{reason}\n{PROXY_TOKEN}", "bot_username": "x"}
        )
        failed = (await client.until("provisioning"))[-1]
    assert failed["phase"] == "failed"
    expected = f"{reason} {SECRET_REMOVED}. If it stays like this, write to support@clawhost.dev."
    assert failed["text"] == expected, "the control API's reason, not a generic line"
    stored = stored_session(redis_server.url, session_id)
    assert stored["state"] == "FAILED"
    assert stored["transcript"][-1] == {"role": "assistant", "text": failed["text"]}
    for secret in (bot.token.split(":")[1], PROXY_TOKEN):
        assert secret not in json.dumps(stored)
        assert secret not in json.dumps([f for f in client.received if f["type"] != "result"]), "what the user sees"
        assert secret not in onboarding.log()


async def test_a_failure_without_a_reason_keeps_the_general_words(
    onboarding: OnboardingProcess, kimi: FakeKimi, telegram: TelegramBotApi
) -> None:
    talk = Conversation(kimi)
    talk.happy_path()
    bot = telegram.register_bot("quiet_helper_bot")
    async with onboarding.connect() as client:
        await chat_to_a_result(client, talk, telegram, bot.token)
        await client.send({"type": "checkout_created", "customer_name": "c-quiet", "url": "https://x.test/q"})
        await client.until("checkout")
        await client.send({"type": "provisioning", "phase": "failed"})
        failed = (await client.until("provisioning"))[-1]
    assert failed["text"].startswith("Your agent could not be started.")
