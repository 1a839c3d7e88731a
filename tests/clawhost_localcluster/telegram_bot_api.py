"""A local Telegram Bot API server speaking the real protocol, for the real OpenClaw gateway and the onboarding service.

Requests are `/bot<token>/<method>` (GET or POST; parameters in the query string, a JSON body, a urlencoded or a
multipart form, as Telegram accepts them), method names case-insensitive; answers are `{"ok": true, "result": ...}`
or `{"ok": false, "error_code": N, "description": "..."}` with the same HTTP status, in Telegram's words:
401 `Unauthorized` for a token it does not know (never registered, or revoked), 404 `Not Found` for a method it
does not serve, 400 `Bad Request: ...` for a bad parameter, 409 `Conflict: ...` for `getUpdates` while a webhook is
set or while another `getUpdates` of the same bot is waiting (the earlier one is terminated, as Telegram does).

A test registers bots, injects private messages from a user id (`send_dm`), and waits for what the bot sent
(`wait_for_message`). Every call is recorded (method and parameters, the token never) so a test can tell what a
client did. It serves plain HTTP on loopback by default; `start(sock=..., ssl_context=...)` serves TLS on a socket
the caller opened (e.g. on port 443 of an address in another network namespace).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")

TOKEN_FORMAT = re.compile(r"^(\d{1,20}):[A-Za-z0-9_-]{30,60}$")
DEFAULT_ALLOWED = {"message", "edited_message", "channel_post", "edited_channel_post", "callback_query"}
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
)
MAX_POLL_TIMEOUT = 50  # seconds; Telegram caps long polls too


class BotApiError(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code, self.description = code, description


@dataclass
class SentMessage:
    chat_id: int
    text: str
    message_id: int
    params: dict[str, Any]


@dataclass
class Call:
    method: str  # as Telegram names it, e.g. "getUpdates"
    params: dict[str, Any]


@dataclass
class Bot:
    token: str
    id: int
    username: str
    first_name: str
    revoked: bool = False
    webhook_url: str = ""
    allowed_updates: set[str] = field(default_factory=lambda: set(DEFAULT_ALLOWED))
    updates: list[dict[str, Any]] = field(default_factory=list)  # not yet confirmed by an offset
    next_update_id: int = 100_000_001
    next_message_id: int = 1
    sent: list[SentMessage] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    commands: list[dict[str, Any]] = field(default_factory=list)
    poll_generation: int = 0  # bumped by each getUpdates: an older waiting one ends with 409
    polls_waiting: int = 0
    changed: asyncio.Condition | None = None

    def user(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }


def _int(params: dict[str, Any], name: str, default: int | None = None) -> int:
    value = params.get(name)
    if value is None or value == "":
        if default is None:
            raise BotApiError(
                400, f"Bad Request: {name} is empty" if name != "chat_id" else "Bad Request: chat not found"
            )
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BotApiError(400, f"Bad Request: invalid {name} specified") from None


def _json_param(params: dict[str, Any], name: str) -> Any:
    """Arrays and objects come as JSON text in query strings and forms, as native JSON in a JSON body."""
    value = params.get(name)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise BotApiError(400, f"Bad Request: can't parse {name} JSON object") from None
    return value


Handler = Callable[["TelegramBotApi", Bot, dict[str, Any]], Coroutine[Any, Any, Any]]
_METHODS: dict[str, tuple[str, Handler]] = {}  # lower-case method name -> (Telegram's spelling, handler)


def _bot_method(name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        _METHODS[name.lower()] = (name, handler)
        return handler

    return register


class TelegramBotApi:
    """The server and its test API; state is touched only on the server's own event loop."""

    def __init__(self, any_token_is_a_bot: bool = False) -> None:
        """`any_token_is_a_bot`: a well-formed token nobody registered is a new bot on first use (`make up`, where a
        Customer's made-up token must work offline), instead of 401."""
        self.any_token_is_a_bot = any_token_is_a_bot
        self.port = 0
        self.scheme = "http"
        self.host = "127.0.0.1"
        self._bots: dict[str, Bot] = {}
        # Not the same ids each run: a gateway's state may remember update ids of a bot id it saw before.
        self._next_bot_id = 7_000_000_000 + secrets.randbelow(1_000_000_000)
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # ---- the server -------------------------------------------------------------------------------------------

    @property
    def api_root(self) -> str:
        """What a client puts where it would put `https://api.telegram.org` (OpenClaw's `channels.telegram.apiRoot`)."""
        return f"{self.scheme}://{self.host}:{self.port}"

    def start(
        self, host: str = "127.0.0.1", sock: socket.socket | None = None, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._thread = threading.Thread(target=self._loop.run_forever, name="telegram-bot-api", daemon=True)
        self._thread.start()
        self._run(self._serve(host, sock, ssl_context))

    async def _serve(self, host: str, sock: socket.socket | None, ssl_context: ssl.SSLContext | None) -> None:
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        # A long poll never finishes by itself: shutting down cancels the handlers still waiting.
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site: web.BaseSite
        if sock is not None:
            site = web.SockSite(self._runner, sock, ssl_context=ssl_context)
            self.host, self.port = sock.getsockname()[:2]
        else:
            site = web.TCPSite(self._runner, host, 0, ssl_context=ssl_context)
        await site.start()
        if sock is None:
            self.host = host
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.scheme = "https" if ssl_context is not None else "http"

    def stop(self) -> None:
        if self._runner is not None:
            self._run(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 10) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def _on_loop(self, action: Callable[[], T]) -> T:
        async def call() -> T:
            return action()

        return self._run(call())

    # ---- the test API ------------------------------------------------------------------------------------------

    def register_bot(self, username: str | None = None, token: str | None = None) -> Bot:
        """A new bot Telegram knows; its token has the real format (`<bot id>:<35 characters>`)."""
        return self._on_loop(lambda: self._add_bot(username, token))

    def _add_bot(self, username: str | None, token: str | None) -> Bot:
        bot_id = self._next_bot_id
        self._next_bot_id += 1
        secret = token or f"{bot_id}:AA{secrets.token_urlsafe(33)[:33]}"
        match = TOKEN_FORMAT.match(secret)
        if match is None:
            raise ValueError("a bot token looks like <digits>:<30-60 of A-Za-z0-9_->")
        bot = Bot(
            token=secret,
            id=int(match.group(1)),
            username=username or f"test_{bot_id}_bot",
            first_name=(username or "Test").removesuffix("_bot").capitalize(),
            changed=asyncio.Condition(),
            next_update_id=100_000_000 + secrets.randbelow(800_000_000),
        )
        self._bots[secret] = bot
        return bot

    def revoke(self, token: str) -> None:
        """As BotFather's /revoke: every later call with this token is 401, and a waiting long poll ends with 401."""

        async def revoke() -> None:
            bot = self._bots[token]
            bot.revoked = True
            await self._notify(bot)

        self._run(revoke())

    def send_dm(self, token: str, user_id: int, text: str, first_name: str = "Alice") -> int:
        """A private message from `user_id` to the bot; returns its update_id."""

        async def inject() -> int:
            bot = self._bots[token]
            update_id = bot.next_update_id
            bot.next_update_id += 1
            message_id = bot.next_message_id
            bot.next_message_id += 1
            sender = {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": "en"}
            chat = {"id": user_id, "first_name": first_name, "type": "private"}
            message = {"message_id": message_id, "from": sender, "chat": chat, "date": int(time.time()), "text": text}
            if text.startswith("/"):
                command = text.split()[0]
                message["entities"] = [{"offset": 0, "length": len(command), "type": "bot_command"}]
            bot.updates.append({"update_id": update_id, "message": message})
            await self._notify(bot)
            return update_id

        return self._run(inject())

    def sent_messages(self, token: str, chat_id: int | None = None) -> list[SentMessage]:
        return self._on_loop(lambda: [m for m in self._bots[token].sent if chat_id is None or m.chat_id == chat_id])

    def calls(self, token: str, method: str | None = None) -> list[Call]:
        return self._on_loop(
            lambda: [c for c in self._bots[token].calls if method is None or c.method.lower() == method.lower()]
        )

    def pending_updates(self, token: str) -> int:
        """Updates not yet confirmed by a getUpdates offset."""
        return self._on_loop(lambda: len(self._bots[token].updates))

    def wait_until_polling(self, token: str, timeout: float = 10) -> None:
        """Until a getUpdates of this bot is waiting for updates (a client is connected and listening)."""
        deadline = time.monotonic() + timeout
        while not self._on_loop(lambda: self._bots[token].polls_waiting > 0):
            if time.monotonic() >= deadline:
                raise AssertionError(f"no getUpdates waiting within {timeout}s")
            self._run(self._wait_changed(self._bots[token], min(1.0, deadline - time.monotonic())))

    def wait_for_message(
        self,
        token: str,
        chat_id: int,
        timeout: float = 60,
        after: int = 0,
        predicate: Callable[[SentMessage], bool] | None = None,
    ) -> SentMessage:
        """The first message sent to `chat_id` with message_id > `after` (and matching `predicate`)."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.sent_messages(token, chat_id):
                if message.message_id > after and (predicate is None or predicate(message)):
                    return message
            if time.monotonic() >= deadline:
                sent = [m.text[:80] for m in self.sent_messages(token)]
                raise AssertionError(f"no message to chat {chat_id} within {timeout}s; the bot sent {sent}")
            self._run(self._wait_changed(self._bots[token], min(1.0, deadline - time.monotonic())))

    # ---- the protocol ------------------------------------------------------------------------------------------

    async def _notify(self, bot: Bot) -> None:
        assert bot.changed is not None
        async with bot.changed:
            bot.changed.notify_all()

    async def _wait_changed(self, bot: Bot, timeout: float) -> None:  # noqa: ASYNC109 - a deadline, not a sleep
        assert bot.changed is not None
        async with bot.changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(bot.changed.wait(), max(timeout, 0))

    async def _not_found(self, _: web.Request) -> web.Response:
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.method != "POST" or not request.can_read_body:
            return params
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise BotApiError(400, "Bad Request: can't parse JSON") from None
            if not isinstance(body, dict):
                raise BotApiError(400, "Bad Request: JSON object expected")
            params.update(body)
        else:  # application/x-www-form-urlencoded or multipart/form-data
            form = await request.post()
            params.update({key: value for key, value in form.items() if isinstance(value, str)})
            params.update({key: "<file>" for key, value in form.items() if not isinstance(value, str)})
        return params

    async def _handle(self, request: web.Request) -> web.Response:
        try:
            token = request.match_info["token"]
            bot = self._bots.get(token)
            if bot is None and self.any_token_is_a_bot and TOKEN_FORMAT.match(token):
                bot = self._add_bot(None, token)
            if bot is None or bot.revoked:
                raise BotApiError(401, "Unauthorized")
            params = await self._params(request)
            method = request.match_info["method"]
            name, handler = _METHODS.get(method.lower(), (method, None))
            bot.calls.append(Call(name, params))
            if handler is None:
                raise BotApiError(404, "Not Found")
            result = await handler(self, bot, params)
        except BotApiError as error:
            body = {"ok": False, "error_code": error.code, "description": error.description}
            if error.code == 429:
                body["parameters"] = {"retry_after": 1}
            return web.json_response(body, status=error.code)
        return web.json_response({"ok": True, "result": result})

    @_bot_method("getMe")
    async def _get_me(self, bot: Bot, _: dict[str, Any]) -> Any:
        return bot.user()

    @_bot_method("getUpdates")
    async def _get_updates(self, bot: Bot, params: dict[str, Any]) -> Any:
        if bot.webhook_url:
            raise BotApiError(409, WEBHOOK_CONFLICT)
        offset = _int(params, "offset", 0)
        limit = min(max(_int(params, "limit", 100), 1), 100)
        timeout = min(max(_int(params, "timeout", 0), 0), MAX_POLL_TIMEOUT)
        allowed = _json_param(params, "allowed_updates")
        if isinstance(allowed, list):  # remembered for later calls, as Telegram does; [] means the default set
            bot.allowed_updates = {str(kind) for kind in allowed} or set(DEFAULT_ALLOWED)
        if offset > 0:  # confirms every update before it
            bot.updates = [u for u in bot.updates if u["update_id"] >= offset]
        elif offset < 0:
            bot.updates = bot.updates[offset:]
        bot.poll_generation += 1
        generation = bot.poll_generation
        await self._notify(bot)  # an older waiting poll of this bot ends with 409
        deadline = time.monotonic() + timeout
        while True:
            if bot.revoked:
                raise BotApiError(401, "Unauthorized")
            if bot.poll_generation != generation:
                raise BotApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                )
            if bot.webhook_url:
                raise BotApiError(409, "Conflict: terminated by setWebhook request")
            ready = [
                u for u in bot.updates if u["update_id"] >= offset and (set(u) - {"update_id"}) & bot.allowed_updates
            ]
            if ready or time.monotonic() >= deadline:
                return ready[:limit]
            bot.polls_waiting += 1
            await self._notify(bot)
            try:
                await self._wait_changed(bot, deadline - time.monotonic())
            finally:
                bot.polls_waiting -= 1

    @_bot_method("sendMessage")
    async def _send_message(self, bot: Bot, params: dict[str, Any]) -> Any:
        chat_id = _int(params, "chat_id")
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise BotApiError(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            raise BotApiError(400, "Bad Request: message is too long")
        message_id = bot.next_message_id
        bot.next_message_id += 1
        bot.sent.append(SentMessage(chat_id, text, message_id, params))
        await self._notify(bot)
        chat = {"id": chat_id, "type": "private" if chat_id > 0 else "group"}
        return {"message_id": message_id, "from": bot.user(), "chat": chat, "date": int(time.time()), "text": text}

    @_bot_method("sendChatAction")
    async def _send_chat_action(self, _: Bot, params: dict[str, Any]) -> Any:
        _int(params, "chat_id")
        if not params.get("action"):
            raise BotApiError(400, "Bad Request: action is empty")
        return True

    @_bot_method("setWebhook")
    async def _set_webhook(self, bot: Bot, params: dict[str, Any]) -> Any:
        bot.webhook_url = str(params.get("url") or "")
        await self._notify(bot)
        return True

    @_bot_method("deleteWebhook")
    async def _delete_webhook(self, bot: Bot, params: dict[str, Any]) -> Any:
        bot.webhook_url = ""
        if str(params.get("drop_pending_updates", "")).lower() == "true":
            bot.updates.clear()
        return True

    @_bot_method("getWebhookInfo")
    async def _get_webhook_info(self, bot: Bot, _: dict[str, Any]) -> Any:
        info: dict[str, Any] = {
            "url": bot.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(bot.updates),
        }
        if bot.webhook_url:
            info["allowed_updates"] = sorted(bot.allowed_updates)
        return info

    @_bot_method("setMyCommands")
    async def _set_my_commands(self, bot: Bot, params: dict[str, Any]) -> Any:
        commands = _json_param(params, "commands")
        if not isinstance(commands, list):
            raise BotApiError(400, "Bad Request: commands must be an array")
        bot.commands = [dict(command) for command in commands]
        return True

    @_bot_method("getMyCommands")
    async def _get_my_commands(self, bot: Bot, _: dict[str, Any]) -> Any:
        return bot.commands

    @_bot_method("deleteMyCommands")
    async def _delete_my_commands(self, bot: Bot, _: dict[str, Any]) -> Any:
        bot.commands = []
        return True

    @_bot_method("close")
    async def _close(self, _: Bot, __: dict[str, Any]) -> Any:
        return True

    @_bot_method("logOut")
    async def _log_out(self, _: Bot, __: dict[str, Any]) -> Any:
        return True
