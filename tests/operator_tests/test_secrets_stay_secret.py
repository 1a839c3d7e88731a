"""No token the operator handles ever shows up in its logs, Events, metrics, the Customer or the non-Secret children.

The tokens: the Telegram bot token (read from the referenced Secret, before and after it changes), the proxy token
(before and after a rotation) and the gateway token. The run also takes the operator through a failed reconcile
(an admission policy refuses its write of the gateway Secret), the path where an error's details could leak.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest

from clawhost_api.customer import namespace_for
from clawhost_localcluster.platform import CustomerFactory, OperatorProcess, gateway_secret, get_json
from clawhost_localcluster.waiting import eventually

pytestmark = pytest.mark.cluster


def _freeze_policy(policy: str, namespace: str) -> str:
    """A ValidatingAdmissionPolicy (and binding) refusing every update of that namespace's gateway Secret."""
    match = f"object.metadata.namespace == '{namespace}' && object.metadata.name == 'gateway-inputs'"
    documents: list[dict[str, Any]] = [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": policy},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["secrets"]}
                    ]
                },
                "matchConditions": [{"name": "this-customers-gateway-secret", "expression": match}],
                "validations": [{"expression": "false", "message": "the gateway inputs are frozen by a test"}],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": policy},
            "spec": {"policyName": policy, "validationActions": ["Deny"]},
        },
    ]
    return "\n---\n".join(json.dumps(document) for document in documents)


def test_tokens_never_reach_logs_events_metrics_or_status(
    operator: OperatorProcess, customers: CustomerFactory
) -> None:
    name = customers.create()
    ns = namespace_for(name)
    customers.wait_ready(name)
    tokens = dict(gateway_secret(customers, name))
    first_hash = customers.get(name)["status"]["proxyToken"]["hash"]

    # A rotation: a second proxy token.
    customers.cluster.kubectl("annotate", "customer", name, "clawhost.dev/rotate-proxy-token=1")
    customers.wait_for(name, lambda c: c["status"]["proxyToken"]["hash"] not in (None, first_hash), "a new hash")

    def rotated_secret() -> dict[str, str] | None:
        secret = gateway_secret(customers, name)
        return secret if secret["proxy-token"] != tokens["proxy-token"] else None

    rotated = eventually(
        rotated_secret,
        timeout=30,
        what="the rotated proxy token in the gateway Secret",
    )

    # A failed reconcile: the bot token changes while an admission policy refuses the operator's Secret update.
    policy = f"freeze-{uuid.uuid4().hex[:8]}"
    customers.cluster.kubectl("apply", "-f", "-", stdin=_freeze_policy(policy, ns))
    try:

        def frozen() -> bool:
            attempt = customers.cluster.kubectl(
                "label", "secret", "gateway-inputs", "-n", ns, "probe=1", "--dry-run=server", check=False
            )
            return attempt.returncode != 0 and "frozen by a test" in attempt.stderr

        eventually(frozen, timeout=30, what="the admission policy to take effect")
        failures_before = operator.metrics().get("clawhost_operator_errors_total", 0.0)
        new_bot_token = f"{uuid.uuid4().int % 10**9}:AA{uuid.uuid4().hex}"
        customers.bot_secret(f"{name}-bot", new_bot_token)
        eventually(
            lambda: operator.metrics().get("clawhost_operator_errors_total", 0.0) > failures_before,
            timeout=30,
            what="the operator's refused write to count as a failed reconcile",
        )
    finally:
        customers.cluster.kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", policy)
    eventually(
        lambda: gateway_secret(customers, name)["telegram-bot-token"] == new_bot_token,
        timeout=30,
        what="the new bot token in the gateway Secret once the policy is gone",
    )
    customers.wait_ready(name)

    secrets = {
        "old bot token": tokens["telegram-bot-token"],
        "new bot token": new_bot_token,
        "first proxy token": tokens["proxy-token"],
        "rotated proxy token": rotated["proxy-token"],
        "gateway token": rotated["gateway-token"],
    }
    for value in secrets.values():
        assert len(value) >= 20, "each token is long enough for a containment check to mean something"
    # The encoded forms as well: a body or a Secret echoed into a message would carry them base64-encoded.
    needles = {**secrets, **{f"{k} (base64)": base64.b64encode(v.encode()).decode() for k, v in secrets.items()}}

    assert operator.process is not None
    records = operator.process.json_log()
    refused = [r for r in records if r.get("message") == "reconcile failed" and r.get("customer") == name]
    assert refused, "the refused write was logged, as a structured record naming the customer"
    assert {r.get("status") for r in refused} <= {403, 422}
    events = customers.events(name)
    assert events, "the customer has Events to check"
    places = {
        "the operator's log": json.dumps(records),
        "the customer's Events": json.dumps(events),
        "the operator's metrics": json.dumps(operator.metrics()),
        "the Customer": json.dumps(customers.get(name)),
    }
    children = (("deployment", "gateway"), ("resourcequota", "gateway-quota"), ("networkpolicy", "gateway-egress"))
    for kind, child in children:
        places[f"the {kind}"] = json.dumps(get_json(customers.cluster, kind, child, "-n", ns))
    places["the namespace"] = json.dumps(get_json(customers.cluster, "namespace", ns))
    leaks = [f"{what} in {where}" for where, text in places.items() for what, found in needles.items() if found in text]
    assert not leaks, f"secrets leaked: {leaks}"
