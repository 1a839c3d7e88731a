"""Typed settings of the control API, read once from the environment (prefix CLAWHOST_API_) at start."""

from __future__ import annotations

from functools import cache
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from clawhost_control_api.core.errors import SettingsError


class RateLimit(BaseModel):
    """At most `count` requests per `seconds` (a fixed window per key in Redis)."""

    count: int = Field(gt=0)
    seconds: int = Field(gt=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLAWHOST_API_", extra="ignore")

    database_url: SecretStr = Field(
        description="libpq DSN of the control API's PostgreSQL database (holds a password)."
    )
    redis_url: str = "redis://localhost:6379/0"
    jwt_private_key_file: Path
    jwt_public_key_file: Path
    jwt_key_id: str = "clawhost-1"
    jwt_issuer: str = "https://clawhost.dev"
    jwt_audience: str = "clawhost-dashboard"
    access_token_ttl_seconds: int = Field(default=3600, gt=0)
    refresh_token_ttl_seconds: int = Field(default=7 * 24 * 3600, gt=0)
    db_pool_max: int = Field(default=10, ge=1)
    kubeconfig: Path | None = Field(default=None, description="Unset: in-cluster ServiceAccount credentials.")
    stripe_api_key: SecretStr = SecretStr("")
    stripe_api_base: str = "https://api.stripe.com"
    stripe_webhook_secret: SecretStr = SecretStr("")
    stripe_webhook_tolerance_seconds: int = Field(
        default=300, gt=0, description="Replay window of a webhook signature; 0 would turn the check off."
    )
    stripe_price_ids: dict[str, str] = Field(
        default_factory=dict, description='Tier name -> Stripe price id, e.g. {"pro": "price_..."}.'
    )
    public_url: str = "http://localhost:8000"
    host: str = "0.0.0.0"  # noqa: S104 - a server inside a pod listens on all interfaces
    port: int = 8000
    metrics_port: int | None = Field(
        default=9090, ge=0, lt=65536, description="/metrics on its own port (0: any free port; unset: none)."
    )
    max_body_bytes: int = Field(default=16 * 1024, gt=0, description="Largest request body on every route.")
    webhook_max_body_bytes: int = Field(default=64 * 1024, gt=0, description="Largest Stripe webhook body.")
    trusted_proxies: list[IPv4Network | IPv6Network] = Field(
        default_factory=list, description="Peers whose X-Forwarded-For is believed (the ingress's addresses)."
    )
    hashing_concurrency: int = Field(default=2, ge=1, description="argon2 hashes at once (64 MiB each).")
    hashing_queue: int = Field(default=16, ge=0, description="Requests waiting for a hash before 503.")
    rate_limit_key_prefix: str = Field(
        default="clawhost:control-api:ratelimit", description="Redis key prefix of the sign-in rate limits."
    )
    dashboard_usage_seconds: float = Field(
        default=5, gt=0, description="How often a live dashboard stream reads its usage counter (one Redis GET)."
    )
    dashboard_keepalive_seconds: float = Field(
        default=15, gt=0, description="A live dashboard stream's keep-alive and session re-check interval."
    )
    login_per_ip: RateLimit = RateLimit(count=30, seconds=60)
    login_per_account: RateLimit = RateLimit(count=10, seconds=900)
    signup_per_ip: RateLimit = RateLimit(count=10, seconds=3600)
    signup_per_account: RateLimit = RateLimit(count=5, seconds=3600)
    refresh_per_ip: RateLimit = RateLimit(count=60, seconds=60)
    refresh_per_account: RateLimit = RateLimit(count=30, seconds=60)
    site_origins: list[str] = Field(
        default_factory=list,
        description="Origins (scheme://host[:port]) whose pages may open /ws/onboarding; empty: PUBLIC_URL's origin.",
    )
    chat_path: str = Field(default="/chat", description="The chat page: where an onboarding checkout returns to.")
    onboarding_url: str = Field(
        default="ws://onboarding.platform.svc.cluster.local:8095/v1/onboarding",
        description="The onboarding service's internal WebSocket (never exposed; only this API connects).",
    )
    onboarding_internal_token: SecretStr = Field(
        default=SecretStr(""), description="Bearer token the onboarding service requires of this API."
    )
    onboarding_token_file: Path | None = Field(
        default=None,
        description="A file holding that token (a mounted Secret; read at each connection, so a rotation is "
        "picked up); wins over ONBOARDING_INTERNAL_TOKEN.",
    )
    onboarding_connect_timeout_seconds: float = Field(default=5, gt=0)
    onboarding_max_frame_bytes: int = Field(
        default=16 * 1024, gt=0, description="Largest browser frame on /ws/onboarding (an error frame beyond)."
    )
    onboarding_frame_rate: RateLimit = Field(
        default=RateLimit(count=20, seconds=60), description="Browser frames per connection and window."
    )
    onboarding_idle_seconds: int = Field(
        default=900, gt=0, description="A connection with no frame either way for this long is closed."
    )
    local_checkout: bool = Field(
        default=False,
        description="Local use only: checkout links point at this API, which completes them by sending itself "
        "signed Stripe events. Never on where real Stripe sends webhooks.",
    )


def site_origins(settings: Settings) -> frozenset[str]:
    """The origins allowed to open the chat's WebSocket: the setting, or the public URL's own."""
    if settings.site_origins:
        return frozenset(origin.rstrip("/").lower() for origin in settings.site_origins)
    parts = urlsplit(settings.public_url)
    return frozenset({f"{parts.scheme}://{parts.netloc}".lower()})


def load_settings() -> Settings:
    """Settings from the environment, or a SettingsError naming each bad variable (never its value)."""
    try:
        return Settings()  # type: ignore[call-arg]  # filled from the environment
    except ValidationError as error:
        problems = "; ".join(
            f"CLAWHOST_API_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in error.errors()
        )
        raise SettingsError(f"invalid control API settings: {problems}") from None


@cache
def get_settings() -> Settings:
    return load_settings()
