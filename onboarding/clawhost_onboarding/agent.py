"""One assistant turn: the model (langchain-openai's ChatOpenAI, streamed) and its tool calls until it has answered."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import openai
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    messages_from_dict,
    messages_to_dict,
)
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from clawhost_onboarding.prompts import system_prompt
from clawhost_onboarding.questions import MAX_QUESTIONS, REWRITE_INSTRUCTION, count_questions, keep_questions
from clawhost_onboarding.session import Line, Session
from clawhost_onboarding.settings import OnboardingSettings
from clawhost_onboarding.tools import Toolbox

Send = Callable[[dict[str, object]], Awaitable[None]]


class UpstreamUnavailableError(RuntimeError):
    """The model did not answer in time or answered with an error; the session is kept as it was."""


class TokenBudgetSpentError(RuntimeError):
    """The session used its model tokens."""


def chat_model(settings: OnboardingSettings) -> ChatOpenAI:
    return ChatOpenAI(
        model=settings.llm_model,
        base_url=settings.llm_base_url,
        api_key=SecretStr(settings.llm_key()),
        streaming=True,
        stream_usage=True,
        max_completion_tokens=settings.llm_max_completion_tokens,
        timeout=settings.llm_timeout_seconds,
        max_retries=settings.llm_max_retries,
        extra_body=dict(settings.llm_extra_body) or None,
    )


@dataclass
class TurnOutcome:
    text: str  # what the assistant said in this turn (also added to the transcript)
    finished: bool  # finish_onboarding succeeded
    tokens: int  # model tokens this turn spent


class Turn:
    """Runs the model on the session's history; appends every model message and tool result to it as they happen,
    so a turn cut short (upstream down, process killed) leaves a history the next attempt continues from."""

    def __init__(
        self, model: ChatOpenAI, settings: OnboardingSettings, send: Send, save: Callable[[], Awaitable[None]]
    ) -> None:
        self._model = model
        self._settings = settings
        self._send = send
        self._save = save

    async def run(self, session: Session, last_user_text: str) -> TurnOutcome:
        toolbox = Toolbox(session, last_user_text)
        tools = {tool.name: tool for tool in toolbox.tools()}
        bound = self._model.bind_tools(list(tools.values()))
        said: list[str] = []
        spent = 0
        first_of_turn = len(session.history)
        await self._send({"type": "typing"})
        for _ in range(self._settings.max_model_calls_per_message):
            if session.tokens_used >= self._settings.max_tokens_per_session:
                raise TokenBudgetSpentError
            history: list[BaseMessage] = messages_from_dict(session.history)
            prompt: list[BaseMessage] = [SystemMessage(system_prompt(session)), *history]
            gathered: AIMessageChunk | None = None
            separator = "\n\n" if said else ""
            try:
                async with asyncio.timeout(self._settings.llm_timeout_seconds):
                    async for chunk in bound.astream(prompt):
                        if not isinstance(chunk, AIMessageChunk):
                            continue
                        gathered = chunk if gathered is None else gathered + chunk
                        piece = chunk.text if isinstance(chunk.text, str) else ""
                        if piece:
                            await self._send({"type": "delta", "text": separator + piece})
                            separator = ""
            except (openai.APIError, TimeoutError) as error:
                raise UpstreamUnavailableError(type(error).__name__) from None
            if gathered is None:
                raise UpstreamUnavailableError("empty answer")
            usage = gathered.usage_metadata or {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
            used = int(usage.get("total_tokens") or usage["input_tokens"] + usage["output_tokens"])
            session.tokens_used += used
            spent += used
            message = AIMessage(content=gathered.content, tool_calls=gathered.tool_calls)
            session.history.extend(messages_to_dict([message]))
            if gathered.text:
                said.append(gathered.text)
            if not gathered.tool_calls:
                break
            await self._send({"type": "typing"})
            for call in gathered.tool_calls:
                tool = tools.get(call["name"])
                result = str(await tool.ainvoke(call["args"])) if tool is not None else f"No tool named {call['name']}."
                session.history.extend(messages_to_dict([ToolMessage(content=result, tool_call_id=call["id"] or "")]))
            await self._save()
        text = "\n\n".join(part for part in said if part.strip()) or "…"
        if count_questions(text) > MAX_QUESTIONS:
            text, used = await self._fewer_questions(session, text)
            spent += used
            _say_once(session, first_of_turn, text)
        session.transcript.append(Line(role="assistant", text=text))
        session.pending_reply = False
        return TurnOutcome(text, toolbox.finished, spent)

    async def _fewer_questions(self, session: Session, draft: str) -> tuple[str, int]:
        """The turn's message asked more than two questions: the model is asked once to rewrite it (not streamed: the
        `reply` replaces what the deltas showed); whatever still asks too many loses the questions past the second."""
        if session.tokens_used >= self._settings.max_tokens_per_session:
            return keep_questions(draft), 0
        instruction = REWRITE_INSTRUCTION.format(count=count_questions(draft), limit=MAX_QUESTIONS)
        prompt: list[BaseMessage] = [SystemMessage(instruction), HumanMessage(f"The message:\n\n{draft}")]
        gathered: AIMessageChunk | None = None
        try:
            async with asyncio.timeout(self._settings.llm_timeout_seconds):
                async for chunk in self._model.astream(prompt):
                    if isinstance(chunk, AIMessageChunk):
                        gathered = chunk if gathered is None else gathered + chunk
        except (openai.APIError, TimeoutError):
            return keep_questions(draft), 0
        if gathered is None:
            return keep_questions(draft), 0
        usage = gathered.usage_metadata or {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
        used = int(usage.get("total_tokens") or usage["input_tokens"] + usage["output_tokens"])
        session.tokens_used += used
        rewritten = gathered.text.strip() if isinstance(gathered.text, str) else ""
        return keep_questions(rewritten or draft), used


def _say_once(session: Session, first_of_turn: int, text: str) -> None:
    """The model's history shows the turn's message as the user got it: its AI messages keep their tool calls, and
    their words become `text` on the last one."""
    messages = messages_from_dict(session.history[first_of_turn:])
    said = [i for i, message in enumerate(messages) if isinstance(message, AIMessage)]
    for i in said:
        messages[i] = messages[i].model_copy(update={"content": text if i == said[-1] else ""})
    session.history[first_of_turn:] = messages_to_dict(messages)
