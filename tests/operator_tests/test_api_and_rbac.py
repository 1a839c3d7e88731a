"""The Customer API rejects bad objects with readable messages; the operator's RBAC denies what it does not need."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import kubernetes
import pytest

from clawhost_localcluster.environment import Cluster
from operator_tests.conftest import OperatorProcess

pytestmark = pytest.mark.cluster

VALID: dict[str, Any] = {
    "apiVersion": "clawhost.dev/v1alpha1",
    "kind": "Customer",
    "metadata": {"name": "valid-one"},
    "spec": {"tier": "starter", "telegram": {"botTokenSecretRef": {"name": "x"}, "allowedUserIds": [5]}},
}


def _with(path: str, value: Any, name: str = "invalid") -> dict[str, Any]:
    body = copy.deepcopy(VALID)
    body["metadata"]["name"] = name
    target = body
    keys = path.split(".")
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = value
    return body


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_with("spec.tier", "gold"), 'Unsupported value: "gold": supported values: "starter", "pro", "team"'),
        (_with("spec.telegram.allowedUserIds", [1, 2]), "the Starter tier allows at most 1 Telegram user id"),
        (_with("spec.telegram.allowedUserIds", [0]), "should be greater than or equal to 1"),
        (_with("spec.telegram.allowedUserIds", []), "should have at least 1 items"),
        (_with("spec.telegram.allowedUserIds", [5, 5]), "ids must be distinct"),
        (
            _with("spec.agent", {"thinking": "high"}),
            "the Starter tier allows thinking levels off, minimal, low, medium",
        ),
        (_with("spec.agent", {"model": "kimi-k2-thinking"}), "the Starter tier offers the models kimi-k2.5"),
        (_with("spec.telegram", {"allowedUserIds": [1]}), "spec.telegram.botTokenSecretRef: Required value"),
        (_with("spec.billing", {"mode": "paypal"}), 'Unsupported value: "paypal"'),
        (_with("metadata.name", "Bad_Name"), "a lowercase RFC 1123 subdomain"),
        (_with("metadata.name", "x" * 60, name="x" * 60), "name must be at most 54 characters"),
    ],
    ids=[
        "tier",
        "too-many-ids",
        "zero-id",
        "no-ids",
        "duplicate-ids",
        "thinking",
        "model",
        "no-secret-ref",
        "billing-mode",
        "name-format",
        "name-length",
    ],
)
def test_invalid_customers_are_rejected_with_their_message(
    platform_installed: Cluster, body: dict[str, Any], message: str
) -> None:
    result = platform_installed.kubectl("create", "-f", "-", stdin=json.dumps(body), check=False)
    assert result.returncode != 0
    assert message in result.stderr
    name = body["metadata"]["name"]
    assert platform_installed.kubectl("get", "customer", name, check=False).returncode != 0, "nothing was created"


@pytest.mark.parametrize(
    ("heartbeat", "message"),
    [
        ({"every": "5m"}, "heartbeat cadence must be 0m (off) or from 15m to 24h"),
        ({"every": "25h"}, "heartbeat cadence must be 0m (off) or from 15m to 24h"),
        ({"every": "30"}, "spec.heartbeat.every in body should match"),
        ({"every": "1d"}, "spec.heartbeat.every in body should match"),
        ({"every": "30m", "activeHours": {"start": "8:00", "end": "22:00"}}, "activeHours.start in body should match"),
        ({"every": "30m", "activeHours": {"start": "08:00", "end": "24:01"}}, "activeHours.end in body should match"),
        ({"every": "30m", "activeHours": {"start": "08:00", "end": "08:00"}}, "active hours start and end must differ"),
        (
            {"every": "30m", "activeHours": {"start": "08:00", "end": "22:00", "timezone": "../etc"}},
            "activeHours.timezone in body should match",
        ),
        ({"every": "30m", "lightContext": "yes"}, "spec.heartbeat.lightContext: Invalid value"),
    ],
    ids=["too-often", "too-rare", "no-unit", "days", "start", "end", "empty-window", "timezone", "light-context"],
)
def test_heartbeat_settings_are_refused_with_their_message(
    platform_installed: Cluster, heartbeat: dict[str, Any], message: str
) -> None:
    body = _with("spec.heartbeat", heartbeat)
    result = platform_installed.kubectl("create", "--dry-run=server", "-f", "-", stdin=json.dumps(body), check=False)
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize(
    "heartbeat",
    [
        {},
        {"every": "0m"},
        {"every": "15m"},
        {"every": "2h", "lightContext": False, "isolatedSession": False},
        {"every": "24h"},
        {"every": "30m", "activeHours": {"start": "22:00", "end": "06:00", "timezone": "Europe/Berlin"}},
        {"every": "1h", "activeHours": {"start": "00:00", "end": "24:00"}},
    ],
    ids=["absent", "off", "fastest", "heavy", "slowest", "overnight-berlin", "whole-day"],
)
def test_heartbeat_settings_are_accepted_and_default_to_off(
    platform_installed: Cluster, heartbeat: dict[str, Any]
) -> None:
    body = _with("spec.heartbeat", heartbeat) if heartbeat else copy.deepcopy(VALID)
    result = platform_installed.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", stdin=json.dumps(body))
    stored = json.loads(result.stdout)["spec"]["heartbeat"]
    assert stored == {"every": "0m", "lightContext": True, "isolatedSession": True, **heartbeat}


def test_billing_mode_is_immutable(platform_installed: Cluster) -> None:
    body = _with("spec.billing", {"mode": "none"}, name="immutable-billing")
    platform_installed.kubectl("create", "-f", "-", stdin=json.dumps(body))
    try:
        result = platform_installed.kubectl(
            "patch",
            "customer",
            "immutable-billing",
            "--type=merge",
            "-p",
            '{"spec":{"billing":{"mode":"stripe"}}}',
            check=False,
        )
        assert result.returncode != 0
        assert "spec.billing.mode is immutable" in result.stderr
    finally:
        platform_installed.kubectl("delete", "customer", "immutable-billing", "--wait=false", check=False)


def _as_operator(operator: OperatorProcess) -> kubernetes.client.ApiClient:
    client: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(operator.kubeconfig)
    )
    return client


def test_operator_service_account_is_denied_what_it_does_not_need(operator: OperatorProcess) -> None:
    api = _as_operator(operator)
    core = kubernetes.client.CoreV1Api(api)
    denied: list[Callable[[], object]] = [
        lambda: core.list_pod_for_all_namespaces(),
        lambda: core.delete_namespaced_secret("anything", "clawhost-secrets"),
        lambda: kubernetes.client.RbacAuthorizationV1Api(api).list_cluster_role_binding(),
        lambda: kubernetes.client.CustomObjectsApi(api).delete_cluster_custom_object(
            "clawhost.dev", "v1alpha1", "customers", "anything"
        ),
    ]
    for call in denied:
        with pytest.raises(kubernetes.client.ApiException) as error:
            call()
        assert error.value.status == 403
        assert "system:serviceaccount:platform:clawhost-operator" in (error.value.body or "")
    # ...and allowed what it uses (the lifecycle tests exercise the rest).
    custom = kubernetes.client.CustomObjectsApi(api)
    listed = custom.list_cluster_custom_object("clawhost.dev", "v1alpha1", "customers")
    assert isinstance(listed, dict)
    assert "items" in listed
