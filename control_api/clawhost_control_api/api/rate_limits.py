"""Per-IP and per-account request limits for the sign-in routes, counted in Redis (shared by every replica).

A fixed window per key: INCR, with the window's expiry set by the first request. Beyond the limit a
RateLimitedError answers 429 with Retry-After (the seconds left in the window). Account keys hold a
hash of the email or user id, never the address itself. When Redis cannot be reached the limit is not
enforced (logged): sign-in stays available, and the bounded hashing pool still caps what a flood costs.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis
from redis.exceptions import RedisError

from clawhost_control_api.core.config import RateLimit, Settings
from clawhost_control_api.core.errors import RateLimitedError
from clawhost_control_api.metrics import Metrics

log = logging.getLogger(__name__)

Action = Literal["login", "signup", "refresh"]
_WHAT = {"login": "sign-in attempts", "signup": "sign-ups", "refresh": "token refreshes"}


@dataclass(frozen=True)
class RateLimiter:
    redis: Redis
    settings: Settings
    metrics: Metrics

    def _limits(self, action: Action) -> tuple[RateLimit, RateLimit]:
        s = self.settings
        return {
            "login": (s.login_per_ip, s.login_per_account),
            "signup": (s.signup_per_ip, s.signup_per_account),
            "refresh": (s.refresh_per_ip, s.refresh_per_account),
        }[action]

    async def check(self, action: Action, ip: str, account: str | None = None) -> None:
        """Count this attempt against the IP's limit and, when known, the account's; RateLimitedError when over."""
        await self._hit(action, "ip", ip, self._limits(action)[0])
        if account is not None:
            await self.check_account(action, account)

    async def check_account(self, action: Action, account: str) -> None:
        digest = hashlib.sha256(account.encode()).hexdigest()[:32]
        await self._hit(action, "account", digest, self._limits(action)[1])

    async def _hit(self, action: Action, kind: str, subject: str, limit: RateLimit) -> None:
        key = f"{self.settings.rate_limit_key_prefix}:{action}:{kind}:{subject}"
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(key, 0, ex=limit.seconds, nx=True)
                pipe.incr(key)
                pipe.ttl(key)
                _, count, ttl = await pipe.execute()
        except (RedisError, OSError) as error:
            log.warning(
                "rate limit not checked: Redis unavailable",
                extra={"action": action, "scope": kind, "error": type(error).__name__},
            )
            return
        if int(count) > limit.count:
            self.metrics.rate_limited.labels(action=action, scope=kind).inc()
            raise RateLimitedError(_WHAT[action], max(1, int(ttl)))
