"""The operator's confinement policy matches every kind its ClusterRole lets it write (and, for speed, no more).

The policy lists those kinds instead of every resource, so a write the ClusterRole gains later must be added to the
policy too: this test is what notices when it is not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "*"}


def _documents(path: Path) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def _written_by_cluster_role() -> set[tuple[str, str]]:
    role = next(
        document
        for document in _documents(REPO / "operator" / "deploy" / "20-rbac.yaml")
        if document["kind"] == "ClusterRole"
    )
    written: set[tuple[str, str]] = set()
    for rule in role["rules"]:
        if WRITE_VERBS & set(rule.get("verbs", [])):
            written |= {(group, resource) for group in rule["apiGroups"] for resource in rule["resources"]}
    return written


def _matched_by_policy() -> set[tuple[str, str]]:
    policy = next(
        document
        for document in _documents(REPO / "operator" / "deploy" / "22-operator-confinement-policy.yaml")
        if document["kind"] == "ValidatingAdmissionPolicy" and document["metadata"]["name"].endswith("confinement")
    )
    matched: set[tuple[str, str]] = set()
    for rule in policy["spec"]["matchConstraints"]["resourceRules"]:
        assert {"CREATE", "UPDATE", "DELETE"} <= set(rule["operations"]), rule
        matched |= {(group, resource) for group in rule["apiGroups"] for resource in rule["resources"]}
    return matched


def test_the_confinement_policy_covers_every_namespaced_kind_the_operator_may_write() -> None:
    cluster_scoped = {("clawhost.dev", "customers"), ("clawhost.dev", "customers/status")}  # allowed by the policy
    missing = _written_by_cluster_role() - cluster_scoped - _matched_by_policy()
    assert not missing, f"the operator may write these, but its confinement policy does not look: {sorted(missing)}"


def test_the_confinement_policy_leaves_the_clusters_busiest_writes_alone() -> None:
    matched = _matched_by_policy()
    for busy in [("", "pods"), ("", "pods/status"), ("apps", "replicasets"), ("coordination.k8s.io", "leases")]:
        assert busy not in matched
    assert not any("*" in group or resource in ("*", "*/*") for group, resource in matched)
