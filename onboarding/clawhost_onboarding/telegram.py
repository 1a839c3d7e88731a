"""The two Bot API calls onboarding makes with a user's token: getMe (is it a live bot?) and getUpdates (who pressed
Start?). The token is part of every URL, so nothing here logs a URL, a request or an httpx error's text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Bot:
    id: int
    username: str
    first_name: str


@dataclass(frozen=True)
class TokenRefused:
    """Why a token is not accepted, in words the model may pass on (never the token)."""

    reason: str


@dataclass(frozen=True)
class Starter:
    """Someone who sent /start to the bot in a private chat."""

    user_id: int
    first_name: str
    username: str | None


class TelegramUnavailableError(RuntimeError):
    """Telegram did not answer (network, timeout, 5xx); says nothing about the token."""


class WebhookSetError(RuntimeError):
    """getUpdates is refused while the bot has a webhook (Telegram's 409)."""


class BotApi:
    def __init__(self, base_url: str, timeout: float) -> None:
        self._base = base_url.rstrip("/")
        self._http = httpx.AsyncClient(timeout=timeout)

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(self, token: str, method: str, params: dict[str, Any] | None = None) -> tuple[int, Any]:
        try:
            response = await self._http.get(f"{self._base}/bot{token}/{method}", params=params)
        except httpx.HTTPError:
            raise TelegramUnavailableError(f"Telegram's {method} did not answer") from None
        if response.status_code >= 500:
            raise TelegramUnavailableError(f"Telegram's {method} answered {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise TelegramUnavailableError(f"Telegram's {method} answered something that is not JSON") from None
        return response.status_code, body

    async def get_me(self, token: str) -> Bot | TokenRefused:
        status, body = await self._call(token, "getMe")
        if status in (401, 404):
            # 401 Unauthorized: revoked or never issued; 404 Not Found: a malformed token Telegram cannot route.
            return TokenRefused(
                "Telegram does not know this token: it was revoked (for example with /revoke) or mistyped"
            )
        result = body.get("result") if isinstance(body, dict) and body.get("ok") else None
        if not isinstance(result, dict) or not result.get("is_bot") or not result.get("username"):
            description = str(body.get("description", "")) if isinstance(body, dict) else ""
            return TokenRefused(f"Telegram refused the token ({status} {description[:100]})".strip())
        return Bot(int(result["id"]), str(result["username"]), str(result.get("first_name", "")))

    async def latest_starter(self, token: str) -> Starter | None:
        """The most recent /start in a private chat, from the updates Telegram still holds (without consuming them,
        so the agent's gateway later sees the same history)."""
        # No allowed_updates: Telegram remembers it for later calls, which would narrow what the agent's gateway gets.
        status, body = await self._call(token, "getUpdates", {"timeout": 0})
        if status == 409:
            raise WebhookSetError("the bot has a webhook set; getUpdates is refused")
        if status == 401:
            raise TelegramUnavailableError("Telegram no longer accepts the token")
        updates = body.get("result") if isinstance(body, dict) and body.get("ok") else None
        for update in reversed(updates if isinstance(updates, list) else []):
            message = update.get("message") if isinstance(update, dict) else None
            if not isinstance(message, dict):
                continue
            sender, chat, text = message.get("from"), message.get("chat"), str(message.get("text") or "")
            if not isinstance(sender, dict) or not isinstance(chat, dict) or chat.get("type") != "private":
                continue
            if not text.startswith("/start") or sender.get("is_bot"):
                continue
            return Starter(int(sender["id"]), str(sender.get("first_name", "")), sender.get("username"))
        return None
