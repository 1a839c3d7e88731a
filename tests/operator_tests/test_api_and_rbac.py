"""The Customer API rejects bad objects with readable messages; the operator's RBAC denies what it does not need."""

from __future__ import annotations

import copy
import json
import subprocess
import uuid
from typing import Any

import kubernetes
import pytest

from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.platform import OperatorProcess
from clawhost_localcluster.waiting import eventually

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


def _kubectl_as_operator(
    cluster: Cluster, operator: OperatorProcess, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("--kubeconfig", str(operator.kubeconfig), *args, stdin=stdin, check=False)


def _namespace(name: str, labels: dict[str, str]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})


def _in(namespace: str, obj: dict[str, Any]) -> str:
    return json.dumps({**obj, "metadata": {**obj["metadata"], "namespace": namespace}})


OPERATOR_USER = "system:serviceaccount:platform:clawhost-operator"
POLICIES = ("clawhost-operator-confinement", "clawhost-reserved-secret-name")
MANAGED = {"app.kubernetes.io/managed-by": "clawhost-operator", "pod-security.kubernetes.io/enforce": "restricted"}
# The names its RBAC grants (each kind only under the one name the operator gives it): what the admission policy
# must still refuse outside the operator's own namespaces.
GATEWAY_SECRET: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gateway-inputs"}}
GATEWAY_DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "gateway"},
    "spec": {
        "selector": {"matchLabels": {"a": "b"}},
        "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
    },
}


def test_operator_service_account_is_denied_what_it_does_not_need(
    platform_installed: Cluster, operator: OperatorProcess
) -> None:
    """Acting with a real token of the operator's ServiceAccount: every dangerous grant it had is refused (by RBAC,
    or by its admission policy where RBAC grants the kind), and what it uses is still allowed. Writes are
    server-side dry runs: authorisation and admission run in full, nothing is stored if a refusal is missing."""
    cluster = platform_installed
    dry = "--dry-run=server"
    # How the operator writes its children: server-side apply, a PATCH that names the object (RBAC grants each kind
    # only under its one name, so a plain create, a POST without a name, is refused before admission is asked).
    apply = ("apply", "--server-side", "--field-manager=clawhost-operator", dry, "-f", "-")
    suffix = uuid.uuid4().hex[:8]
    managed_ns = f"customer-rbac-{suffix}"
    unmanaged_ns = f"customer-unmanaged-{suffix}"
    cluster.kubectl("create", "-f", "-", stdin=_namespace(managed_ns, MANAGED))
    cluster.kubectl("create", "-f", "-", stdin=_namespace(unmanaged_ns, {}))
    try:
        refused_by_rbac: list[tuple[str, ...]] = [
            ("get", "secret", "clawhost-control-api", "-n", "platform"),
            ("get", "secret", "gateway", "-n", "kube-system"),
            ("get", "secrets", "-n", "platform"),
            ("get", "secrets", "-n", "kube-system"),
            ("get", "secrets", "-A"),
            ("get", "clusterrolebindings"),
            ("delete", "customer", "anything"),
            ("delete", "secret", "anything", "-n", "clawhost-secrets"),
            ("create", "secret", "generic", "stolen", "-n", "platform", dry),
            ("create", "secret", "generic", "other", "-n", managed_ns, dry),  # only gateway-inputs, even at home
            ("create", "deployment", "miner", "--image=x", "-n", "kube-system", dry),
            ("create", "clusterrolebinding", "mine", "--clusterrole=cluster-admin", f"--user={OPERATOR_USER}", dry),
            ("create", "rolebinding", "mine", "--clusterrole=admin", f"--user={OPERATOR_USER}", "-n", managed_ns, dry),
            ("run", "shell", "--image=x", "-n", managed_ns, dry),
            ("delete", "pod", "anything", "-n", managed_ns),  # pods: read only (their gateway's restarts)
            ("get", "secrets", "-n", "kube-system", "--as=system:admin"),  # impersonation
        ]
        for args in refused_by_rbac:
            result = _kubectl_as_operator(cluster, operator, *args)
            assert result.returncode != 0, f"{args} was allowed"
            assert "forbidden" in result.stderr.lower(), (args, result.stderr)
            assert OPERATOR_USER in result.stderr, (args, result.stderr)

        for verb, resource in (("escalate", "clusterroles"), ("bind", "clusterroles"), ("impersonate", "users")):
            answer = _kubectl_as_operator(cluster, operator, "auth", "can-i", verb, resource).stdout.strip()
            assert answer == "no", f"{verb} {resource}"

        refused_by_policy: list[tuple[tuple[str, ...], str | None]] = [
            (apply, _in("kube-system", GATEWAY_DEPLOYMENT)),
            (apply, _in("platform", GATEWAY_DEPLOYMENT)),
            (apply, _in("kube-system", GATEWAY_SECRET)),
            (apply, _in("platform", GATEWAY_SECRET)),
            (("delete", "namespace", "platform", dry), None),
            (("delete", "namespace", unmanaged_ns, dry), None),  # even one named like its own
            (("label", "namespace", "platform", "app.kubernetes.io/managed-by=clawhost-operator", dry), None),
            (("create", dry, "-f", "-"), _namespace(f"customer-bare-{suffix}", {})),
            (("create", dry, "-f", "-"), _namespace(f"elsewhere-{suffix}", MANAGED)),
            (("create", dry, "-f", "-"), _namespace(f"customer-lax-{suffix}", {**MANAGED, **_PRIVILEGED})),
        ]
        for args, stdin in refused_by_policy:

            def refused(args: tuple[str, ...] = args, stdin: str | None = stdin) -> str | None:
                result = _kubectl_as_operator(cluster, operator, *args, stdin=stdin)
                if result.returncode == 0:
                    raise AssertionError(f"allowed: {args} {stdin or ''}")
                return result.stderr if any(policy in result.stderr for policy in POLICIES) else None

            # A policy takes effect a moment after it is created (the API server compiles it in the background).
            # A gateway-inputs Secret outside the operator's namespaces is refused by both; either may answer.
            message = eventually(refused, timeout=30, what=f"an admission policy to refuse {args} {stdin or ''}")
            assert "the clawhost operator may only" in message or "is reserved for the clawhost operator" in message

        # ...and allowed what it uses (the lifecycle tests exercise all of it for real).
        allowed: list[tuple[tuple[str, ...], str | None]] = [
            (("get", "customers"), None),
            (("get", "secrets", "-n", "clawhost-secrets"), None),
            (("get", "secrets", "-A", "--field-selector=metadata.name=gateway-inputs"), None),
            (("get", "deployments", "-A", "--field-selector=metadata.name=gateway"), None),
            (("create", dry, "-f", "-"), _namespace(f"customer-new-{suffix}", MANAGED)),
            (apply, _in(managed_ns, GATEWAY_DEPLOYMENT)),
            (apply, _in(managed_ns, GATEWAY_SECRET)),
            (("delete", "namespace", managed_ns, dry), None),
        ]
        for args, stdin in allowed:
            result = _kubectl_as_operator(cluster, operator, *args, stdin=stdin)
            assert result.returncode == 0, (args, result.stderr)
    finally:
        cluster.kubectl("delete", "namespace", managed_ns, unmanaged_ns, "--wait=false", check=False)


_PRIVILEGED = {"pod-security.kubernetes.io/enforce": "privileged"}


def test_the_secret_name_the_operator_may_read_everywhere_is_reserved_for_its_namespaces(
    platform_installed: Cluster,
) -> None:
    """The operator may read Secrets named gateway-inputs in any namespace: nobody (an admin neither) creates one
    outside the namespaces it manages."""
    for namespace in ("default", "platform"):
        body = _in(namespace, {**GATEWAY_SECRET, "stringData": {"k": "v"}})

        def refused(body: str = body) -> str | None:
            result = platform_installed.kubectl("create", "--dry-run=server", "-f", "-", stdin=body, check=False)
            return result.stderr if result.returncode != 0 else None

        message = eventually(
            refused, timeout=30, what=f"the reserved-name policy to refuse gateway-inputs in {namespace}"
        )
        assert "clawhost-reserved-secret-name" in message, message
        assert "is reserved for the clawhost operator" in message, message
