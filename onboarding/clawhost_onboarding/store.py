"""Sessions, bot tokens and the per-address session counter in Redis."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from clawhost_onboarding.session import Session


class SessionStore:
    def __init__(self, redis: Redis, prefix: str, ttl_seconds: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_seconds

    def _session_key(self, session_id: str) -> str:
        return f"{self._prefix}:session:{session_id}"

    def bot_token_key(self, session_id: str) -> str:
        return f"{self._prefix}:bot-token:{session_id}"

    async def load(self, session_id: str) -> Session | None:
        raw = await self._redis.get(self._session_key(session_id))
        return Session.model_validate_json(raw) if raw is not None else None

    async def save(self, session: Session) -> None:
        """Written whole after every step, so a restarted process resumes from the last completed one; the TTL
        counts from the last activity. The bot token, held apart, lives exactly as long."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._session_key(session.id), session.model_dump_json(), ex=self._ttl)
            pipe.expire(self.bot_token_key(session.id), self._ttl)
            await pipe.execute()

    async def keep_bot_token(self, session_id: str, token: str) -> None:
        await self._redis.set(self.bot_token_key(session_id), token, ex=self._ttl)

    async def bot_token(self, session_id: str) -> str | None:
        raw = await self._redis.get(self.bot_token_key(session_id))
        return raw.decode() if isinstance(raw, bytes) else raw

    async def forget_bot_token(self, session_id: str) -> None:
        await self._redis.delete(self.bot_token_key(session_id))

    async def count_new_session(self, client_ip: str, limit: int) -> int | None:
        """Count a new session for `client_ip` in the current hour; None if that is one too many, else the count.
        (A fixed window: cheap, and at most twice the limit across a window's edge.)"""
        window = int(time.time()) // 3600
        key = f"{self._prefix}:new-sessions:{client_ip}:{window}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 3600)
            count, _ = await pipe.execute()
        return int(count) if int(count) <= limit else None

    async def seconds_to_next_window(self) -> int:
        return 3600 - int(time.time()) % 3600
