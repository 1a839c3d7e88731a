"""The model's tools. Each checks its arguments and the conversation's state in code and answers in words the model
passes on; none takes or returns a bot token, a price the model made up, or a billing choice."""

from __future__ import annotations

import re
from typing import Literal

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from clawhost_api.onboarding import Activity
from clawhost_api.tiers import TierName, get_tier
from clawhost_onboarding import tiers
from clawhost_onboarding.session import Session, TelegramUser
from clawhost_onboarding.states import State


class UseCaseArgs(BaseModel):
    use_case: str = Field(min_length=2, max_length=300, description="What the user wants the agent for, in short.")
    language: str = Field(
        pattern=r"^[a-z]{2,3}$", description="ISO 639-1 code of the language the user writes in, e.g. en, de."
    )


class ConfirmArgs(BaseModel):
    is_them: bool = Field(description="true if the user said the person who pressed Start is them.")


class TypedIdArgs(BaseModel):
    user_id: int = Field(gt=0, lt=2**53, description="The numeric Telegram user id exactly as the user typed it.")


class PreferencesArgs(BaseModel):
    activity: Activity = Field(description="How much the user will use the agent.")
    telegram_users: int = Field(ge=1, le=10, description="How many people will talk to the agent on Telegram.")


class NoArgs(BaseModel):
    pass


class FinishArgs(BaseModel):
    tier: TierName = Field(description="The plan the user chose: starter, pro or team.")


def advance_when_ready(session: Session) -> None:
    """The state machine's gathering steps: move on as soon as what a step gathers is settled (never skipping)."""
    g = session.gathered
    ready = {
        State.NEW: True,
        State.GATHERING_USE_CASE: g.use_case is not None,
        State.GATHERING_TELEGRAM: g.bot is not None and g.telegram_user is not None and g.telegram_user.confirmed,
        State.GATHERING_PREFERENCES: g.activity is not None and g.telegram_users is not None,
    }
    following = {
        State.NEW: State.GATHERING_USE_CASE,
        State.GATHERING_USE_CASE: State.GATHERING_TELEGRAM,
        State.GATHERING_TELEGRAM: State.GATHERING_PREFERENCES,
        State.GATHERING_PREFERENCES: State.RECOMMENDING_TIER,
    }
    while ready.get(session.state, False):
        session.move(following[session.state])


class Toolbox:
    """The tools of one turn, bound to its session. `recommendation_seen` is whether the user had the plans in front
    of them before this turn: a plan can only be chosen after it was shown."""

    def __init__(self, session: Session, last_user_text: str) -> None:
        self.session = session
        self.last_user_text = last_user_text
        self.recommendation_seen = session.gathered.recommended_tier is not None
        self.finished = False

    def record_use_case(self, use_case: str, language: str) -> str:
        g = self.session.gathered
        g.use_case, g.language = use_case.strip(), language
        advance_when_ready(self.session)
        return f"Recorded. Now at step {self.session.state.value}."

    def confirm_telegram_user(self, is_them: bool) -> str:
        user = self.session.gathered.telegram_user
        if user is None:
            return "Nobody has pressed Start yet: ask the user to open their bot and press Start."
        if not is_them:
            self.session.gathered.telegram_user = None
            return (
                "Cleared. Ask the user to press Start in their bot from their own Telegram account, "
                "or to type their numeric Telegram user id."
            )
        user.confirmed = True
        advance_when_ready(self.session)
        return f"Confirmed. Now at step {self.session.state.value}."

    def set_telegram_user_id(self, user_id: int) -> str:
        # The id must be the user's own words, not the model's: it has to appear in the message just received.
        if not re.search(rf"(?<!\d){user_id}(?!\d)", self.last_user_text):
            return "Refused: that number is not in the user's last message. Ask the user to type their id."
        self.session.gathered.telegram_user = TelegramUser(id=user_id, confirmed=True)
        advance_when_ready(self.session)
        return f"Recorded. Now at step {self.session.state.value}."

    def _recommendation(self) -> str:
        g = self.session.gathered
        g.recommended_tier = tiers.recommend(g.activity, g.telegram_users)
        return f"Recommended: {g.recommended_tier}. Plans:\n{tiers.table()}"

    def record_preferences(self, activity: Activity, telegram_users: int) -> str:
        if self.session.state in (State.GATHERING_USE_CASE, State.GATHERING_TELEGRAM):
            return f"Not yet: the current step is {self.session.state.value}."
        g = self.session.gathered
        g.activity, g.telegram_users = activity, telegram_users
        advance_when_ready(self.session)
        return f"Recorded. {self._recommendation()}"

    def recommend_tier(self) -> str:
        if self.session.state != State.RECOMMENDING_TIER:
            return f"Not yet: the current step is {self.session.state.value}."
        return self._recommendation()

    def finish_onboarding(self, tier: TierName) -> str:
        if self.session.state != State.RECOMMENDING_TIER:
            return f"Not yet: the current step is {self.session.state.value}."
        if not self.recommendation_seen:
            return "Not yet: present the plans first and let the user choose."
        g = self.session.gathered
        plan = get_tier(tier)
        if g.telegram_users is not None and g.telegram_users > plan.telegram_users_max:
            return (
                f"Refused: {plan.display_name} allows {plan.telegram_users_max} Telegram user(s) and the user wants "
                f"{g.telegram_users}. Tell them and let them choose again."
            )
        g.tier = tier
        self.session.complete = True
        self.finished = True
        return (
            f"Done: {plan.display_name} at {tiers.price_text(plan)}, billed by Stripe. The server now creates the "
            "agent and the checkout link (after sign-up or log-in if needed). Tell the user in one or two sentences."
        )

    def tools(self) -> list[BaseTool]:
        def tool(name: str, description: str, schema: type[BaseModel], function: object) -> BaseTool:
            return StructuredTool.from_function(
                func=function,  # type: ignore[arg-type]
                name=name,
                description=description,
                args_schema=schema,
                handle_validation_error=lambda error: f"Invalid arguments: {error}",
            )

        return [
            tool(
                "record_use_case",
                "Record what the user wants the agent for and their language.",
                UseCaseArgs,
                self.record_use_case,
            ),
            tool(
                "confirm_telegram_user",
                "Record whether the person who pressed Start in the bot is the user.",
                ConfirmArgs,
                self.confirm_telegram_user,
            ),
            tool(
                "set_telegram_user_id",
                "Record a numeric Telegram user id the user typed themselves.",
                TypedIdArgs,
                self.set_telegram_user_id,
            ),
            tool(
                "record_preferences",
                "Record how much the user will use the agent and how many Telegram users.",
                PreferencesArgs,
                self.record_preferences,
            ),
            tool(
                "recommend_tier",
                "The recommended plan and every plan's price and allowances.",
                NoArgs,
                self.recommend_tier,
            ),
            tool("finish_onboarding", "Finish with the plan the user chose.", FinishArgs, self.finish_onboarding),
        ]


ToolName = Literal[
    "record_use_case",
    "confirm_telegram_user",
    "set_telegram_user_id",
    "record_preferences",
    "recommend_tier",
    "finish_onboarding",
]
