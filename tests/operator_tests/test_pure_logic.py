"""Unit tests of the operator's pure functions (no cluster): decisions, rendering, comparison, status."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import orjson
import pytest

from clawhost_api.customer import BillingStatus, CustomerSpec
from clawhost_api.entitlement import entitlement
from clawhost_api.tiers import get_tier
from clawhost_operator.bot_secret_index import BotSecretIndex
from clawhost_operator.children import (
    canonical_cpu,
    config_hash,
    render_deployment,
    render_network_policy,
    secret_data,
)
from clawhost_operator.compare import contains
from clawhost_operator.effective import decide
from clawhost_operator.informers import essential
from clawhost_operator.openclaw_config import render_openclaw_config, serialize_config
from clawhost_operator.status import Observation, render_status, status_changed


def _spec(**overrides: Any) -> CustomerSpec:
    raw: dict[str, Any] = {
        "tier": "pro",
        "telegram": {"botTokenSecretRef": {"name": "s"}, "allowedUserIds": [7]},
        "billing": {"mode": "stripe"},
    }
    raw.update(overrides)
    return CustomerSpec.model_validate(raw)


@pytest.mark.parametrize(
    ("state", "action", "reason"),
    [
        (None, "await", "AwaitingPayment"),
        ("incomplete", "await", "AwaitingPayment"),
        ("active", "run", "Running"),
        ("trialing", "run", "Running"),
        ("past_due", "run", "Running"),
        ("unpaid", "suspend", "PaymentFailed"),
        ("paused", "suspend", "SubscriptionPaused"),
        ("canceled", "destroy", "SubscriptionCanceled"),
        ("incomplete_expired", "destroy", "SubscriptionCanceled"),
    ],
)
def test_billing_state_decides_the_action(state: str | None, action: str, reason: str) -> None:
    billing = BillingStatus.model_validate({"state": state}) if state else None
    decision = decide(_spec(), billing)
    assert (decision.action, decision.reason) == (action, reason)
    assert decision.replicas == (1 if action == "run" else 0)


def test_manual_suspend_and_comped_customers() -> None:
    assert decide(_spec(suspend=True), BillingStatus(state="active")).action == "suspend"
    assert decide(_spec(billing={"mode": "none"}), None).action == "run"
    assert decide(_spec(billing={"mode": "none"}, suspend=True), None).reason == "Suspended"
    # The customer's own switch (written only by the dashboard) suspends the same way, on its own.
    by_dashboard = decide(_spec(dashboard_suspend=True), BillingStatus(state="active"))
    assert (by_dashboard.action, by_dashboard.reason) == ("suspend", "Suspended")
    assert "dashboard" in by_dashboard.message
    assert decide(_spec(suspend=True, dashboard_suspend=False), BillingStatus(state="active")).action == "suspend"


def test_openclaw_json_renders_what_the_effective_tier_entitles() -> None:
    """Spec team with 10 ids, Stripe paying starter (a failed downgrade patch, say): starter is what runs."""
    ids = list(range(1001, 1011))
    spec = _spec(
        tier="team",
        telegram={"botTokenSecretRef": {"name": "s"}, "allowedUserIds": ids},
        agent={"model": "kimi-k2-thinking", "thinking": "high"},
    )
    config = render_openclaw_config(entitlement(spec, BillingStatus(state="active", paid_tier="starter")), "x")
    assert config["channels"]["telegram"]["allowFrom"] == [1001], "only the first id in spec order"
    assert config["agents"]["defaults"]["thinkingDefault"] == "medium"
    assert config["agents"]["defaults"]["model"]["primary"] == "platform/kimi-k2.5"
    paid = render_openclaw_config(entitlement(spec, BillingStatus(state="active", paid_tier="team")), "x")
    assert paid["channels"]["telegram"]["allowFrom"] == ids


def test_openclaw_config_follows_the_brief() -> None:
    config = render_openclaw_config(entitlement(_spec(agent={"thinking": "high"}), None), "http://proxy:8080/v1")
    assert config["gateway"] == {
        "mode": "local",
        "bind": "lan",  # the kubelet's httpGet probes come to the pod's address
        "port": 18789,
        "auth": {"mode": "token", "token": "${OPENCLAW_GATEWAY_TOKEN}"},
        "controlUi": {"allowedOrigins": ["http://localhost:18789", "http://127.0.0.1:18789"]},
    }
    assert "apiRoot" not in config["channels"]["telegram"], "production talks to api.telegram.org"
    local = render_openclaw_config(entitlement(_spec(), None), "x", telegram_api_root="https://203.0.113.7")
    assert local["channels"]["telegram"]["apiRoot"] == "https://203.0.113.7"
    assert config["agents"]["defaults"]["thinkingDefault"] == "medium", "capped at the tier's level"
    provider = config["models"]["providers"]["platform"]
    assert provider["api"] == "openai-completions"
    assert provider["models"][0]["compat"] == {"supportsReasoningEffort": True}
    assert config["models"]["catalogRefresh"] == {"enabled": False}
    assert config["update"] == {"checkOnStart": False}
    assert "123:" not in serialize_config(config), "secrets stay ${ENV} references"


def test_heartbeat_is_rendered_explicitly_and_off_by_default() -> None:
    off = render_openclaw_config(entitlement(_spec(), None), "http://proxy:8080/v1")
    assert off["agents"]["defaults"]["heartbeat"] == {
        "every": "0m",
        "target": "last",
        "lightContext": True,
        "isolatedSession": True,
    }
    chosen = _spec(
        heartbeat={
            "every": "2h",
            "lightContext": False,
            "isolatedSession": False,
            "activeHours": {"start": "08:00", "end": "22:00", "timezone": "Europe/Berlin"},
        }
    )
    on = render_openclaw_config(entitlement(chosen, None), "http://proxy:8080/v1")
    assert on["agents"]["defaults"]["heartbeat"] == {
        "every": "2h",
        "target": "last",
        "lightContext": False,
        "isolatedSession": False,
        "activeHours": {"start": "08:00", "end": "22:00", "timezone": "Europe/Berlin"},
    }
    no_zone = _spec(heartbeat={"every": "30m", "activeHours": {"start": "22:00", "end": "24:00"}})
    window = render_openclaw_config(entitlement(no_zone, None), "x")["agents"]["defaults"]["heartbeat"]["activeHours"]
    assert window == {"start": "22:00", "end": "24:00"}, "no timezone key: the gateway's own (UTC)"


def test_config_hash_changes_only_with_inputs() -> None:
    data = {"a": "1", "b": "2"}
    assert config_hash(data) == config_hash(dict(reversed(list(data.items()))))
    assert config_hash(data) != config_hash({"a": "1", "b": "3"})


def test_network_policy_blocks_private_and_metadata_ranges() -> None:
    policy = render_network_policy("x", "platform")
    public = policy["spec"]["egress"][2]["to"][0]["ipBlock"]
    assert public["cidr"] == "0.0.0.0/0"
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(public["except"])
    assert policy["spec"]["egress"][2]["ports"] == [{"protocol": "TCP", "port": 443}]
    assert policy["spec"]["ingress"] == []


def _reachable_on_443(address: str) -> bool:
    """Whether the gateway's HTTPS rule lets `address` through (in some block's CIDR and none of its exceptions)."""
    ip = ipaddress.ip_address(address)
    for peer in render_network_policy("x", "platform")["spec"]["egress"][2]["to"]:
        block = peer["ipBlock"]
        network = ipaddress.ip_network(block["cidr"])
        excepted = any(ip in ipaddress.ip_network(cidr) for cidr in block.get("except", []))
        if ip.version == network.version and ip in network and not excepted:
            return True
    return False


@pytest.mark.parametrize(
    "private", ["10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "127.0.0.1"]
)
def test_network_policy_reaches_no_private_ipv4_address_through_ipv6(private: str) -> None:
    """Not directly, nor as IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::a.b.c.d),
    6to4 (2002:AABB:CCDD::) or Teredo (2001:0::, the client address inverted) IPv6 address."""
    v4 = int(ipaddress.IPv4Address(private))
    embedded = [int(ipaddress.IPv6Address(prefix)) + v4 for prefix in ("::ffff:0:0", "::", "64:ff9b::")]
    embedded += [
        int(ipaddress.IPv6Address("2002::")) + (v4 << 80),
        int(ipaddress.IPv6Address("2001::")) + (v4 ^ 0xFFFFFFFF),
    ]
    for form in [private, *(str(ipaddress.IPv6Address(value)) for value in embedded)]:
        assert not _reachable_on_443(form), f"{form} ({private}) is reachable"


def test_network_policy_reaches_public_addresses_and_no_private_ipv6() -> None:
    for public in ("149.154.167.220", "2001:67c:4e8:f004::9", "64:ff9b::959a:a7dc"):  # Telegram: v4, v6, NAT64
        assert _reachable_on_443(public), public
    for private in ("::1", "fc00::1", "fd12::1", "fe80::1", "64:ff9b:1::a00:1"):
        assert not _reachable_on_443(private), private


def test_deployment_is_hardened() -> None:
    deployment = render_deployment("x", get_tier("starter"), "img", 1, "h")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}
    assert "--max-old-space-size=1536" in json.dumps(container["env"])
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 18789, "scheme": "HTTP"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "exec" not in json.dumps(container), "no probe starts a process in the pod"
    assert "NODE_EXTRA_CA_CERTS" not in json.dumps(container["env"])
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert volumes[0]["secret"]["items"] == [{"key": "openclaw.json", "path": "openclaw.json"}]


def test_an_extra_ca_is_mounted_and_trusted_only_when_set() -> None:
    deployment = render_deployment("x", get_tier("starter"), "img", 1, "h", extra_ca=True)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "NODE_EXTRA_CA_CERTS", "value": "/etc/openclaw/extra-ca.pem"} in container["env"]
    items = deployment["spec"]["template"]["spec"]["volumes"][0]["secret"]["items"]
    assert {"key": "extra-ca.pem", "path": "extra-ca.pem"} in items
    assert "extra-ca.pem" not in secret_data("b", "p", "g", "{}")
    assert secret_data("b", "p", "g", "{}", "PEM")["extra-ca.pem"] == "PEM"


def test_canonical_cpu() -> None:
    assert [canonical_cpu(v) for v in ("250m", "1000m", "4000m", "2")] == ["250m", "1", "4", "2"]


def test_contains_treats_missing_empty_as_equal() -> None:
    assert contains({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": 2}})
    assert contains({"spec": {}}, {"spec": {"ingress": []}})
    assert not contains({"a": [1, 2]}, {"a": [1]})
    assert not contains({"a": {"c": 2}}, {"a": {"c": 3}})


def test_status_comparison_ignores_transition_times_only() -> None:
    observation = Observation("Running", True, "Running", "ok", False, False, "ns", "pro", 1, "h", "sha256:x", None)
    first = render_status(observation, {}, 3)
    again = render_status(observation, first, 3)
    assert not status_changed(first, again)
    moved = render_status(
        Observation("Suspended", False, "Suspended", "s", False, False, "ns", "pro", 0, "h", "sha256:x", None), first, 3
    )
    assert status_changed(first, moved)


def _customer(name: str, secret: str, version: str) -> dict[str, Any]:
    return {
        "apiVersion": "clawhost.dev/v1alpha1",
        "kind": "Customer",
        "metadata": {"name": name, "resourceVersion": version, "managedFields": [{"manager": "x"}], "uid": "u"},
        "spec": {"tier": "pro", "telegram": {"botTokenSecretRef": {"name": secret}}},
        "status": {"phase": "Running"},
    }


def test_customer_cache_keeps_what_reconciles_read_and_the_index_follows_bot_secrets() -> None:
    essence, significance = essential(_customer("a", "s1", "1"), "all")
    kept = orjson.loads(essence)
    assert kept["metadata"] == {"name": "a", "uid": "u"}  # no managedFields; the cache adds the resourceVersion
    assert kept["status"] == {"phase": "Running"}
    assert kept["spec"]["tier"] == "pro"
    assert significance == essence  # any change a reconcile can read queues it

    index = BotSecretIndex()
    index.link("a", "s1")
    index.link("b", "s1")
    assert index.referring_to("s1") == ["a", "b"]
    index.link("a", "s2")  # the Customer now points at another Secret
    assert index.referring_to("s1") == ["b"]
    assert index.referring_to("s2") == ["a"]
    index.link("b", None)  # deleted
    assert index.referring_to("s1") == []


def _deployment(replicas: int, status: dict[str, int], annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "gateway", "generation": 1, "annotations": annotations},
        "spec": {"replicas": replicas},
        "status": {"observedGeneration": 1, **status},
    }


def test_deployment_significance_follows_what_the_customer_status_shows() -> None:
    ours = {"clawhost.dev/config-hash": "h"}
    created = essential(_deployment(1, {}, ours), "readiness")[1]
    revision = {**ours, "deployment.kubernetes.io/revision": "1"}  # the deployment controller's own annotation
    assert essential(_deployment(1, {}, revision), "readiness")[1] == created
    bare = _deployment(1, {}, {})
    del bare["metadata"]["annotations"]  # as created: no annotations at all
    plain = essential(bare, "readiness")[1]
    assert essential(_deployment(1, {}, {"deployment.kubernetes.io/revision": "1"}), "readiness")[1] == plain
    has_pod = {"replicas": 1, "updatedReplicas": 1}
    assert essential(_deployment(1, has_pod, revision), "readiness")[1] == created  # running: pods alone say nothing
    ready = essential(_deployment(1, {**has_pod, "readyReplicas": 1}, revision), "readiness")[1]
    assert ready != created
    assert essential(_deployment(1, {}, {"clawhost.dev/config-hash": "edited"}), "readiness")[1] != created
    # Suspended: whether pods are left is what the status (Reconciling) shows.
    draining = essential(_deployment(0, has_pod, ours), "readiness")[1]
    assert essential(_deployment(0, {}, ours), "readiness")[1] != draining


def test_the_gateway_starts_only_after_an_isolation_gate() -> None:
    """Its init container waits until the API server's Service (reachable until the egress policy is in force) is
    refused; it runs as restricted as the gateway and fits the quota."""
    pod = render_deployment("x", get_tier("starter"), "img", 1, "h")["spec"]["template"]["spec"]
    [gate] = pod["initContainers"]
    [gateway] = pod["containers"]
    assert gate["name"] == "wait-for-isolation"
    assert gate["image"] == gateway["image"]
    assert gate["securityContext"] == gateway["securityContext"]
    assert "KUBERNETES_SERVICE_HOST" in gate["command"][2]
    assert gate["resources"]["limits"]["cpu"] == gateway["resources"]["limits"]["cpu"], "the quota's CPU limit holds"
