"""What the app holds for its lifetime: settings, the DB pool, the token issuer, hashing pool, limits, metrics."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from clawhost_control_api.api.rate_limits import RateLimiter
from clawhost_control_api.core.config import Settings
from clawhost_control_api.core.passwords import PasswordHashing
from clawhost_control_api.core.security import TokenIssuer
from clawhost_control_api.kube.cache import CustomerCache
from clawhost_control_api.kube.client import KubeClient
from clawhost_control_api.metrics import Metrics


@dataclass
class AppState:
    settings: Settings
    pool: AsyncConnectionPool
    issuer: TokenIssuer
    kube: KubeClient | None
    cache: CustomerCache | None
    redis: Redis
    passwords: PasswordHashing
    limiter: RateLimiter
    metrics: Metrics
