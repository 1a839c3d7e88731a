"""The control API's ServiceAccount may do exactly what the deploy manifests grant, nothing more."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from clawhost_localcluster.environment import Cluster

pytestmark = pytest.mark.cluster


def _as_api(cluster: Cluster, kubeconfig: Path, *args: str, stdin: str | None = None) -> tuple[int, str]:
    result = cluster.kubectl("--kubeconfig", str(kubeconfig), *args, stdin=stdin, check=False)
    return result.returncode, result.stderr


def test_service_account_can_only_do_its_job(customer_crd: Cluster, api_kubeconfig: Path) -> None:
    name = f"rbac{uuid.uuid4().hex[:8]}"
    customer: dict[str, Any] = {
        "apiVersion": "clawhost.dev/v1alpha1",
        "kind": "Customer",
        "metadata": {"name": name},
        "spec": {"tier": "pro", "telegram": {"botTokenSecretRef": {"name": name}, "allowedUserIds": [1]}},
    }
    assert _as_api(customer_crd, api_kubeconfig, "create", "-f", "-", stdin=json.dumps(customer))[0] == 0
    assert _as_api(customer_crd, api_kubeconfig, "get", "customers")[0] == 0
    status_patch = '{"status":{"billing":{"state":"active"}}}'
    assert (
        _as_api(
            customer_crd,
            api_kubeconfig,
            "patch",
            "customer",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            status_patch,
        )[0]
        == 0
    )
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "clawhost-secrets"}}
    assert _as_api(customer_crd, api_kubeconfig, "create", "-f", "-", stdin=json.dumps(secret))[0] == 0

    # Server-side apply of the bot-token Secret (what the app does), creating and then changing it.
    applied = {**secret, "metadata": {"name": f"{name}-ssa", "namespace": "clawhost-secrets"}, "stringData": {"t": "1"}}
    for value in ("1", "2"):
        applied["stringData"] = {"t": value}
        code, stderr = _as_api(
            customer_crd,
            api_kubeconfig,
            "apply",
            "--server-side",
            "--field-manager=clawhost-api",
            "-f",
            "-",
            stdin=json.dumps(applied),
        )
        assert code == 0, stderr

    other_ns_secret = {**secret, "metadata": {"name": name, "namespace": "platform"}}
    replaced = {**customer, "spec": {**customer["spec"], "tier": "team"}}
    denied: list[tuple[tuple[str, ...], str | None]] = [
        (("delete", "customer", name), None),
        (("replace", "-f", "-"), json.dumps(replaced)),  # update (PUT): only patch is granted
        (("get", "secrets", "-n", "kube-system"), None),
        (("get", "secrets", "-n", "clawhost-secrets"), None),  # no listing
        (("get", "secret", name, "-n", "clawhost-secrets"), None),  # write-only: tokens are never read back
        (("create", "-f", "-"), json.dumps(other_ns_secret)),  # Secrets only in the bot-token namespace
        (("create", "deployment", "x", "--image=busybox", "-n", "platform"), None),
        (("create", "namespace", f"customer-{name}"), None),
        (("get", "pods", "-A"), None),
        (("delete", "secret", name, "-n", "clawhost-secrets"), None),
    ]
    for args, stdin in denied:
        code, stderr = _as_api(customer_crd, api_kubeconfig, *args, stdin=stdin)
        assert code != 0, args
        assert "forbidden" in stderr.lower(), (args, stderr)


def test_a_patch_never_reads_a_bot_token_back(customer_crd: Cluster, api_kubeconfig: Path) -> None:
    """A PATCH answers with the whole object, so patch rights could read a token back: every patch that would keep
    a stored value is refused (control_api/deploy/15-bot-token-policy.yaml), whatever it asks for."""
    name = f"readback{uuid.uuid4().hex[:8]}"
    stored = f"{uuid.uuid4().int % 10**9}:AA{uuid.uuid4().hex}"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "clawhost-secrets"},
        "stringData": {"token": stored},
    }
    customer_crd.kubectl("apply", "--server-side", "--field-manager=clawhost-api", "-f", "-", stdin=json.dumps(secret))
    target = ("secret", name, "-n", "clawhost-secrets", "-o", "json")
    attempts: list[tuple[str, ...]] = [
        ("patch", *target, "--type=merge", "-p", "{}"),
        ("patch", *target, "--type=merge", "-p", '{"metadata":{"labels":{"peek":"1"}}}'),
        ("patch", *target, "--type=merge", "-p", '{"stringData":{"another":"key"}}'),
        ("patch", *target, "--type=json", "-p", '[{"op":"test","path":"/data/token","value":"eA=="}]'),
        ("patch", *target, "--type=merge", "-p", '{"stringData":{"another":"key"}}', "--dry-run=server"),
        ("label", *target, "peek=1"),
        ("annotate", *target, "peek=1"),
    ]
    encoded = base64.b64encode(stored.encode()).decode()
    for args in attempts:
        result = customer_crd.kubectl("--kubeconfig", str(api_kubeconfig), *args, check=False)
        assert stored not in result.stdout + result.stderr, f"{args} read the token back"
        assert encoded not in result.stdout + result.stderr, f"{args} read the token back"
        assert result.returncode != 0, (args, result.stdout)

    # Replacing the value is what the control API does: allowed, and its answer holds only what it sent.
    replaced = {**secret, "stringData": {"token": "1:replacement"}}
    applied = customer_crd.kubectl(
        "--kubeconfig",
        str(api_kubeconfig),
        "apply",
        "--server-side",
        "--field-manager=clawhost-api",
        "--force-conflicts",
        "-o",
        "json",
        "-f",
        "-",
        stdin=json.dumps(replaced),
    )
    assert base64.b64decode(json.loads(applied.stdout)["data"]["token"]).decode() == "1:replacement"
    assert encoded not in applied.stdout
