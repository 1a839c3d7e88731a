"""The operator's child caches against the real API server: what marks a customer dirty, and what does not."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from clawhost_api.customer import LABEL_CUSTOMER, LABEL_MANAGED_BY, namespace_for
from clawhost_api.kube import KubeHttp, load_config
from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.waiting import eventually
from clawhost_operator.children import MANAGER, QUOTA_NAME
from clawhost_operator.informers import CHILD_KINDS, ChildCache

pytestmark = pytest.mark.cluster

QUOTA_KIND = next(kind for kind in CHILD_KINDS if kind.kind == "quota")
POD_KIND = next(kind for kind in CHILD_KINDS if kind.kind == "pod")


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


def _pod(customer: str, name: str) -> str:
    """A gateway pod held back from scheduling, so that no kwok node writes its status: the test writes what a
    kubelet would."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace_for(customer), "labels": _labels(customer)},
            "spec": {
                "schedulingGates": [{"name": "clawhost.dev/test-hold"}],
                "containers": [{"name": "gateway", "image": "clawhost/openclaw-gateway:test"}],
            },
        }
    )


def _gateway_status(cluster: Cluster, customer: str, pod: str, restarts: int, state: dict[str, Any]) -> str:
    """Write the gateway container's status as a kubelet would; the pod's new resourceVersion."""
    container: dict[str, Any] = {
        "name": "gateway",
        "image": "clawhost/openclaw-gateway:test",
        "imageID": "",
        "ready": "running" in state,
        "restartCount": restarts,
        "state": state,
    }
    if restarts:
        container["lastState"] = {
            "terminated": {"reason": "OOMKilled", "exitCode": 137, "finishedAt": "2026-12-01T10:05:00Z"}
        }
    patch = json.dumps({"status": {"containerStatuses": [container]}})
    args = ["patch", "pod", pod, "-n", namespace_for(customer), "--subresource=status", "--type=merge", "-p", patch]
    return str(json.loads(cluster.kubectl(*args, "-o", "json").stdout)["metadata"]["resourceVersion"])


class HandledPods(ChildCache):
    """The pod cache, counting the watch events it has finished handling per namespace: a test waits for the
    count, so a marking that is absent is absent, not still on its way."""

    def __init__(self, api: KubeHttp, recorder: Recorder) -> None:
        super().__init__(POD_KIND, api, recorder.changed, recorder.skipped)
        self.handled: Counter[str] = Counter()

    def changed(self, event: str, obj: dict[str, Any]) -> None:
        super().changed(event, obj)
        self.handled[obj["metadata"].get("namespace", "")] += 1


def test_a_gateway_pod_marks_its_customer_only_when_it_has_something_to_tell(
    cluster: Cluster, customer: str, api: KubeHttp
) -> None:
    """A new pod that starts normally reads like no pod at all (nothing for the Customer's Ready condition): its
    arrival, its ContainerCreating/PodInitializing wait, its start and its leaving queue no reconcile. A restart,
    an unusual wait, and the leaving of a pod that had told something do."""
    recorder = Recorder()
    cache = HandledPods(api, recorder)
    stop = threading.Event()
    cache.start(stop)
    namespace = namespace_for(customer)

    def then(write: Callable[[], object]) -> int:
        """Make one write to the customer's pod and wait until its watch event is handled; the markings so far."""
        before = cache.handled[namespace]
        write()
        eventually(lambda: cache.handled[namespace] > before, what="the pod cache to handle the write")
        return recorder.changes[customer]

    def create(pod: str) -> None:
        cluster.kubectl("create", "-f", "-", stdin=_pod(customer, pod))

    def delete(pod: str) -> None:
        cluster.kubectl("delete", "pod", pod, "-n", namespace)

    def gateway(pod: str, restarts: int, state: dict[str, Any]) -> Callable[[], str]:
        return lambda: _gateway_status(cluster, customer, pod, restarts, state)

    running = {"running": {"startedAt": "2026-12-01T10:00:00Z"}}
    try:
        assert cache.synced.wait(30)
        assert then(lambda: create("quiet")) == 0, "a new pod tells nothing"
        for reason in ("ContainerCreating", "PodInitializing"):
            assert then(gateway("quiet", 0, {"waiting": {"reason": reason}})) == 0, f"{reason}: the ordinary start"
        assert then(gateway("quiet", 0, running)) == 0, "a started gateway tells nothing"
        assert then(lambda: delete("quiet")) == 0, "a pod that told nothing leaves nothing to tell"
        assert cache.get(customer) is None

        assert then(lambda: create("oom")) == 0
        assert then(gateway("oom", 1, {"waiting": {"reason": "CrashLoopBackOff"}})) == 1, "a restart is told"
        assert then(gateway("oom", 1, running)) == 2, "running again: Ready says it restarted"
        assert then(lambda: delete("oom")) == 3, "the pod that told a restart leaving"
        assert cache.get(customer) is None
    finally:
        stop.set()
