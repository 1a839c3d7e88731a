"""Caches of the Customers and the children the operator owns, one shared LIST + WATCH informer (`clawhost_api.kube`)
per kind.

Why not kopf's watches: kopf runs every event of every watched object through its handler machinery
(cause detection, a deep copy of the body for its diff base, one handler invocation per index and per
event handler). Children are ~80% of the operator's events (a Deployment alone changes status 4-5 times
on its way to Ready, a quota's usage on every pod), and at 1,000 customers created at once that machinery
was most of the operator's CPU on a machine it shares with the API server. Here an event costs one JSON
parse, one compact re-serialisation of the fields reconciles read, and a byte comparison with the last one
seen; only a change that a reconcile can react to marks the customer dirty.

Each cache holds, per customer (the `clawhost.dev/customer` label), the one object of its kind with the
name the operator gives it: its resourceVersion, its essence (compact JSON bytes of what reconciles read) and
the significance a change must alter to queue a reconcile (see `essential`). The bot-token Secrets' cache is
keyed by Secret name instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from clawhost_api.customer import GROUP, LABEL_CUSTOMER, LABEL_MANAGED_BY, PLURAL, VERSION, namespace_for
from clawhost_api.kube import Informer, KubeHttp
from clawhost_operator.children import (
    GATEWAY_NAME,
    MANAGER,
    POLICY_NAME,
    QUOTA_NAME,
    SECRET_NAME,
    SERVICE_ACCOUNT_NAME,
)
from clawhost_operator.gateway_pod import summarize_pod, tells_nothing

logger = logging.getLogger("clawhost.operator.informers")

Obj = dict[str, Any]
OnChange = Callable[[str, str, str | None], None]  # (customer, kind, the resourceVersion that changed it)
SELECTOR = f"{LABEL_MANAGED_BY}={MANAGER},{LABEL_CUSTOMER}"
KEPT_METADATA = (
    "name",
    "namespace",
    "uid",
    "generation",
    "deletionTimestamp",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
)
OWN_ANNOTATION_PREFIX = "clawhost.dev/"
READINESS_FIELDS = ("observedGeneration", "readyReplicas", "updatedReplicas", "replicas")
ABSENT = b""  # the significance of no object; also that of a pod with nothing to tell (`gateway_pod.tells_nothing`)


def essential(obj: Obj, status: str) -> tuple[bytes, bytes]:
    """What reconciles read of a child, as compact JSON bytes without the resourceVersion, and its significance.

    `status`: "none" drops it (namespace phase, quota usage: no reconcile reads them), "all" keeps it whole (a
    Customer's: reconciles read its billing and previous status), "readiness" keeps the Deployment fields
    readiness is judged by. Two versions that differ only in what is dropped are equal.
    The significance is what a change must alter to be worth a reconcile: the essence itself, except that of
    a Deployment's status only the verdict counts (Ready or not when it should run, pods or none when it
    should not). On its way to Ready a new Deployment's status changes 3-4 times; only the last of them
    changes the verdict. Of metadata annotations only the operator's own (clawhost.dev/...) are kept. A pod that
    tells nothing (never restarted, waiting for nothing unusual) has the significance of no pod (`ABSENT`): a new
    customer's pod appearing and starting marks nobody dirty.
    """
    kept = {key: value for key, value in obj.items() if key not in ("metadata", "status")}
    meta = obj.get("metadata") or {}
    kept["metadata"] = {key: meta[key] for key in KEPT_METADATA if key in meta}
    if "annotations" in kept["metadata"]:  # only ours: others' (a Deployment's revision, say) change nothing here
        ours = {k: v for k, v in kept["metadata"]["annotations"].items() if k.startswith(OWN_ANNOTATION_PREFIX)}
        if ours:
            kept["metadata"]["annotations"] = ours
        else:
            del kept["metadata"]["annotations"]
    if status == "pod":  # only the gateway container's restarts and last exit, never the spec (its env names)
        pod = {"metadata": {key: meta[key] for key in ("name", "namespace", "uid") if key in meta}}
        pod["status"] = summary = summarize_pod(obj)
        essence = orjson.dumps(pod)
        return essence, ABSENT if tells_nothing(summary) else essence
    if status == "all" and obj.get("status"):
        kept["status"] = obj["status"]
    if status != "readiness":
        essence = orjson.dumps(kept)
        return essence, essence
    live = obj.get("status") or {}
    ready, has_pods = readiness_verdict(meta, live)
    # A running gateway's status shows whether its pod is Ready; a suspended one's whether pods are left.
    running = ((obj.get("spec") or {}).get("replicas") or 0) > 0
    significance = orjson.dumps([kept, ready if running else has_pods])
    kept["status"] = {key: live[key] for key in READINESS_FIELDS if key in live}
    return orjson.dumps(kept), significance


def readiness_verdict(meta: Obj, status: Obj) -> tuple[bool, bool]:
    """(its one pod is Ready at the current generation, it has pods at all): what a Customer's status reflects."""
    ready = (
        status.get("observedGeneration", 0) >= meta.get("generation", 0)
        and status.get("readyReplicas", 0) >= 1
        and status.get("updatedReplicas", 0) >= 1
        and status.get("replicas", 0) == 1
    )
    return ready, status.get("replicas", 0) > 0


@dataclass(frozen=True)
class ChildKind:
    kind: str  # as in metrics and triggers: namespace, secret, quota, policy, deployment, pod
    path: str  # the cluster-wide collection
    status: str  # see `essential`
    # The name the operator gives it (the namespace's is the customer's namespace): others are ignored. "" for a
    # namespaced kind: any name in the customer's namespace (its gateway pod, named by its ReplicaSet).
    name: str
    namespaced: bool = True
    selector: str = SELECTOR
    by_name: bool = False  # keyed by the object's own name, not its customer label (bot-token Secrets)

    @property
    def field_selector(self) -> str:
        """A namespaced child is also selected by its fixed name: the operator's RBAC grants its kinds only under
        those names (a ClusterRole cannot grant by label), and the API server authorises a cluster-wide list or
        watch against such a grant only when it names the object by this field selector."""
        return f"metadata.name={self.name}" if self.namespaced and self.name else ""


class ChildCache:
    """The cache of one kind, kept current by the shared informer; `on_change` hears of every change reconciles
    care about."""

    def __init__(
        self,
        child: ChildKind,
        http: KubeHttp,
        on_change: OnChange,
        on_ignored: Callable[[str], None] = lambda kind: None,
    ) -> None:
        self.child = child
        self.on_change = on_change
        self.on_ignored = on_ignored
        self._items: dict[str, tuple[str, bytes, bytes]] = {}  # rv, essence, significance
        self.informer = Informer(
            http, child.path, self, name=child.kind, label_selector=child.selector, field_selector=child.field_selector
        )

    @property
    def synced(self) -> threading.Event:
        return self.informer.synced

    def start(self, stop: threading.Event) -> threading.Thread:
        return self.informer.start(stop)

    def get(self, customer: str) -> Obj | None:
        """The object as reconciles see it (its resourceVersion included), or None."""
        item = self._items.get(customer)
        if item is None:
            return None
        obj: Obj = orjson.loads(item[1])
        obj["metadata"]["resourceVersion"] = item[0]
        return obj

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> list[str]:
        return list(self._items)

    def _key(self, obj: Obj) -> str | None:
        meta = obj.get("metadata") or {}
        if self.child.by_name:
            return str(meta.get("name") or "") or None
        customer = (meta.get("labels") or {}).get(LABEL_CUSTOMER)
        if not customer:
            return None
        namespace = namespace_for(customer)
        if self.child.namespaced:
            if (self.child.name and meta.get("name") != self.child.name) or meta.get("namespace") != namespace:
                return None
        elif meta.get("name") != namespace:
            return None
        return str(customer)

    def listed(self, items: list[Obj], resource_version: str) -> None:
        """A fresh listing; customers whose object appeared, changed or vanished since the last one are told."""
        fresh: dict[str, tuple[str, bytes, bytes]] = {}
        for obj in items:
            key = self._key(obj)
            if key is not None:
                fresh[key] = (obj["metadata"]["resourceVersion"], *essential(obj, self.child.status))
        previous, self._items = self._items, fresh
        for key in fresh.keys() | previous.keys():
            if (fresh.get(key) or ("", b"", b""))[1] != (previous.get(key) or ("", b"", b""))[1]:
                self.on_change(key, self.child.kind, None)

    def changed(self, event: str, obj: Obj) -> None:
        key = self._key(obj)
        if key is None:
            return
        meta = obj["metadata"]
        unnamed = (
            self.child.namespaced and not self.child.name and not self.child.by_name
        )  # pods: their ReplicaSet names them
        if event == "DELETED" or (unnamed and meta.get("deletionTimestamp")):
            # Without a fixed name (pods) a customer's old pod may still be going while its new one runs: only the
            # pod the cache holds leaves it.
            held = self._items.get(key)
            if held is not None and (not unnamed or orjson.loads(held[1])["metadata"].get("uid") == meta.get("uid")):
                del self._items[key]
                if held[2] == ABSENT:
                    self.on_ignored(self.child.kind)
                else:
                    self.on_change(key, self.child.kind, None)
            return
        version = obj["metadata"]["resourceVersion"]
        essence, significance = essential(obj, self.child.status)
        previous = self._items.get(key)
        self._items[key] = (version, essence, significance)
        if (ABSENT if previous is None else previous[2]) == significance:
            self.on_ignored(self.child.kind)
        else:
            self.on_change(key, self.child.kind, version)


CHILD_KINDS = (
    ChildKind("namespace", "/api/v1/namespaces", "none", "", namespaced=False),
    ChildKind("secret", "/api/v1/secrets", "none", SECRET_NAME),
    ChildKind("quota", "/api/v1/resourcequotas", "none", QUOTA_NAME),
    ChildKind("policy", "/apis/networking.k8s.io/v1/networkpolicies", "none", POLICY_NAME),
    ChildKind("serviceaccount", "/api/v1/serviceaccounts", "none", SERVICE_ACCOUNT_NAME),
    ChildKind("deployment", "/apis/apps/v1/deployments", "readiness", GATEWAY_NAME),
    ChildKind("pod", "/api/v1/pods", "pod", ""),
)


CUSTOMERS = ChildKind(
    "customer", f"/apis/{GROUP}/{VERSION}/{PLURAL}", "all", "", namespaced=False, selector="", by_name=True
)


def bot_secrets(namespace: str) -> ChildKind:
    """The Secrets holding customers' bot tokens (written by the control API or by hand; no label of ours)."""
    return ChildKind("bot-secret", f"/api/v1/namespaces/{namespace}/secrets", "none", "", selector="", by_name=True)
