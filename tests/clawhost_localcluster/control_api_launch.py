"""The control API started as `make up` starts it: its ServiceAccount's real token, PostgreSQL, Redis, stripe-mock,
the local webhook secret and price ids. `make up` and the browser tests' site fixture both start it here."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx

from clawhost_localcluster.control_api_process import ControlApiProcess
from clawhost_localcluster.onboarding_process import OnboardingProcess
from clawhost_localcluster.pki import JwtKeys
from clawhost_localcluster.processes import ManagedProcess, free_port, wait_until

LOCAL_WEBHOOK_SECRET = "whsec_local_development_only"  # signs locally replayed Stripe events; not a real secret
LOCAL_STRIPE_KEY = "sk_test_local"  # stripe-mock accepts any test key
LOCAL_PRICE_IDS = {tier: f"price_local_{tier}" for tier in ("starter", "pro", "team")}


def local_site_settings(onboarding: OnboardingProcess, workdir: Path) -> dict[str, str]:
    """What the control API of the local platform (`make up`, the browser tests' site) adds to its defaults: where
    the /ws/onboarding relay finds the onboarding service and the credential it presents there (in a file, as the
    Deployment mounts it), and the local checkout completion (no real Stripe sends webhooks here: checkout links
    open a page of this API that sends the signed events)."""
    token_file = workdir / "onboarding-internal-token"
    token_file.write_text(onboarding.internal_token)
    token_file.chmod(0o600)
    return {
        "CLAWHOST_API_ONBOARDING_URL": onboarding.ws_url,
        "CLAWHOST_API_ONBOARDING_TOKEN_FILE": str(token_file),
        "CLAWHOST_API_LOCAL_CHECKOUT": "true",
    }


def start_control_api(
    *,
    workdir: Path,
    database_url: str,
    redis_url: str,
    jwt_keys: JwtKeys,
    kubeconfig: Path,
    stripe_url: str,
    extra_env: Mapping[str, str] | None = None,
    log_name: str = "control-api.log",
) -> ControlApiProcess:
    """`python -m clawhost_control_api` on free loopback ports, answering; the caller stops its process.

    `extra_env` adds or overrides CLAWHOST_API_* settings (tests raise the per-IP sign-in limits, since every
    browser of a test run signs in from 127.0.0.1)."""
    port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAWHOST_API_", "KUBERNETES_"))}
    env.update(
        CLAWHOST_API_DATABASE_URL=database_url,
        CLAWHOST_API_REDIS_URL=redis_url,
        CLAWHOST_API_JWT_PRIVATE_KEY_FILE=str(jwt_keys.private_file),
        CLAWHOST_API_JWT_PUBLIC_KEY_FILE=str(jwt_keys.public_file),
        CLAWHOST_API_KUBECONFIG=str(kubeconfig),
        CLAWHOST_API_STRIPE_API_KEY=LOCAL_STRIPE_KEY,
        CLAWHOST_API_STRIPE_API_BASE=stripe_url,
        CLAWHOST_API_STRIPE_WEBHOOK_SECRET=LOCAL_WEBHOOK_SECRET,
        CLAWHOST_API_STRIPE_PRICE_IDS=json.dumps(LOCAL_PRICE_IDS),
        CLAWHOST_API_PUBLIC_URL=f"http://127.0.0.1:{port}",
        CLAWHOST_API_HOST="127.0.0.1",
        CLAWHOST_API_PORT=str(port),
        CLAWHOST_API_METRICS_PORT=str(metrics_port),
    )
    env.update(extra_env or {})
    process = ManagedProcess("control-api", [sys.executable, "-m", "clawhost_control_api"], workdir / log_name, env=env)
    process.start()
    api = ControlApiProcess(port, metrics_port, process)
    try:
        wait_until(
            "the control API to serve",
            lambda: httpx.get(f"{api.url}/.well-known/jwks.json", timeout=2).status_code == 200,
            timeout=60,
            process=process,
        )
    except BaseException:
        process.stop()
        raise
    return api
