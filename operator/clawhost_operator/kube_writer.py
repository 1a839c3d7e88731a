"""Every write the operator makes to the API server: server-side apply of children, status, finalizers, deletes."""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime
from typing import Any

import orjson

from clawhost_api.customer import API_VERSION, GROUP, KIND, PLURAL, VERSION
from clawhost_api.kube import KubeError, KubeHttp
from clawhost_operator.children import MANAGER
from clawhost_operator.metrics import API_WRITES

Obj = dict[str, Any]

# A cluster-scoped object's Events live in "default" (the API server accepts no other namespace for them).
EVENT_NAMESPACE = "default"
EVENT_MESSAGE_LIMIT = 1024
_INSTANCE = socket.gethostname()  # the pod's name in a cluster

_PATHS = {
    "Namespace": "/api/v1/namespaces/{name}",
    "Secret": "/api/v1/namespaces/{namespace}/secrets/{name}",
    "ResourceQuota": "/api/v1/namespaces/{namespace}/resourcequotas/{name}",
    "ServiceAccount": "/api/v1/namespaces/{namespace}/serviceaccounts/{name}",
    "NetworkPolicy": "/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/{name}",
    "Deployment": "/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
}


def object_path(obj: Obj) -> str:
    meta = obj["metadata"]
    return _PATHS[obj["kind"]].format(name=meta["name"], namespace=meta.get("namespace", ""))


class OwnVersions:
    """The resourceVersions our own writes produced, so the watch events that merely echo them back cost no reconcile.

    A resourceVersion is unique cluster-wide (etcd's revision), so the version alone identifies the write. An
    echo says nothing the reconcile that wrote it did not already know: whatever anyone else changed in
    between has a version (and an event) of its own. Bounded: the oldest are forgotten first.
    """

    def __init__(self, limit: int = 20_000) -> None:
        self._versions: dict[str, None] = {}
        self._limit = limit
        self._lock = threading.Lock()

    def add(self, version: str | None) -> None:
        if not version:
            return
        with self._lock:
            self._versions[version] = None
            if len(self._versions) > self._limit:
                del self._versions[next(iter(self._versions))]

    def echo(self, version: str | None) -> bool:
        """True, once, for a version one of our writes produced."""
        if not version:
            return False
        with self._lock:
            return self._versions.pop(version, 0) is None


class KubeWriter:
    """The operator's writes over its lean HTTP client; counts every write in metrics, remembers its versions."""

    def __init__(self, http: KubeHttp) -> None:
        self._http = http
        self.own_versions = OwnVersions()

    def _call(
        self, method: str, path: str, body: object | None, content_type: str, query: list[tuple[str, str]] | None = None
    ) -> bytes:
        # An apply patch (YAML) goes as JSON, which is valid YAML.
        return self._http.call(method, path, body, content_type, query)

    def _write(self, path: str, body: Obj, content_type: str, query: list[tuple[str, str]]) -> str | None:
        """A PATCH whose result is remembered as our own write; returns the resourceVersion it produced."""
        data = self._call("PATCH", path, body, content_type, query)
        version: str | None = orjson.loads(data).get("metadata", {}).get("resourceVersion")
        self.own_versions.add(version)
        return version

    def _customer_write(self, path: str, patch: Obj) -> str | None:
        """A merge patch of the Customer (or its status)."""
        return self._write(path, patch, "application/merge-patch+json", [("fieldManager", MANAGER)])

    def apply(self, obj: Obj) -> None:
        """Server-side apply with our field manager: creates when missing, reverts drift in fields we own."""
        query = [("fieldManager", MANAGER), ("force", "true")]
        self._write(object_path(obj), obj, "application/apply-patch+yaml", query)
        API_WRITES.labels(obj["kind"], "apply").inc()

    def delete_namespace(self, name: str) -> None:
        try:
            self._call("DELETE", f"/api/v1/namespaces/{name}", {"propagationPolicy": "Background"}, "application/json")
        except KubeError as error:
            if error.status != 404:
                raise
        API_WRITES.labels("Namespace", "delete").inc()

    def patch_customer_status(self, name: str, status: Obj) -> str | None:
        version = self._customer_write(f"/apis/{GROUP}/{VERSION}/{PLURAL}/{name}/status", {"status": status})
        API_WRITES.labels("CustomerStatus", "patch").inc()
        return version

    def set_customer_finalizers(self, name: str, finalizers: list[str], resource_version: str) -> str | None:
        """Returns the resourceVersion the write produced, or None when nothing was written."""
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": resource_version}}
        try:
            version = self._customer_write(f"/apis/{GROUP}/{VERSION}/{PLURAL}/{name}", patch)
        except KubeError as error:
            if error.status not in (404, 409):  # gone, or our view was stale: the next event retries
                raise
            return None
        API_WRITES.labels("Customer", "patch").inc()
        return version

    def post_event(self, customer: Obj, kind: str, reason: str, message: str) -> None:
        """A core/v1 Event about a Customer, on the calling thread's connection (no poster threads, no extra
        connections). Events are notes for people: a refused one is logged by the caller, never retried."""
        meta = customer["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": EVENT_NAMESPACE},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": meta["name"],
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": kind,
            "reason": reason,
            "message": message[:EVENT_MESSAGE_LIMIT],
            "source": {"component": MANAGER},
            "reportingComponent": MANAGER,
            "reportingInstance": _INSTANCE,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self._call("POST", f"/api/v1/namespaces/{EVENT_NAMESPACE}/events", event, "application/json")
        API_WRITES.labels("Event", "create").inc()
