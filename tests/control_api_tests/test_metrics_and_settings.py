"""The control API's metrics on their own port, and settings that refuse to start the process when they are unsafe."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from clawhost_control_api.core.config import Settings, load_settings
from clawhost_control_api.core.errors import SettingsError
from clawhost_localcluster import stripe_events as se
from clawhost_localcluster.control_api_process import StartApi

DEPLOYMENT = Path(__file__).resolve().parents[2] / "control_api" / "deploy" / "20-deployment.yaml"
WEBHOOK_SECRET = "whsec_test_metrics"


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.mark.services
def test_metrics_are_scraped_from_their_own_port(start_api: StartApi) -> None:
    api = start_api(stripe_webhook_secret=WEBHOOK_SECRET, login_per_ip=json.dumps({"count": 2, "seconds": 600}))
    with httpx.Client(base_url=api.url, timeout=60) as client:
        assert client.get("/metrics").status_code == 404, "never on the tenant-facing port"
        email = f"m{uuid.uuid4().hex[:8]}@example.com"
        assert client.post("/auth/signup", json={"email": email, "password": "long enough pw"}).status_code == 201
        logins = [client.post("/auth/login", json={"email": email, "password": "wrong password"}) for _ in range(3)]
        assert [r.status_code for r in logins] == [401, 401, 429]
        assert client.get("/.well-known/jwks.json").status_code == 200
        assert client.get("/no/such/route").status_code == 404
        forged = client.post("/webhooks/stripe", content=b"{}", headers={"Stripe-Signature": "t=1,v1=00"})
        assert forged.status_code == 400
        unhandled = se.as_payload({**se.checkout_completed(1, "c", "cus", "sub", "pro"), "type": "charge.refunded"})
        signed = {"Stripe-Signature": se.sign(unhandled, WEBHOOK_SECRET)}
        assert client.post("/webhooks/stripe", content=unhandled, headers=signed).status_code == 200
    scraped = httpx.get(api.metrics_url, timeout=10)
    assert scraped.status_code == 200
    samples = _samples(scraped.text)
    requests = "clawhost_control_api_requests"
    assert _value(samples, f"{requests}_total", method="POST", route="/auth/login", status="401") == 2
    assert _value(samples, f"{requests}_total", method="POST", route="/auth/login", status="429") == 1
    assert _value(samples, f"{requests}_total", method="GET", route="/.well-known/jwks.json", status="200") >= 2
    assert _value(samples, f"{requests}_total", method="GET", route="unmatched", status="404") == 2
    latency = "clawhost_control_api_request_duration_seconds"
    assert _value(samples, f"{latency}_count", method="POST", route="/auth/login") == 3
    assert _value(samples, f"{latency}_sum", method="POST", route="/auth/login") > 0
    webhook = "clawhost_control_api_webhook_events_total"
    assert _value(samples, webhook, type="other", outcome="rejected") == 1
    assert _value(samples, webhook, type="other", outcome="unhandled") == 1
    assert _value(samples, "clawhost_control_api_logins_refused_total", reason="wrong_credentials") == 2
    assert _value(samples, "clawhost_control_api_rate_limited_total", action="login", scope="ip") == 1
    assert not any(name.startswith(requests) and ("path" in dict(labels)) for name, labels in samples)


def test_the_deployment_exposes_the_metrics_port() -> None:
    deployment = yaml.safe_load(DEPLOYMENT.read_text())
    template = deployment["spec"]["template"]
    container = template["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8000, "metrics": Settings.model_fields["metrics_port"].default}
    assert template["metadata"]["annotations"]["prometheus.io/port"] == str(ports["metrics"])


def test_a_zero_replay_window_is_refused_at_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {
        "CLAWHOST_API_DATABASE_URL": "postgresql:///unused",
        "CLAWHOST_API_JWT_PRIVATE_KEY_FILE": str(tmp_path / "k"),
        "CLAWHOST_API_JWT_PUBLIC_KEY_FILE": str(tmp_path / "k.pub"),
        "CLAWHOST_API_STRIPE_WEBHOOK_SECRET": "whsec_must_not_be_printed",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert load_settings().stripe_webhook_tolerance_seconds == 300
    for bad in ("0", "-5"):
        monkeypatch.setenv("CLAWHOST_API_STRIPE_WEBHOOK_TOLERANCE_SECONDS", bad)
        with pytest.raises(
            SettingsError, match="CLAWHOST_API_STRIPE_WEBHOOK_TOLERANCE_SECONDS: Input should be greater than 0"
        ):
            load_settings()
    # The process itself: exit status 2, one clear line, no traceback, no secret.
    started = subprocess.run(
        [sys.executable, "-m", "clawhost_control_api"], capture_output=True, text=True, timeout=60, check=False
    )
    assert started.returncode == 2
    assert "CLAWHOST_API_STRIPE_WEBHOOK_TOLERANCE_SECONDS" in started.stderr
    assert "Traceback" not in started.stderr
    assert "whsec_must_not_be_printed" not in started.stderr + started.stdout


def test_secrets_are_never_shown(tmp_path: Path) -> None:
    settings = Settings(
        database_url=SecretStr("postgresql://api:pw_never_shown@db/api"),
        jwt_private_key_file=tmp_path / "k",
        jwt_public_key_file=tmp_path / "k.pub",
        stripe_api_key=SecretStr("sk_live_never_shown"),
        stripe_webhook_secret=SecretStr("whsec_never_shown"),
    )
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    for secret in ("pw_never_shown", "sk_live_never_shown", "whsec_never_shown"):
        assert secret not in shown
    assert settings.stripe_api_key.get_secret_value() == "sk_live_never_shown"
