"""One internal WebSocket connection: the frames of onboarding/PROTOCOL.md applied to a session kept in Redis."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, messages_to_dict
from langchain_openai import ChatOpenAI
from pydantic import ValidationError

from clawhost_api.onboarding import AgentRequest, OnboardingResult
from clawhost_api.tiers import get_tier
from clawhost_onboarding import bot_token, texts
from clawhost_onboarding.agent import TokenBudgetSpentError, Turn, UpstreamUnavailableError
from clawhost_onboarding.frames import (
    INCOMING,
    AgentCreationFailed,
    Authenticated,
    CheckoutCreated,
    ErrorCode,
    Hello,
    Message,
    Provisioning,
    Retry,
    SecretWritten,
    error_frame,
    session_frame,
)
from clawhost_onboarding.session import BotIdentity, Line, Session, TelegramUser
from clawhost_onboarding.settings import OnboardingSettings
from clawhost_onboarding.states import CONVERSING, State, TransitionError
from clawhost_onboarding.store import SessionStore
from clawhost_onboarding.telegram import Bot, BotApi, TelegramUnavailableError, TokenRefused, WebhookSetError
from clawhost_onboarding.tools import advance_when_ready
from clawhost_onboarding.user_safe import scrub

logger = logging.getLogger("clawhost.onboarding")

Send = Callable[[dict[str, Any]], Awaitable[None]]


class CloseConnectionError(Exception):
    """Stop serving this connection with a WebSocket close code (after the error frame went out)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Services:
    settings: OnboardingSettings
    store: SessionStore
    telegram: BotApi
    model: ChatOpenAI


def log_id(session_id: str) -> str:
    """A session id is what resumes a conversation: logs carry a digest of it, never the id."""
    return hashlib.sha256(session_id.encode()).hexdigest()[:16]


_PHASE_STATE = {
    "payment_received": State.PROVISIONING,
    "starting": State.PROVISIONING,
    "live": State.COMPLETE,
    "failed": State.FAILED,
}


class Conversation:
    def __init__(self, services: Services, send: Send) -> None:
        self._s = services
        self._send = send
        self.session: Session | None = None
        self._waiting_for_account = False  # a bound session resumed without its account: nothing shown yet

    # ---- the frame loop's entry -------------------------------------------------------------------------------
    async def handle(self, raw: str) -> None:
        try:
            frame = INCOMING.validate_json(raw)
        except ValidationError as error:
            where = ", ".join(".".join(str(p) for p in e["loc"]) or "frame" for e in error.errors()[:3])
            await self._error("bad_request", f"not a valid frame ({where})", retryable=False)
            return
        if isinstance(frame, Hello):
            await self._hello(frame)
            return
        if self.session is None:
            await self._error("bad_request", "send hello first", retryable=False)
            return
        if isinstance(frame, Authenticated):
            await self._authenticated(frame)
        elif self._waiting_for_account:
            await self._send({"type": "sign_in_required", "reason": texts.text("sign_in", self._language())})
        elif isinstance(frame, Message):
            await self._message(frame)
        elif isinstance(frame, Retry):
            await self._retry()
        elif isinstance(frame, CheckoutCreated):
            await self._checkout_created(frame)
        elif isinstance(frame, AgentCreationFailed):
            await self._error("agent_creation_failed", scrub(frame.message), retryable=frame.retryable)
        elif isinstance(frame, SecretWritten):
            await self._secret_written()
        elif isinstance(frame, Provisioning):
            await self._provisioning(frame)

    # ---- helpers ------------------------------------------------------------------------------------------------
    def _language(self) -> str:
        assert self.session is not None
        return self.session.gathered.language or self.session.language_hint

    async def _error(self, code: ErrorCode, message: str, retryable: bool) -> None:
        await self._send(error_frame(code, message, retryable))

    async def _save(self) -> None:
        assert self.session is not None
        await self._s.store.save(self.session)

    def _log(self, message: str, **fields: Any) -> None:
        session = self.session
        extra = {"session": log_id(session.id), "state": session.state.value} if session else {}
        logger.info(message, extra={**extra, **fields})

    async def _send_session(self) -> None:
        s = self.session
        assert s is not None
        bot = s.gathered.bot.username if s.gathered.bot else None
        await self._send(session_frame(s.id, s.state, s.transcript, s.checkout_url, bot, s.user_id, s.customer_name))

    # ---- hello / authenticated ----------------------------------------------------------------------------------
    async def _hello(self, hello: Hello) -> None:
        if self.session is not None:
            await self._error("bad_request", "hello was already sent on this connection", retryable=False)
            return
        session = await self._s.store.load(hello.session_id) if hello.session_id else None
        if hello.session_id and session is None:
            await self._error(
                "session_expired", "That conversation has expired; let's start a new one.", retryable=False
            )
        if session is None:
            session = await self._new_session(hello)
            self.session = session
            self._log("session started", client_ip=hello.client_ip)
        else:
            self.session = session
            if session.user_id is not None and hello.user_id != session.user_id:
                if hello.user_id is not None:
                    self.session = None
                    await self._error("forbidden", "This conversation belongs to another account.", retryable=False)
                    raise CloseConnectionError(4403)
                self._waiting_for_account = True
                await self._send({"type": "sign_in_required", "reason": texts.text("sign_in", self._language())})
                return
            if session.user_id is None and hello.user_id is not None:
                session.user_id = hello.user_id
                await self._save()
            self._log("session resumed")
        await self._send_session()
        await self._continue()

    async def _new_session(self, hello: Hello) -> Session:
        limit = self._s.settings.max_new_sessions_per_ip_per_hour
        if await self._s.store.count_new_session(hello.client_ip, limit) is None:
            minutes = (await self._s.store.seconds_to_next_window()) // 60 + 1
            logger.info("new session refused", extra={"client_ip": hello.client_ip, "limit": limit})
            await self._error(
                "rate_limited",
                f"Too many new conversations from your network in the last hour (at most {limit}). "
                f"Please come back in about {minutes} minutes, or continue an existing conversation.",
                retryable=True,
            )
            raise CloseConnectionError(4429)
        session = Session.new(texts.primary_language(hello.language))
        session.user_id = hello.user_id
        greeting = texts.text("greeting", session.language_hint)
        session.transcript.append(Line(role="assistant", text=greeting))
        session.history.extend(messages_to_dict([AIMessage(content=greeting)]))
        session.move(State.GATHERING_USE_CASE)
        await self._s.store.save(session)
        return session

    async def _continue(self) -> None:
        """Whatever a resumed or re-bound session still owes: the reply a restart cut off, or the result."""
        s = self.session
        assert s is not None
        if s.pending_reply and s.state in CONVERSING and not s.complete:
            await self._run_turn()
        elif s.complete and s.state == State.RECOMMENDING_TIER:
            await self._offer_result()

    async def _authenticated(self, frame: Authenticated) -> None:
        s = self.session
        assert s is not None
        if s.user_id is not None and s.user_id != frame.user_id:
            await self._error("forbidden", "This conversation belongs to another account.", retryable=False)
            raise CloseConnectionError(4403)
        first_binding = s.user_id is None
        s.user_id = frame.user_id
        await self._save()
        if first_binding:
            self._log("session bound to an account")
        if self._waiting_for_account:
            self._waiting_for_account = False
            await self._send_session()
            await self._continue()
        elif s.complete and s.state == State.RECOMMENDING_TIER:
            await self._offer_result()

    # ---- messages -----------------------------------------------------------------------------------------------
    async def _message(self, frame: Message) -> None:
        s = self.session
        assert s is not None
        settings = self._s.settings
        text = frame.text.strip()
        if not text or len(text) > settings.max_message_chars:
            await self._error(
                "bad_request", f"A message has 1 to {settings.max_message_chars} characters.", retryable=False
            )
            return
        if s.complete or s.state not in CONVERSING:
            if s.complete and s.state == State.RECOMMENDING_TIER:
                await self._offer_result()
            else:
                await self._error("bad_request", "This conversation is complete.", retryable=False)
            return
        if s.messages_used >= settings.max_messages_per_session:
            self._log("message limit reached", limit=settings.max_messages_per_session)
            await self._error(
                "session_message_limit",
                f"This conversation has reached its limit of {settings.max_messages_per_session} messages. "
                "Sign in and set your agent up from the dashboard, or write to support@clawhost.dev.",
                retryable=False,
            )
            return
        if s.tokens_used >= settings.max_tokens_per_session:
            await self._token_limit()
            return
        extraction = bot_token.extract(text)
        s.messages_used += 1
        s.transcript.append(Line(role="user", text=extraction.text))
        s.history.extend(messages_to_dict([HumanMessage(content=extraction.text)]))
        s.pending_reply = True
        if extraction.candidates:
            await self._send({"type": "typing"})
            s.history.extend(messages_to_dict([SystemMessage(content=await self._check_token(extraction))]))
        if s.gathered.bot is not None and not (s.gathered.telegram_user and s.gathered.telegram_user.confirmed):
            note = await self._look_for_start()
            if note:
                s.history.extend(messages_to_dict([SystemMessage(content=note)]))
        advance_when_ready(s)
        await self._save()
        await self._run_turn()

    async def _check_token(self, extraction: bot_token.Extraction) -> str:
        """Validate the pasted token (format, then getMe) and say the outcome in words for the model."""
        s = self.session
        assert s is not None
        token = extraction.token
        if token is None:
            self._log("bot token refused", reason="format")
            return (
                "Server note: the user pasted something like a bot token, but it is not in the format @BotFather "
                "gives (digits, a colon, then about 35 letters, digits, - or _). It was removed. Ask them to copy it "
                "again from @BotFather."
            )
        try:
            answer: Bot | TokenRefused = await self._s.telegram.get_me(token)
        except TelegramUnavailableError:
            self._log("bot token unchecked", reason="telegram unavailable")
            return (
                "Server note: a bot token was received but Telegram could not be reached to check it; it was not "
                "kept. Ask the user to send it again in a minute."
            )
        if isinstance(answer, TokenRefused):
            self._log("bot token refused", reason="telegram")
            return f"Server note: the bot token was refused: {answer.reason}. Ask for the current token."
        # A second token (another bot) keeps the confirmed Telegram user: user ids are Telegram's, not a bot's.
        await self._s.store.keep_bot_token(s.id, token)
        s.gathered.bot = BotIdentity(id=answer.id, username=answer.username, first_name=answer.first_name)
        self._log("bot token accepted", bot_username=answer.username)
        return f"Server note: a valid token for @{answer.username} was received and kept."

    async def _look_for_start(self) -> str | None:
        """Who pressed Start in the user's bot (getUpdates), as a note for the model; None when nothing changed."""
        s = self.session
        assert s is not None
        assert s.gathered.bot is not None
        token = await self._s.store.bot_token(s.id)
        if token is None:
            return None
        bot = s.gathered.bot.username
        try:
            starter = await self._s.telegram.latest_starter(token)
        except WebhookSetError:
            return (
                f"Server note: @{bot} has a webhook set, so the server cannot see who pressed Start. Ask the user to "
                "type their numeric Telegram user id, or to remove the webhook."
            )
        except TelegramUnavailableError:
            return "Server note: Telegram could not be reached to see who pressed Start; try again next message."
        if starter is None:
            return (
                f"Server note: nobody has pressed Start in @{bot} yet. Ask the user to open t.me/{bot} and press "
                "Start, then tell you (or to type their numeric Telegram user id)."
            )
        current = s.gathered.telegram_user
        if current is not None and current.id == starter.user_id:
            return None
        s.gathered.telegram_user = TelegramUser(id=starter.user_id, first_name=starter.first_name)
        self._log("telegram user seen")
        return (
            f"Server note: {starter.first_name!r} pressed Start in @{bot}. Ask the user: is this you, "
            f"{starter.first_name}? Record the answer with confirm_telegram_user."
        )

    async def _retry(self) -> None:
        s = self.session
        assert s is not None
        if s.pending_reply and s.state in CONVERSING and not s.complete:
            await self._run_turn()
        elif s.complete and s.state == State.RECOMMENDING_TIER:
            await self._offer_result()
        else:
            await self._error("bad_request", "There is nothing to retry.", retryable=False)

    async def _token_limit(self) -> None:
        assert self.session is not None
        self._log("token limit reached", limit=self._s.settings.max_tokens_per_session)
        await self._error(
            "session_token_limit",
            "This conversation has used up what one setup may use. Sign in and set your agent up from the "
            "dashboard, or write to support@clawhost.dev.",
            retryable=False,
        )

    async def _run_turn(self) -> None:
        s = self.session
        assert s is not None
        last_user = next((line.text for line in reversed(s.transcript) if line.role == "user"), "")
        turn = Turn(self._s.model, self._s.settings, self._send, self._save)
        try:
            outcome = await turn.run(s, last_user)
        except UpstreamUnavailableError as error:
            await self._save()
            self._log("model unavailable", error=str(error))
            await self._error(
                "upstream_unavailable",
                "The assistant is not answering right now. Your conversation is saved: try again in a moment.",
                retryable=True,
            )
            return
        except TokenBudgetSpentError:
            await self._save()
            await self._token_limit()
            return
        await self._save()
        self._log("reply", tokens=outcome.tokens, tokens_used=s.tokens_used, messages_used=s.messages_used)
        await self._send({"type": "reply", "text": outcome.text, "state": s.state.value})
        if outcome.finished:
            await self._offer_result()

    # ---- after the conversation ---------------------------------------------------------------------------------
    async def _offer_result(self) -> None:
        s = self.session
        assert s is not None
        if s.user_id is None:
            await self._send({"type": "sign_in_required", "reason": texts.text("sign_in", self._language())})
            return
        result = await self._result()
        if result is None:
            await self._error("internal", "Something is missing from this conversation; please start again.", False)
            return
        self._log("result sent", tier=result.agent.tier)
        await self._send(
            {"type": "result", "session_id": s.id, "user_id": s.user_id, "result": result.model_dump(mode="json")}
        )

    async def _result(self) -> OnboardingResult | None:
        s = self.session
        assert s is not None
        g = s.gathered
        if g.tier is None or g.bot is None or g.telegram_user is None or g.use_case is None:
            return None
        token = None if s.token_deleted else await self._s.store.bot_token(s.id)
        if token is None and not s.token_deleted:
            return None
        tier = get_tier(g.tier)
        return OnboardingResult(
            agent=AgentRequest(tier=g.tier, bot_token=token, allowed_user_ids=[g.telegram_user.id]),
            price_cents=tier.price_cents,
            bot_username=g.bot.username,
            bot_id=g.bot.id,
            telegram_user_first_name=g.telegram_user.first_name,
            use_case=g.use_case,
            language=g.language or s.language_hint,
            activity=g.activity,
        )

    async def _checkout_created(self, frame: CheckoutCreated) -> None:
        s = self.session
        assert s is not None
        if not s.complete:
            await self._error("bad_request", "checkout_created before the conversation was complete", False)
            return
        s.customer_name, s.checkout_url = frame.customer_name, frame.url
        if s.state == State.RECOMMENDING_TIER:
            s.move(State.AWAITING_PAYMENT)
            s.transcript.append(Line(role="assistant", text=texts.text("checkout", self._language(), url=frame.url)))
        await self._save()
        self._log("checkout created")
        await self._send({"type": "checkout", "url": frame.url})

    async def _secret_written(self) -> None:
        s = self.session
        assert s is not None
        await self._s.store.forget_bot_token(s.id)
        s.token_deleted = True
        await self._save()
        self._log("bot token deleted")

    async def _provisioning(self, frame: Provisioning) -> None:
        s = self.session
        assert s is not None
        target = _PHASE_STATE[frame.phase]
        if s.state not in (State.AWAITING_PAYMENT, State.PROVISIONING, State.FAILED, State.COMPLETE):
            await self._error("bad_request", "provisioning before a checkout was created", retryable=False)
            return
        bot = frame.bot_username or (s.gathered.bot.username if s.gathered.bot else "")
        words = self._provisioning_words(frame, bot)
        if s.provisioning_phase != frame.phase:
            try:
                s.move(target)
            except TransitionError:  # a late "starting" after "live": the farther state stands
                await self._send({"type": "provisioning", "phase": frame.phase, "text": words, "bot_username": bot})
                return
            s.provisioning_phase = frame.phase
            s.transcript.append(Line(role="assistant", text=words))
            await self._save()
            self._log("provisioning", phase=frame.phase)
        await self._send({"type": "provisioning", "phase": frame.phase, "text": words, "bot_username": bot})

    def _provisioning_words(self, frame: Provisioning, bot: str) -> str:
        """What the chat says for a phase: a failure says what went wrong in the control API's words (it read the
        Customer's status), scrubbed of anything secret; the way to a live agent in the service's own words."""
        reason = scrub(frame.text) if frame.phase == "failed" and frame.text else ""
        if reason:
            if reason[-1] not in ".!?…":
                reason += "."
            return texts.text("failed_because", self._language(), reason=reason)
        return texts.text(frame.phase, self._language(), bot=bot)
