"""A simple, deterministic model for the onboarding agent, so `make up` without a Kimi key has a chat that works.

It is not a language model: it reads the real chat-completions request the onboarding service sends (the system
prompt's "Current step" and facts, the server notes after the user's message, the tool results, the offered tools)
and answers what the step needs, by keywords: a tool call with arguments taken from the user's words, or a fixed
sentence asking for the next thing. English only. `FakeKimi(responder=answer)` answers with it every request that
offers the onboarding tools and matches no test script (other requests, e.g. a gateway's through the token proxy,
keep the canned answer), streamed like any scripted step (the real protocol: content and `tool_calls` deltas,
`finish_reason`, usage). The service is unchanged: it cannot tell.
"""

from __future__ import annotations

import re
from typing import Any

from clawhost_localcluster.fake_kimi import Step, ToolCall

# What tells an onboarding request apart from any other chat request the stand-in serves.
ONBOARDING_TOOLS = frozenset({"record_use_case", "finish_onboarding"})

_STEP = re.compile(r"Current step: ([A-Z_]+)\.")
_FACT = re.compile(r"^(Telegram bot connected|Telegram user|Recommended plan|Chosen plan): (.+)$", re.MULTILINE)
_YES = re.compile(r"\b(yes|yeah|yep|yup|sure|correct|right|that's me|it's me|ja|oui|sí|si|ok|okay)\b", re.IGNORECASE)
_NO = re.compile(r"\b(no|nope|not me|nein|non)\b", re.IGNORECASE)
_TYPED_ID = re.compile(r"(?<![\d:])\d{5,15}(?![\d:])")

ASK_USE_CASE = "What would you like your agent to help you with?"
ASK_TOKEN = (
    "Next, your Telegram bot: in Telegram, open @BotFather, send /newbot, choose a name and a username ending in "
    "'bot', then paste the token it gives you here."
)
ASK_PREFERENCES = (
    "How much will you use your agent: occasionally, daily or heavily? And how many people will talk to it on Telegram?"
)


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _offered(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The tools the request offers, by name, with their JSON schema."""
    found: dict[str, dict[str, Any]] = {}
    for tool in body.get("tools") or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            found[function["name"]] = function.get("parameters") or {}
    return found


class _Reading:
    """What the request says: the step, the facts, the user's last words, what came after them."""

    def __init__(self, body: dict[str, Any]) -> None:
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        system = _text(messages[0]) if messages and messages[0].get("role") == "system" else ""
        step = _STEP.search(system)
        self.step = step.group(1) if step else ""
        self.facts = {name: value for name, value in _FACT.findall(system)}
        plans = re.search(r"^Plans \(.*?\):\n((?:.+\n?)+)", system, re.MULTILINE)
        self.plans = plans.group(1).strip() if plans else ""
        last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
        self.user = _text(messages[last_user]) if last_user >= 0 else ""
        after = messages[last_user + 1 :] if last_user >= 0 else []
        self.notes = [_text(m) for m in after if m.get("role") in ("system", "developer")]
        self.tool_results = [_text(m) for m in after if m.get("role") == "tool"]
        self.tools = _offered(body)

    def bot(self) -> str | None:
        connected = self.facts.get("Telegram bot connected")
        return connected.lstrip("@") if connected else None

    def unconfirmed_user(self) -> str | None:
        user = self.facts.get("Telegram user", "")
        return user.split(" (")[0] if "not yet confirmed" in user else None


def _call(reading: _Reading, name: str, arguments: dict[str, Any]) -> Step:
    if name not in reading.tools:
        return Step(text="Sorry, I can't record that right now. Could you say it once more?")
    return Step(tool_calls=(ToolCall(name, arguments),))


def _ask_telegram(reading: _Reading) -> str:
    bot = reading.bot()
    if bot is None:
        return ASK_TOKEN
    someone = reading.unconfirmed_user()
    if someone:
        return f"Someone called {someone} pressed Start in @{bot}. Is this you, {someone}?"
    return (
        f"Your bot @{bot} is connected. Open t.me/{bot} in Telegram and press Start, then tell me here "
        "(or type your numeric Telegram user id)."
    )


def _plans(reading: _Reading) -> str:
    recommended = reading.facts.get("Recommended plan", "pro")
    return f"I recommend {recommended.title()}. The plans, per month:\n{reading.plans}\nWhich plan would you like?"


def _ask(reading: _Reading) -> str:
    """The next question for where the conversation stands."""
    if reading.step == "GATHERING_USE_CASE":
        return ASK_USE_CASE
    if reading.step == "GATHERING_TELEGRAM":
        return _ask_telegram(reading)
    if reading.step == "GATHERING_PREFERENCES":
        return ASK_PREFERENCES
    if reading.step == "RECOMMENDING_TIER":
        chosen = reading.facts.get("Chosen plan")
        if chosen:
            return f"Done: {chosen.title()} it is. Next comes the checkout."
        return _plans(reading)
    return "Thank you!"


def _after_tools(reading: _Reading) -> Step:
    """The answer once the tools ran: their words where they refused, else the next step's question."""
    result = reading.tool_results[-1]
    if result.startswith("Refused") or result.startswith("Invalid arguments"):
        reason = result.split(":", 1)[1].split(". Tell them")[0].strip() if ":" in result else result
        return Step(text=f"That did not work: {reason}. Could you tell me once more?")
    if result.startswith("Cleared"):
        return Step(
            text="No problem. Press Start in your bot from your own Telegram account, or type your numeric "
            "Telegram user id."
        )
    if result.startswith("Nobody has pressed Start"):
        return Step(text=_ask_telegram(reading))
    if result.startswith("Not yet: present the plans"):
        return Step(text=_plans(reading))
    return Step(text=_ask(reading))


def _note_answer(reading: _Reading) -> str | None:
    """What to say about the server's notes on this message (the token check, who pressed Start), if anything."""
    for note in reversed(reading.notes):
        body = note.removeprefix("Server note: ")
        if "not in the format" in body:
            return (
                "That doesn't look like a whole bot token. Copy it again from @BotFather (digits, a colon, "
                "then a long code) and paste it here."
            )
        if "was refused" in body:
            reason = body.split("was refused:", 1)[1].split(". Ask")[0].strip()
            return f"Telegram refused that token ({reason}). Please paste the current token from @BotFather."
        if "could not be reached" in body:
            return "I couldn't reach Telegram just now. Please try again in a minute."
        if "has a webhook set" in body:
            return "Your bot has a webhook set, so I can't see who pressed Start. Please type your numeric user id."
        if "nobody has pressed Start" in body or "valid token for @" in body:
            return _ask_telegram(reading)
        name = re.match(r"'(.*?)' pressed Start|\"(.*?)\" pressed Start", body)
        if name:
            someone = next((g for g in name.groups() if g), "someone")
            return f"{someone} pressed Start in your bot. Is this you, {someone}?"
    return None


def _activity(text: str) -> str:
    lowered = text.lower()
    if re.search(r"heav|a lot|all day|constant|intens", lowered):
        return "heavy"
    if re.search(r"occasion|sometimes|rarely|now and then|weekly|little", lowered):
        return "occasional"
    return "daily"


def _telegram_users(text: str) -> int:
    number = re.search(r"(?<!\d)(10|[1-9])(?!\d)", text)
    if number:
        return int(number.group(1))
    words = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}
    for word, count in words.items():
        if re.search(rf"\b{word}\b", text, re.IGNORECASE):
            return count
    return 1


def _chosen_tier(reading: _Reading) -> str | None:
    schema = reading.tools.get("finish_onboarding", {})
    tier_schema = (schema.get("properties") or {}).get("tier") or {}
    names = [str(name) for name in tier_schema.get("enum") or ("starter", "pro", "team")]
    for name in names:
        if re.search(rf"\b{re.escape(name)}\b", reading.user, re.IGNORECASE):
            return name
    recommended = reading.facts.get("Recommended plan", "")
    return recommended if recommended in names and _YES.search(reading.user) else None


def _answer_user(reading: _Reading) -> Step:
    """The first answer to the user's message: a tool call when the message settles something, else words."""
    user = reading.user
    if reading.step == "GATHERING_USE_CASE":
        use_case = " ".join(user.split())[:300]
        if len(use_case) < 2:
            return Step(text=ASK_USE_CASE)
        return _call(reading, "record_use_case", {"use_case": use_case, "language": "en"})
    if reading.step == "GATHERING_TELEGRAM":
        noted = _note_answer(reading)
        if noted is not None:
            return Step(text=noted)
        if reading.unconfirmed_user():
            yes, no = _YES.search(user), _NO.search(user)
            if yes is not None or no is not None:
                is_them = yes is not None and (no is None or yes.start() < no.start())
                return _call(reading, "confirm_telegram_user", {"is_them": is_them})
        typed = _TYPED_ID.search(user)
        if reading.bot() and typed:
            return _call(reading, "set_telegram_user_id", {"user_id": int(typed.group(0))})
        return Step(text=_ask_telegram(reading))
    if reading.step == "GATHERING_PREFERENCES":
        arguments = {"activity": _activity(user), "telegram_users": _telegram_users(user)}
        return _call(reading, "record_preferences", arguments)
    if reading.step == "RECOMMENDING_TIER":
        tier = _chosen_tier(reading)
        if tier is not None and "Recommended plan" in reading.facts:
            return _call(reading, "finish_onboarding", {"tier": tier})
        if "Recommended plan" not in reading.facts:
            return _call(reading, "recommend_tier", {})
        return Step(text=_plans(reading))
    return Step(text=_ask(reading))


def answer(body: dict[str, Any]) -> Step | None:
    """The model's answer to an onboarding chat-completions request; None when the request is not the onboarding
    agent's (it does not offer its tools)."""
    reading = _Reading(body)
    if not reading.tools.keys() >= ONBOARDING_TOOLS:
        return None
    if reading.tool_results:
        return _after_tools(reading)
    return _answer_user(reading)
