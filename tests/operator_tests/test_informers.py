"""The operator's child caches against the real API server: what marks a customer dirty, and what does not."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest

from clawhost_api.customer import LABEL_CUSTOMER, LABEL_MANAGED_BY, namespace_for
from clawhost_api.kube import KubeHttp, load_config
from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.waiting import eventually
from clawhost_operator.children import MANAGER, QUOTA_NAME
from clawhost_operator.informers import CHILD_KINDS, ChildCache

pytestmark = pytest.mark.cluster

QUOTA_KIND = next(kind for kind in CHILD_KINDS if kind.kind == "quota")


class Recorder:
    def __init__(self) -> None:
        self.changes: Counter[str] = Counter()
        self.ignored = 0
        self.lock = threading.Lock()

    def changed(self, customer: str, kind: str, version: str | None) -> None:
        with self.lock:
            self.changes[customer] += 1

    def skipped(self, kind: str) -> None:
        with self.lock:
            self.ignored += 1


def _labels(customer: str) -> dict[str, str]:
    return {LABEL_MANAGED_BY: MANAGER, LABEL_CUSTOMER: customer}


def _quota(customer: str, name: str = QUOTA_NAME, pods: str = "2") -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": name, "namespace": namespace_for(customer), "labels": _labels(customer)},
            "spec": {"hard": {"pods": pods}},
        }
    )


@pytest.fixture
def customer(cluster: Cluster) -> Iterator[str]:
    name = f"inf-{uuid.uuid4().hex[:8]}"
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace_for(name)}}
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(namespace))
    yield name
    cluster.kubectl("delete", "namespace", namespace_for(name), "--wait=false")


@pytest.fixture
def api(cluster: Cluster) -> Iterator[KubeHttp]:
    client = KubeHttp(load_config(cluster.kubeconfig))
    yield client
    client.close()


def test_changes_mark_dirty_status_only_updates_do_not(cluster: Cluster, customer: str, api: KubeHttp) -> None:
    recorder = Recorder()
    cache = ChildCache(QUOTA_KIND, api, recorder.changed, recorder.skipped)
    stop = threading.Event()
    cache.start(stop)
    try:
        assert cache.synced.wait(30)
        cluster.kubectl("apply", "-f", "-", stdin=_quota(customer))
        eventually(lambda: recorder.changes[customer] >= 1, what="the new quota to mark its customer")
        # The quota controller fills in status.hard / status.used: status only, nothing a reconcile reads.
        eventually(lambda: (cache.get(customer) or {}) and recorder.ignored >= 1, what="a status-only update")
        assert recorder.changes[customer] == 1
        live = cache.get(customer)
        assert live is not None
        assert (live["kind"], live["apiVersion"]) == ("ResourceQuota", "v1")
        assert live["metadata"]["resourceVersion"]
        assert "status" not in live

        # Another labelled object of the kind, not the one the operator names: not the customer's child.
        cluster.kubectl("apply", "-f", "-", stdin=_quota(customer, name="not-ours"))
        cluster.kubectl("apply", "-f", "-", stdin=_quota(customer, pods="3"))  # drift of the real one
        eventually(lambda: recorder.changes[customer] >= 2, what="an edited spec to mark its customer")
        assert eventually(lambda: (cache.get(customer) or {}).get("spec", {}).get("hard")) == {"pods": "3"}
        assert recorder.changes[customer] == 2

        cluster.kubectl("delete", "resourcequota", QUOTA_NAME, "-n", namespace_for(customer))
        eventually(lambda: cache.get(customer) is None, what="the deleted quota to leave the cache")
        assert recorder.changes[customer] == 3
    finally:
        stop.set()
        cluster.kubectl("delete", "resourcequota", "--all", "-n", namespace_for(customer), "--wait=false")


def test_a_fresh_listing_reports_what_changed_since_the_last(cluster: Cluster, customer: str, api: KubeHttp) -> None:
    """What a relist (after the watch's history expired, or a failed watch) tells the queue about."""
    recorder = Recorder()
    cache = ChildCache(QUOTA_KIND, api, recorder.changed, recorder.skipped)
    cluster.kubectl("apply", "-f", "-", stdin=_quota(customer))
    cache.informer.list_once()
    assert recorder.changes[customer] == 1
    cache.informer.list_once()  # nothing happened in between
    assert recorder.changes[customer] == 1
    cluster.kubectl("apply", "-f", "-", stdin=_quota(customer, pods="5"))
    cache.informer.list_once()
    assert recorder.changes[customer] == 2
    cluster.kubectl("delete", "resourcequota", QUOTA_NAME, "-n", namespace_for(customer))
    cache.informer.list_once()
    assert recorder.changes[customer] == 3
    assert cache.get(customer) is None
