"""The model side of an onboarding conversation, scripted for the FakeKimi (one trigger per user message), and what a
test reads of a session; the onboarding tests and the journey tests through the control API play the same one."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis

from clawhost_localcluster.fake_kimi import FakeKimi, Step, ToolCall
from clawhost_localcluster.onboarding_process import OnboardingClient
from clawhost_localcluster.telegram_bot_api import TelegramBotApi

PREFIX = "clawhost:onboarding"  # the service's default Redis key prefix
HAPPY_MESSAGES = 6
TELEGRAM_USER_ID = 4242


def fresh_ip() -> str:
    """A client address no other test used (the per-address new-session limit counts per address)."""
    return f"198.51.100.{uuid.uuid4().int % 250 + 1}/{uuid.uuid4().hex[:8]}"


def of_type(frames: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [frame for frame in frames if frame["type"] == kind]


def stored_session(redis_url: str, session_id: str) -> dict[str, Any]:
    raw = redis.Redis.from_url(redis_url).get(f"{PREFIX}:session:{session_id}")
    assert raw is not None, "the session is not in Redis"
    return dict(json.loads(raw))


def redis_values(redis_url: str) -> dict[str, bytes]:
    """Every onboarding key and its serialised value (whatever its type)."""
    client = redis.Redis.from_url(redis_url)
    return {key.decode(): client.dump(key) or b"" for key in client.scan_iter(f"{PREFIX}:*")}


@dataclass
class Conversation:
    """Triggers unique to one test: `marker(n)` goes into the n-th user message."""

    kimi: FakeKimi
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def marker(self, n: int) -> str:
        return f"[{self.tag}-{n}]"

    def script(self, n: int, *steps: Step) -> None:
        self.kimi.script(self.marker(n), *steps)

    def requests(self, n: int | None = None) -> list[dict[str, Any]]:
        """The requests the model got in this conversation (only those answering user message `n`, if given)."""
        wanted = self.marker(n) if n is not None else f"[{self.tag}-"
        found = []
        for request in list(self.kimi.requests):
            users = [m for m in request.get("messages", []) if m.get("role") == "user"]
            if users and wanted in json.dumps(users[-1] if n is not None else users):
                found.append(request)
        return found

    def happy_path(self) -> None:
        """Six user messages from the use case to a chosen plan (the token in 2, Start pressed before 3)."""
        self.script(
            1,
            Step(tool_calls=(ToolCall("record_use_case", {"use_case": "bakery order reminders", "language": "en"}),)),
            Step(text="Great! Create a bot with @BotFather (/newbot) and paste its token here."),
        )
        self.script(2, Step(text="Thanks, your bot is connected. Open it in Telegram and press Start, then tell me."))
        self.script(3, Step(text="Is this you: Ana?"))
        self.script(
            4,
            Step(tool_calls=(ToolCall("confirm_telegram_user", {"is_them": True}),)),
            Step(text="How often will you use it? Will anyone else talk to it?"),
        )
        self.script(
            5,
            Step(tool_calls=(ToolCall("record_preferences", {"activity": "daily", "telegram_users": 1}),)),
            Step(text="I recommend Pro: 5,000,000 tokens a month. Which plan would you like?"),
        )
        self.script(
            6,
            Step(tool_calls=(ToolCall("finish_onboarding", {"tier": "pro"}),)),
            Step(text="Done: Pro it is. Next comes the checkout."),
        )

    def happy_message(self, n: int, token: str) -> str:
        """The user's n-th message of the happy path."""
        words = {
            1: "Hi {m} I want an agent that reminds me of my bakery's orders",
            2: "Here it is {m} {token}",
            3: "done {m}",
            4: "yes, that's me {m}",
            5: "daily, only me {m}",
            6: "Pro please {m}",
        }
        return words[n].format(m=self.marker(n), token=token)

    async def play(
        self, client: OnboardingClient, telegram: TelegramBotApi, token: str, first: int = 1, last: int = HAPPY_MESSAGES
    ) -> list[dict[str, Any]]:
        """User messages `first`..`last` of the happy path on a connection that said hello; every frame received.
        Ana presses Start in the bot right before message 3."""
        frames: list[dict[str, Any]] = []
        for n in range(first, last + 1):
            if n == 3:
                telegram.send_dm(token, TELEGRAM_USER_ID, "/start", first_name="Ana")
            frames += await client.say(self.happy_message(n, token))
        return frames


async def chat_to_a_result(
    client: OnboardingClient, talk: Conversation, telegram: TelegramBotApi, token: str, user_id: str | None = "7"
) -> tuple[str, list[dict[str, Any]]]:
    """The happy path on `client` (a connection to the service); the session id and every frame of the conversation."""
    session = await client.hello(client_ip=fresh_ip(), user_id=user_id)
    assert session["type"] == "session", session
    frames = await talk.play(client, telegram, token)
    frames += await client.until("result", "sign_in_required")
    return session["session_id"], frames
