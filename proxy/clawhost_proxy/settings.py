"""Proxy settings, read once from the environment (prefix CLAWHOST_PROXY_)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ProxySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLAWHOST_PROXY_", frozen=True)

    host: str = "0.0.0.0"  # noqa: S104 - a service in its own pod
    port: int = 8080  # the tenant port: customers' pods reach only this one
    admin_port: int = 9090  # probes and metrics, for the kubelet and Prometheus
    upstream_base_url: str = "https://api.moonshot.ai/v1"
    upstream_api_key: SecretStr | None = None
    upstream_api_key_file: Path | None = None
    upstream_timeout_seconds: float = 120.0
    upstream_connect_timeout_seconds: float = 5.0
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_timeout_seconds: float = 5.0  # a reply slower than this fails the request path's commands (→ 503)
    kubeconfig: Path | None = None  # unset: $KUBECONFIG, else in-cluster
    # /readyz turns 503 when the token directory has not been known current (a listing, a watch open or an
    # event) for this long: a revoked token works at most about this long after the cluster stops answering.
    directory_stale_seconds: float = Field(default=120.0, gt=0)
    directory_watch_seconds: int = Field(default=60, gt=0)
    max_body_bytes: int = 1_000_000
    requests_per_second: float = 10.0
    upgrade_url: str = "https://clawhost.dev/dashboard/billing"
    default_max_tokens: int = 8192
    # The one completion-cap field sent upstream (the client's are replaced): Moonshot documents
    # `max_tokens` as deprecated in favour of `max_completion_tokens`.
    upstream_cap_key: Literal["max_completion_tokens", "max_tokens"] = "max_completion_tokens"
    log_requests: bool = True  # one line per request: ids, customer, model, token counts, latency
    # The ledger: rows are buffered in a Redis stream and flushed to PostgreSQL (off the hot path).
    postgres_dsn: SecretStr | None = None
    ledger_stream: str = "clawhost:ledger"
    ledger_group: str = "ledger-writers"
    ledger_consumer: str = ""  # default: the pod name (HOSTNAME)
    ledger_batch_size: int = 500
    ledger_linger_seconds: float = 0.05
    ledger_claim_idle_seconds: float = 30.0

    def consumer_name(self) -> str:
        return self.ledger_consumer or os.environ.get("HOSTNAME") or socket.gethostname()

    def api_key(self) -> str:
        if self.upstream_api_key_file is not None:
            return self.upstream_api_key_file.read_text().strip()
        if self.upstream_api_key is not None:
            return self.upstream_api_key.get_secret_value()
        raise ValueError("set CLAWHOST_PROXY_UPSTREAM_API_KEY_FILE or CLAWHOST_PROXY_UPSTREAM_API_KEY")
