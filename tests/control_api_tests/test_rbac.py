"""The control API's ServiceAccount may do exactly what the deploy manifests grant, nothing more."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from clawhost_api.kube import KubeHttp, load_config
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
        (("replace", "-f", "-"), json.dumps(replaced)),  # update (PUT): only patch is granted
        (("get", "secrets", "-n", "kube-system"), None),
        (("get", "secrets", "-n", "clawhost-secrets"), None),  # no listing
        (("get", "secret", name, "-n", "clawhost-secrets"), None),  # write-only: tokens are never read back
        (("create", "-f", "-"), json.dumps(other_ns_secret)),  # Secrets only in the bot-token namespace
        (("create", "deployment", "x", "--image=busybox", "-n", "platform"), None),
        (("create", "namespace", f"customer-{name}"), None),
        (("get", "pods", "-A"), None),
        (("delete", "secret", "anything", "-n", "platform"), None),  # deletes only in the bot-token namespace
        (("delete", "namespace", f"customer-{name}"), None),
    ]
    for args, stdin in denied:
        code, stderr = _as_api(customer_crd, api_kubeconfig, *args, stdin=stdin)
        assert code != 0, args
        assert "forbidden" in stderr.lower(), (args, stderr)


def test_deleting_an_agent_reads_no_token_back_and_deletes_one_at_a_time(
    customer_crd: Cluster, api_kubeconfig: Path
) -> None:
    """The dashboard deletes a Customer and its bot-token Secret: the Secret's delete answers with a Status, never
    the Secret (dry run or not); a collection delete, of either, is refused."""
    name = f"del{uuid.uuid4().hex[:8]}"
    stored = f"{uuid.uuid4().int % 10**9}:AA{uuid.uuid4().hex}"
    encoded = base64.b64encode(stored.encode()).decode()
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "clawhost-secrets"},
        "stringData": {"token": stored},
    }
    customer_crd.kubectl("apply", "--server-side", "--field-manager=clawhost-api", "-f", "-", stdin=json.dumps(secret))
    api = KubeHttp(load_config(api_kubeconfig))
    path = f"/api/v1/namespaces/clawhost-secrets/secrets/{name}"
    for query in ([("dryRun", "All")], []):
        answer = api.request("DELETE", path, None, "application/json", query)
        text = answer.body.decode(errors="replace")
        assert answer.status == 200, text
        assert stored not in text
        assert encoded not in text
        assert json.loads(text)["kind"] == "Status"
    assert customer_crd.kubectl("get", "secret", name, "-n", "clawhost-secrets", check=False).returncode != 0
    for collection in ("/api/v1/namespaces/clawhost-secrets/secrets", "/apis/clawhost.dev/v1alpha1/customers"):
        refused = api.request("DELETE", collection, None, "application/json", [("dryRun", "All")])
        assert refused.status == 403, (collection, refused.status)
    customer = {
        "apiVersion": "clawhost.dev/v1alpha1",
        "kind": "Customer",
        "metadata": {"name": name},
        "spec": {"tier": "pro", "telegram": {"botTokenSecretRef": {"name": name}, "allowedUserIds": [1]}},
    }
    assert _as_api(customer_crd, api_kubeconfig, "create", "-f", "-", stdin=json.dumps(customer))[0] == 0
    code, stderr = _as_api(customer_crd, api_kubeconfig, "delete", "customer", name, "--wait=false")
    assert code == 0, stderr


def test_a_patch_never_reads_a_bot_token_back(customer_crd: Cluster, api_kubeconfig: Path) -> None:
    """A PATCH answers with the whole object, so patch rights could read a token back: every patch that would keep
    a stored value is refused (control_api/deploy/15-bot-token-policy.yaml), whatever it asks for. Sent as raw
    requests with the ServiceAccount's token: kubectl would GET the object first (refused) and never PATCH."""
    name = f"readback{uuid.uuid4().hex[:8]}"
    stored = f"{uuid.uuid4().int % 10**9}:AA{uuid.uuid4().hex}"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "clawhost-secrets"},
        "stringData": {"token": stored},
    }
    customer_crd.kubectl("apply", "--server-side", "--field-manager=clawhost-api", "-f", "-", stdin=json.dumps(secret))
    api = KubeHttp(load_config(api_kubeconfig))
    path = f"/api/v1/namespaces/clawhost-secrets/secrets/{name}"
    merge, json_patch, apply = (
        "application/merge-patch+json",
        "application/json-patch+json",
        "application/apply-patch+yaml",
    )
    dry = [("dryRun", "All")]
    attempts: list[tuple[bytes, str, list[tuple[str, str]]]] = [
        (b"{}", merge, []),
        (b'{"metadata":{"labels":{"peek":"1"}}}', merge, []),
        (b'{"metadata":{"annotations":{"peek":"1"}}}', merge, dry),
        (b'{"stringData":{"another":"key"}}', merge, []),
        (b'[{"op":"add","path":"/metadata/labels","value":{"peek":"1"}}]', json_patch, []),
        (b'{"apiVersion":"v1","kind":"Secret","metadata":{"labels":{"peek":"1"}}}', apply, [("fieldManager", "peek")]),
    ]
    encoded = base64.b64encode(stored.encode()).decode()
    for body, content_type, query in attempts:
        answer = api.request("PATCH", path, body, content_type, query)
        text = answer.body.decode(errors="replace")
        assert stored not in text, f"{body!r} read the token back"
        assert encoded not in text, f"{body!r} read the token back"
        assert answer.status == 422, (body, answer.status, text)
        assert "the bot token is unchanged" in text, text

    # Replacing the value is what the control API does: allowed, and its answer holds only what it sent.
    replaced = {**secret, "stringData": {"token": "1:replacement"}}
    answer = api.request("PATCH", path, json.dumps(replaced).encode(), apply, [("fieldManager", "clawhost-api")])
    assert answer.status == 200, answer.body
    assert base64.b64decode(json.loads(answer.body)["data"]["token"]).decode() == "1:replacement"
    assert encoded not in answer.body.decode()
