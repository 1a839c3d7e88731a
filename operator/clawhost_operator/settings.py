"""Operator settings, read once from the environment (prefix CLAWHOST_OPERATOR_)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

from clawhost_api.customer import BOT_TOKEN_NAMESPACE, PLATFORM_NAMESPACE
from clawhost_operator.openclaw_config import OPENCLAW_VERSION


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLAWHOST_OPERATOR_", frozen=True)

    gateway_image: str = f"clawhost/openclaw-gateway:{OPENCLAW_VERSION}"
    proxy_base_url: str = "http://token-proxy.platform.svc.cluster.local:8080/v1"
    proxy_namespace: str = PLATFORM_NAMESPACE
    # Test platforms only (unset in production): a Bot API root instead of https://api.telegram.org, and a PEM file
    # of a CA the gateways trust besides the public ones (the stand-in's TLS certificate is signed by it).
    telegram_api_root: str | None = None
    gateway_extra_ca_file: Path | None = None
    bot_token_namespace: str = BOT_TOKEN_NAMESPACE
    resync_seconds: float = 120.0
    # Reconcile threads. More do not make a saturated API server faster; they can slow the controllers that
    # turn Deployments into pods: at N=1000 on 2 cores, 64 left the controller-manager's ReplicaSet queue
    # backed up (conflicts, ReplicaSet watches cut off as too slow). Medians of 5 rounds (bench --rounds 5)
    # were alike from 12 to 32 (1.44x-1.61x the floor; 32 cut off 3 watches), so 16 it is.
    workers: int = 16
    urgent_child_changes: bool = True  # child changes (Ready, drift) jump the queue of new Customers
    event_posters: int = 4
    # How long a new Customer's first status waits for its pod to turn Ready, so that a fast start writes
    # Running once instead of Provisioning and then Running (see Reconciler._first_status_wait). 0: no wait.
    first_status_grace_seconds: float = 2.0
    memory_trim_seconds: float = 30.0
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"  # DEBUG adds one line per reconcile
    metrics_port: int = 9090
    health_port: int = 8081
