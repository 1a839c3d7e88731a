"""The whole customer lifecycle against the real control plane, with the operator running as its ServiceAccount."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from clawhost_api.customer import hash_proxy_token, namespace_for
from clawhost_localcluster.platform import CustomerFactory, OperatorProcess, gateway_secret, get_json
from clawhost_localcluster.waiting import eventually

pytestmark = pytest.mark.cluster


def _deployment(customers: CustomerFactory, name: str) -> Any:
    return get_json(customers.cluster, "deployment", "gateway", "-n", namespace_for(name))


def test_create_reaches_ready_with_every_child(operator: OperatorProcess, customers: CustomerFactory) -> None:
    name = customers.create(tier="pro", ids=[111, 222][:1], agent={"thinking": "low"})
    customer = customers.wait_ready(name)
    status = customer["status"]
    ns = namespace_for(name)
    assert status["phase"] == "Running"
    assert status["namespace"] == ns
    assert status["observedGeneration"] == customer["metadata"]["generation"]
    assert status["applied"]["tier"] == "pro"
    assert {c["type"] for c in status["conditions"]} == {"Ready", "Reconciling", "Stalled"}

    namespace = get_json(customers.cluster, "namespace", ns)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert namespace["metadata"]["labels"]["clawhost.dev/customer"] == name
    assert namespace["metadata"]["ownerReferences"][0]["uid"] == customer["metadata"]["uid"]

    data = gateway_secret(customers, name)
    assert status["proxyToken"]["hash"] == hash_proxy_token(data["proxy-token"])
    assert data["proxy-token"] not in json.dumps(customer), "the token itself never reaches the Customer"
    config = json.loads(data["openclaw.json"])
    assert config["channels"]["telegram"]["allowFrom"] == [111]
    assert config["channels"]["telegram"]["dmPolicy"] == "allowlist"
    assert config["agents"]["defaults"]["thinkingDefault"] == "low"
    assert config["agents"]["defaults"]["model"]["primary"] == "platform/kimi-k2.5"
    assert config["models"]["providers"]["platform"]["apiKey"] == "${KIMI_API_KEY}"
    assert config["plugins"]["entries"]["kimi"]["enabled"] is False

    quota = get_json(customers.cluster, "resourcequota", "gateway-quota", "-n", ns)
    assert quota["spec"]["hard"]["limits.memory"] == "2Gi"
    assert quota["spec"]["hard"]["pods"] == "1"
    policy = get_json(customers.cluster, "networkpolicy", "gateway-egress", "-n", ns)
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert not policy["spec"].get("ingress")

    deployment = _deployment(customers, name)
    pod_spec = deployment["spec"]["template"]["spec"]
    container = pod_spec["containers"][0]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert pod_spec["automountServiceAccountToken"] is False
    assert pod_spec["serviceAccountName"] == "gateway"
    account = get_json(customers.cluster, "serviceaccount", "gateway", "-n", ns)
    assert account["automountServiceAccountToken"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "2Gi"}
    pods = get_json(customers.cluster, "pods", "-n", ns)["items"]
    assert len(pods) == 1
    assert pods[0]["status"]["phase"] == "Running"


def test_tier_change_updates_children_and_restarts_only_on_input_change(
    operator: OperatorProcess, customers: CustomerFactory
) -> None:
    name = customers.create(tier="starter")
    customers.wait_ready(name)
    before = _deployment(customers, name)
    hash_before = before["spec"]["template"]["metadata"]["annotations"]["clawhost.dev/config-hash"]

    # A change the gateway does not read (an annotation) must not restart the pod.
    customers.cluster.kubectl("annotate", "customer", name, "example.com/note=hello")
    reconciles = operator.metrics()["clawhost_operator_reconciles_total"]
    eventually(
        lambda: operator.metrics()["clawhost_operator_reconciles_total"] > reconciles,
        timeout=20,
        what="a reconcile after the annotation",
    )
    assert _deployment(customers, name)["metadata"]["generation"] == before["metadata"]["generation"]

    customers.cluster.kubectl(
        "patch",
        "customer",
        name,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"tier": "team", "telegram": {"allowedUserIds": [1, 2, 3]}}}),
    )
    customer = customers.wait_for(
        name,
        lambda c: (
            (c.get("status") or {}).get("applied", {}).get("tier") == "team" and c["status"]["phase"] == "Running"
        ),
        "tier team Running",
    )
    after = _deployment(customers, name)
    assert after["spec"]["template"]["metadata"]["annotations"]["clawhost.dev/config-hash"] != hash_before
    assert after["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "4", "memory": "4Gi"}
    quota = get_json(customers.cluster, "resourcequota", "gateway-quota", "-n", namespace_for(name))
    assert quota["spec"]["hard"]["limits.memory"] == "4Gi"
    config = json.loads(gateway_secret(customers, name)["openclaw.json"])
    assert config["agents"]["defaults"]["thinkingDefault"] == "high"
    assert config["channels"]["telegram"]["allowFrom"] == [1, 2, 3]
    assert customer["status"]["observedGeneration"] == customer["metadata"]["generation"]


def test_suspend_and_resume(operator: OperatorProcess, customers: CustomerFactory) -> None:
    name = customers.create()
    customers.wait_ready(name)
    token_hash = customers.get(name)["status"]["proxyToken"]["hash"]
    customers.cluster.kubectl("patch", "customer", name, "--type=merge", "-p", '{"spec":{"suspend":true}}')
    customer = customers.wait_for(name, lambda c: c["status"]["phase"] == "Suspended", "Suspended")
    assert customers.condition(name)["reason"] == "Suspended"  # type: ignore[index]
    eventually(
        lambda: not get_json(customers.cluster, "pods", "-n", namespace_for(name))["items"],
        timeout=30,
        what="the gateway pod to go away",
    )
    assert _deployment(customers, name)["spec"]["replicas"] == 0
    assert gateway_secret(customers, name)["proxy-token"], "namespace and Secret are kept while suspended"
    assert customer["status"]["proxyToken"]["hash"] == token_hash

    customers.cluster.kubectl("patch", "customer", name, "--type=merge", "-p", '{"spec":{"suspend":false}}')
    customers.wait_ready(name)
    assert customers.get(name)["status"]["proxyToken"]["hash"] == token_hash, "resume keeps the same token"


def test_the_customers_own_switch_suspends_beside_the_platforms(
    operator: OperatorProcess, customers: CustomerFactory
) -> None:
    name = customers.create()
    customers.wait_ready(name)

    def patch(spec: str) -> None:
        customers.cluster.kubectl("patch", "customer", name, "--type=merge", "-p", spec)

    patch('{"spec":{"dashboardSuspend":true}}')
    customers.wait_for(name, lambda c: c["status"]["phase"] == "Suspended", "Suspended by the dashboard's field")
    assert "dashboard" in customers.condition(name)["message"]  # type: ignore[index]
    assert _deployment(customers, name)["spec"]["replicas"] == 0
    # Both set, then the platform lifts its own: still suspended by the customer's switch.
    patch('{"spec":{"suspend":true}}')
    patch('{"spec":{"suspend":false}}')
    customers.wait_for(name, lambda c: "dashboard" in str(c["status"]["conditions"]), "the dashboard's reason again")
    assert customers.get(name)["status"]["phase"] == "Suspended"
    patch('{"spec":{"dashboardSuspend":false}}')
    customers.wait_ready(name)


def test_billing_states_drive_the_gateway(operator: OperatorProcess, customers: CustomerFactory) -> None:
    name = customers.create(tier="pro", billing="stripe")
    customers.wait_for(name, lambda c: (c.get("status") or {}).get("phase") == "AwaitingPayment", "AwaitingPayment")
    assert get_json(customers.cluster, "namespace", namespace_for(name)) is None, "nothing runs before payment"

    period = {"currentPeriodStart": "2026-11-01T00:00:00Z", "currentPeriodEnd": "2026-12-01T00:00:00Z"}
    customers.patch_status(
        name, {"billing": {"state": "active", "subscriptionId": "sub_1", "paidTier": "pro", **period}}
    )
    customers.wait_ready(name)

    customers.patch_status(name, {"billing": {"state": "past_due"}})
    customers.wait_for(name, lambda c: c["status"]["billing"]["state"] == "past_due", "past_due seen")
    assert customers.condition(name)["status"] == "True", "past_due: Stripe is still retrying, keep running"  # type: ignore[index]

    customers.patch_status(name, {"billing": {"state": "unpaid"}})
    customers.wait_for(name, lambda c: c["status"]["phase"] == "Suspended", "Suspended on unpaid")
    assert customers.condition(name)["reason"] == "PaymentFailed"  # type: ignore[index]
    assert _deployment(customers, name)["spec"]["replicas"] == 0

    customers.patch_status(name, {"billing": {"state": "active"}})
    customers.wait_ready(name)

    customers.patch_status(name, {"billing": {"state": "paused"}})
    customers.wait_for(name, lambda c: customers.condition(name)["reason"] == "SubscriptionPaused", "paused")  # type: ignore[index]
    customers.patch_status(name, {"billing": {"state": "active"}})
    customers.wait_ready(name)

    customers.patch_status(name, {"billing": {"state": "canceled"}})
    customer = customers.wait_for(
        name, lambda c: c["status"]["phase"] == "Destroyed" and not c["status"].get("namespace"), "Destroyed"
    )
    assert get_json(customers.cluster, "namespace", namespace_for(name)) is None
    ready = customers.condition(name)
    assert ready is not None
    assert ready["status"] == "False"
    assert ready["reason"] == "SubscriptionCanceled"
    assert not (customer["status"].get("proxyToken") or {}).get("hash"), "the token is revoked on destroy"
    assert customer["status"]["billing"]["subscriptionId"] == "sub_1", "billing facts are never touched"


def test_paid_tier_caps_what_runs(operator: OperatorProcess, customers: CustomerFactory) -> None:
    """The bypass: a team agent with 10 Telegram ids whose subscription pays only for starter (its downgrade's spec
    patch failed the CRD's rule). What runs is starter's: one id in openclaw.json, starter's quota and pod size."""
    ids = list(range(5001, 5011))
    name = customers.create(tier="team", billing="stripe", ids=ids)
    customers.patch_status(name, {"billing": {"state": "active", "paidTier": "starter"}})
    customer = customers.wait_ready(name)
    applied = customer["status"]["applied"]
    assert applied["tier"] == "starter"
    assert applied["activeTelegramUserIds"] == [5001], "the first id in spec order"
    assert applied["inactiveTelegramUserIds"] == ids[1:]
    config = json.loads(gateway_secret(customers, name)["openclaw.json"])
    assert config["channels"]["telegram"]["allowFrom"] == [5001]
    assert config["agents"]["defaults"]["thinkingDefault"] == "medium"
    quota = get_json(customers.cluster, "resourcequota", "gateway-quota", "-n", namespace_for(name))["spec"]["hard"]
    assert (quota["requests.cpu"], quota["limits.memory"]) == ("250m", "2Gi"), "starter's size"
    limits = _deployment(customers, name)["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {"cpu": "1", "memory": "2Gi"}
    eventually(lambda: "TelegramUsersInactive" in _event_reasons(customers, name), timeout=30, what="the Warning Event")

    customers.patch_status(name, {"billing": {"paidTier": "team"}})  # paid up: all ten talk to the agent
    upgraded = customers.wait_for(name, lambda c: c["status"]["applied"]["tier"] == "team", "team applied")
    assert upgraded["status"]["applied"]["activeTelegramUserIds"] == ids
    assert "inactiveTelegramUserIds" not in upgraded["status"]["applied"]
    assert json.loads(gateway_secret(customers, name)["openclaw.json"])["channels"]["telegram"]["allowFrom"] == ids


def test_delete_removes_the_namespace_before_the_customer(
    operator: OperatorProcess, customers: CustomerFactory
) -> None:
    name = customers.create()
    customers.wait_ready(name)
    assert "clawhost.dev/namespace-cleanup" in customers.get(name)["metadata"]["finalizers"]
    customers.cluster.kubectl("delete", "customer", name, "--wait=false")
    eventually(lambda: customers.get(name) is None, timeout=90, what="the Customer to be gone")
    assert get_json(customers.cluster, "namespace", namespace_for(name)) is None, "namespace gone first"


def _server_dry_run(customers: CustomerFactory) -> dict[str, Any]:
    """The Customer as admission leaves it (mutating policies included), without storing it."""
    body = {
        "apiVersion": "clawhost.dev/v1alpha1",
        "kind": "Customer",
        "metadata": {"name": customers.new_name(), "finalizers": ["example.com/keep"]},
        "spec": {"tier": "starter", "telegram": {"botTokenSecretRef": {"name": "x"}, "allowedUserIds": [1]}},
    }
    out = customers.cluster.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", stdin=json.dumps(body))
    created: dict[str, Any] = json.loads(out.stdout)
    return created


def _policy_in_force(customers: CustomerFactory) -> dict[str, Any] | None:
    dry = _server_dry_run(customers)
    return dry if len(dry["metadata"].get("finalizers") or []) == 2 else None


def test_new_customers_carry_the_finalizer_from_admission(
    operator: OperatorProcess, customers: CustomerFactory
) -> None:
    # The policy (operator/deploy/25-customer-finalizer-policy.yaml) adds it at creation, next to any other.
    dry = eventually(lambda: _policy_in_force(customers), what="the finalizer policy to be in force")
    assert dry["metadata"]["finalizers"] == ["example.com/keep", "clawhost.dev/namespace-cleanup"]
    name = customers.create()
    customers.wait_ready(name)
    customer = get_json(customers.cluster, "customer", name, "--show-managed-fields")
    assert "clawhost.dev/namespace-cleanup" in customer["metadata"]["finalizers"]
    # The operator wrote only the status: it spent no write of its own on the finalizer.
    writers = {(m["manager"], m.get("subresource", "")) for m in customer["metadata"]["managedFields"]}
    assert ("clawhost-operator", "status") in writers
    assert ("clawhost-operator", "") not in writers


def test_a_removed_finalizer_is_put_back(operator: OperatorProcess, customers: CustomerFactory) -> None:
    # Customers created before the policy existed, or on a cluster without it, get it from the operator.
    name = customers.create()
    customers.wait_ready(name)
    customers.cluster.kubectl(
        "patch", "customer", name, "--type=json", "-p", '[{"op":"remove","path":"/metadata/finalizers"}]'
    )
    customers.wait_for(
        name, lambda c: "clawhost.dev/namespace-cleanup" in (c["metadata"].get("finalizers") or []), "finalizer back"
    )


@pytest.mark.parametrize(
    ("what", "damage", "repaired"),
    [
        (
            "secret",
            ["delete", "secret", "gateway-inputs"],
            lambda c, ns: get_json(c, "secret", "gateway-inputs", "-n", ns) is not None,
        ),
        (
            "quota",
            ["patch", "resourcequota", "gateway-quota", "--type=merge", "-p", '{"spec":{"hard":{"pods":"50"}}}'],
            lambda c, ns: get_json(c, "resourcequota", "gateway-quota", "-n", ns)["spec"]["hard"]["pods"] == "1",
        ),
        (
            "deployment",
            ["scale", "deployment", "gateway", "--replicas=0"],
            lambda c, ns: get_json(c, "deployment", "gateway", "-n", ns)["spec"]["replicas"] == 1,
        ),
        (
            "networkpolicy",
            ["delete", "networkpolicy", "gateway-egress"],
            lambda c, ns: get_json(c, "networkpolicy", "gateway-egress", "-n", ns) is not None,
        ),
        (
            "serviceaccount",
            ["delete", "serviceaccount", "gateway"],
            lambda c, ns: get_json(c, "serviceaccount", "gateway", "-n", ns) is not None,
        ),
    ],
)
def test_drift_is_repaired_within_ten_seconds(
    operator: OperatorProcess, customers: CustomerFactory, what: str, damage: list[str], repaired: Any
) -> None:
    name = customers.create()
    customers.wait_ready(name)
    ns = namespace_for(name)
    token = gateway_secret(customers, name)["proxy-token"]
    customers.cluster.kubectl(*damage, "-n", ns)
    eventually(lambda: repaired(customers.cluster, ns), timeout=10, interval=0.1, what=f"{what} put back")
    assert gateway_secret(customers, name)["proxy-token"] == token, "repair keeps the issued token"


def test_namespace_label_drift_is_repaired(operator: OperatorProcess, customers: CustomerFactory) -> None:
    name = customers.create()
    customers.wait_ready(name)
    ns = namespace_for(name)
    customers.cluster.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=privileged", "--overwrite")
    eventually(
        lambda: (
            get_json(customers.cluster, "namespace", ns)["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
            == "restricted"
        ),
        timeout=10,
        interval=0.1,
        what="the restricted label put back",
    )


def test_missing_bot_token_stalls_with_a_clear_reason(operator: OperatorProcess, customers: CustomerFactory) -> None:
    name = customers.create()
    customers.wait_ready(name)
    customers.cluster.kubectl("delete", "secret", f"{name}-bot", "-n", "clawhost-secrets")
    customers.wait_for(name, lambda c: c["status"]["phase"] == "Failed", "Failed")
    stalled = customers.condition(name, "Stalled")
    assert stalled is not None
    assert stalled["status"] == "True"
    assert stalled["reason"] == "BotTokenMissing"
    assert f"{name}-bot" in stalled["message"]
    customers.bot_secret(f"{name}-bot", "999:AAnew")
    customers.wait_ready(name)
    assert gateway_secret(customers, name)["telegram-bot-token"] == "999:AAnew"


def test_proxy_token_rotation(operator: OperatorProcess, customers: CustomerFactory) -> None:
    name = customers.create()
    first = customers.wait_ready(name)["status"]["proxyToken"]["hash"]
    old_token = gateway_secret(customers, name)["proxy-token"]
    customers.cluster.kubectl("annotate", "customer", name, "clawhost.dev/rotate-proxy-token=1")
    customer = customers.wait_for(
        name, lambda c: c["status"]["proxyToken"]["hash"] not in (None, first), "a new token hash"
    )
    new_token = gateway_secret(customers, name)["proxy-token"]
    assert new_token != old_token
    assert customer["status"]["proxyToken"]["hash"] == hash_proxy_token(new_token)


def test_steady_state_makes_no_writes(operator: OperatorProcess, customers: CustomerFactory) -> None:
    name = customers.create()
    customers.wait_ready(name)
    ns = namespace_for(name)
    kinds = [
        ("namespace", ns, None),
        ("secret", "gateway-inputs", ns),
        ("resourcequota", "gateway-quota", ns),
        ("networkpolicy", "gateway-egress", ns),
        ("serviceaccount", "gateway", ns),
        ("deployment", "gateway", ns),
    ]

    def versions() -> list[str]:
        found = []
        for kind, obj, where in kinds:
            args = [kind, obj] + (["-n", where] if where else [])
            found.append(get_json(customers.cluster, *args)["metadata"]["resourceVersion"])
        return found

    before = versions()
    status_before = customers.get(name)["status"]
    reconciles = operator.metrics()["clawhost_operator_reconciles_total"]
    customers.cluster.kubectl("annotate", "customer", name, "example.com/poke=1")
    eventually(
        lambda: operator.metrics()["clawhost_operator_reconciles_total"] > reconciles,
        timeout=20,
        what="a reconcile after the poke",
    )
    assert versions() == before, "no child was written"
    assert customers.get(name)["status"] == status_before, "no status churn"


def test_transitions_are_recorded_as_events(operator: OperatorProcess, customers: CustomerFactory) -> None:
    name = customers.create()
    customers.wait_ready(name)
    # Posted by the reconcile workers themselves: None -> Running when the pod was Ready within the
    # first-status grace, None -> Provisioning -> Running when it was slower.
    eventually(lambda: "Running" in _event_reasons(customers, name), timeout=30, what="the transition Event")


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def test_a_new_customer_reads_in_progress_until_its_first_status_and_a_slow_pod_shows_provisioning(
    operator: OperatorProcess, customers: CustomerFactory
) -> None:
    # What a Customer reads before the operator has written anything: the CRD's default, which kstatus (Flux)
    # reads as in progress (observedGeneration behind generation) and the Argo CD check as Progressing.
    fresh = customers.as_created()
    assert fresh["status"] == {"observedGeneration": 0}
    assert fresh["metadata"]["generation"] == 1

    # A pod that never starts: after the grace (2 s from the operator's first look) the first status is
    # Provisioning, written by the grace's own timer (reconcile trigger first-status), with its Event.
    before = operator.reconciles("first-status")
    name = customers.new_name()
    customers.block_pods(name)
    customers.create(name=name)
    slow = customers.wait_for(name, lambda c: (c.get("status") or {}).get("phase") == "Provisioning", "Provisioning")
    reconciling = next(c for c in slow["status"]["conditions"] if c["type"] == "Reconciling")
    assert reconciling["status"] == "True"
    waited = _epoch(reconciling["lastTransitionTime"]) - _epoch(slow["metadata"]["creationTimestamp"])
    assert waited >= 2, f"the first status came {waited:.0f} s after the create, within the grace"
    assert slow["status"]["proxyToken"]["hash"], "Provisioning publishes the token's hash for the proxy"
    assert operator.reconciles("first-status") > before, "the grace's timer queued a reconcile"
    eventually(
        lambda: "Provisioning" in _event_reasons(customers, name), timeout=30, what="the Provisioning transition Event"
    )


def _event_reasons(customers: CustomerFactory, name: str) -> set[str]:
    return {event["reason"] for event in customers.events(name)}


def test_kubectl_shows_customers_by_short_name_category_and_columns(
    operator: OperatorProcess, customers: CustomerFactory
) -> None:
    name = customers.create(tier="pro")
    customers.wait_ready(name)
    cluster = customers.cluster
    for resource in ("cust", "clawhost"):  # the short name, and the category (`kubectl get clawhost`)
        table = cluster.kubectl("get", resource, name, "-o", "wide").stdout.splitlines()
        header, row = table[0].split(), dict(zip(table[0].split(), table[1].split(), strict=False))
        assert header == ["NAME", "TIER", "READY", "REASON", "NAMESPACE", "BILLING", "AGE"], resource
        assert (row["NAME"], row["TIER"], row["READY"], row["REASON"]) == (name, "pro", "True", "Running")
        assert row["NAMESPACE"] == namespace_for(name)
    # Billing is a wide-only column (no Stripe state for billing mode none: the row shows <none> there).
    assert "BILLING" not in cluster.kubectl("get", "cust", name).stdout.splitlines()[0]

    explained = cluster.kubectl("explain", "customer.spec.tier").stdout
    assert "Plan: starter, pro, team." in explained
    conditions = cluster.kubectl("explain", "customer.status.conditions").stdout
    assert "Ready, Reconciling and Stalled (kstatus conventions)." in conditions
    assert "One CamelCase word saying why." in conditions, "explain lists each sub-field with its description"


def _report_gateway_exit(customers: CustomerFactory, name: str, reason: str, restarts: int, waiting: str) -> None:
    """Write on the gateway pod what the kubelet writes when its container ended and is starting again (kwok's
    pods never run: the real-node tests kill and starve real gateways)."""
    pods = get_json(customers.cluster, "pods", "-n", namespace_for(name))
    [pod] = [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]
    container = {
        "name": "gateway",
        "image": pod["spec"]["containers"][0]["image"],
        "imageID": "",
        "ready": False,
        "started": False,
        "restartCount": restarts,
        "state": {"waiting": {"reason": waiting}},
        "lastState": {
            "terminated": {
                "reason": reason,
                "exitCode": 137,
                "startedAt": "2026-12-01T10:00:00Z",
                "finishedAt": "2026-12-01T10:05:00Z",
            }
        },
    }
    conditions = [{"type": "Ready", "status": "False"}, {"type": "ContainersReady", "status": "False"}]
    patch = {"status": {"containerStatuses": [container], "conditions": conditions}}
    customers.cluster.kubectl(
        "patch",
        "pod",
        pod["metadata"]["name"],
        "-n",
        namespace_for(name),
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(patch),
    )


def test_a_gateway_out_of_memory_or_restarting_is_explained_on_the_customer(
    operator: OperatorProcess, customers: CustomerFactory
) -> None:
    name = customers.create()
    customers.wait_ready(name)
    assert customers.condition(name)["message"] == "the gateway pod is Ready"  # type: ignore[index]
    _report_gateway_exit(customers, name, "OOMKilled", 2, "CrashLoopBackOff")
    customers.wait_for(
        name, lambda c: _ready_reason(c) == "GatewayOutOfMemory", "the Ready condition to say GatewayOutOfMemory"
    )
    message = customers.condition(name)["message"]  # type: ignore[index]
    assert "ran out of memory (its limit is 2Gi)" in message
    assert "restarted 2 times" in message
    assert "OOMKilled, exit code 137 at 2026-12-01T10:05:00Z" in message
    warned = eventually(
        lambda: [e for e in customers.events(name) if e["reason"] == "GatewayRestarted"], what="a Warning Event"
    )
    assert warned[0]["type"] == "Warning"
    assert "ran out of memory" in warned[0]["message"]
    _report_gateway_exit(customers, name, "Error", 3, "CrashLoopBackOff")
    customers.wait_for(name, lambda c: _ready_reason(c) == "GatewayCrashLooping", "GatewayCrashLooping")


def _ready_reason(customer: dict[str, Any]) -> str | None:
    for condition in (customer.get("status") or {}).get("conditions") or []:
        if condition["type"] == "Ready":
            return str(condition["reason"])
    return None
