"""Typed settings of the control API, read once from the environment (prefix CLAWHOST_API_)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLAWHOST_API_", extra="ignore")

    database_url: str = Field(description="libpq DSN of the control API's PostgreSQL database.")
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
    stripe_api_key: str = ""
    stripe_api_base: str = "https://api.stripe.com"
    stripe_webhook_secret: str = ""
    stripe_webhook_tolerance_seconds: int = 300
    stripe_price_ids: dict[str, str] = Field(
        default_factory=dict, description='Tier name -> Stripe price id, e.g. {"pro": "price_..."}.'
    )
    public_url: str = "http://localhost:8000"
    host: str = "0.0.0.0"  # noqa: S104 - a server inside a pod listens on all interfaces
    port: int = 8000


@cache
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg]  # filled from the environment
