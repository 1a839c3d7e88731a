"""Operator settings, read once from the environment (prefix CLAWHOST_OPERATOR_)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from clawhost_api.customer import BOT_TOKEN_NAMESPACE, PLATFORM_NAMESPACE


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLAWHOST_OPERATOR_", frozen=True)

    gateway_image: str = "clawhost/openclaw-gateway:2026.9.6"
    proxy_base_url: str = "http://token-proxy.platform.svc.cluster.local:8080/v1"
    proxy_namespace: str = PLATFORM_NAMESPACE
    bot_token_namespace: str = BOT_TOKEN_NAMESPACE
    resync_seconds: float = 120.0
    workers: int = 64  # reconcile threads; N=1000 reached Ready in ~100 s with 64, ~125 s with 32
    event_posters: int = 4
    memory_trim_seconds: float = 30.0
    metrics_port: int = 9090
    health_port: int = 8081
