"""The model side of an onboarding conversation, scripted for the FakeKimi (one trigger per user message); the
onboarding tests and the journey tests through the control API play the same one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from clawhost_localcluster.fake_kimi import FakeKimi, Step, ToolCall


@dataclass
class Conversation:
    """Triggers unique to one test: `say(n)` is the n-th user message's marker."""

    kimi: FakeKimi
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def marker(self, n: int) -> str:
        return f"[{self.tag}-{n}]"

    def script(self, n: int, *steps: Step) -> None:
        self.kimi.script(self.marker(n), *steps)

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
