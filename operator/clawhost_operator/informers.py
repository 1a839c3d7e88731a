"""Lean LIST + WATCH caches of the children the operator owns, one thread per kind.

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
from dataclasses import dataclass, field
from typing import Any

import kubernetes
import orjson

from clawhost_api.customer import LABEL_CUSTOMER, LABEL_MANAGED_BY, namespace_for
from clawhost_operator.children import (
    GATEWAY_NAME,
    MANAGER,
    POLICY_NAME,
    QUOTA_NAME,
    SECRET_NAME,
    SERVICE_ACCOUNT_NAME,
)
from clawhost_operator.kube_http import KubeHttp, api_error

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
WATCH_SECONDS = 300
RETRY_SECONDS = 1.0


class WatchExpiredError(Exception):
    """The API server no longer has the history our resourceVersion points into (410 Gone): list again."""


def essential(obj: Obj, status: str) -> tuple[bytes, bytes]:
    """What reconciles read of a child, as compact JSON bytes without the resourceVersion, and its significance.

    `status`: "none" drops it (namespace phase, quota usage: no reconcile reads them), "readiness" keeps the
    Deployment fields readiness is judged by. Two versions that differ only in what is dropped are equal.
    The significance is what a change must alter to be worth a reconcile: the essence itself, except that of
    a Deployment's status only the verdict counts (Ready or not when it should run, pods or none when it
    should not). On its way to Ready a new Deployment's status changes 3-4 times; only the last of them
    changes the verdict. Of metadata annotations only the operator's own (clawhost.dev/...) are kept.
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
    kind: str  # as in metrics and triggers: namespace, secret, quota, policy, deployment
    path: str  # the cluster-wide collection
    status: str  # see `essential`
    name: str  # the name the operator gives it (the namespace's is the customer's namespace): others are ignored
    namespaced: bool = True
    selector: str = SELECTOR
    by_name: bool = False  # keyed by the object's own name, not its customer label (bot-token Secrets)


@dataclass
class Informer:
    """The cache of one kind, kept current by a watch; `on_change` hears of every change reconciles care about."""

    child: ChildKind
    http: KubeHttp
    on_change: OnChange
    on_ignored: Callable[[str], None] = lambda kind: None
    synced: threading.Event = field(default_factory=threading.Event)
    _items: dict[str, tuple[str, bytes, bytes]] = field(default_factory=dict)  # rv, essence, significance
    _version: str = ""

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

    def _key(self, obj: Obj) -> str | None:
        meta = obj.get("metadata") or {}
        if self.child.by_name:
            return str(meta.get("name") or "") or None
        customer = (meta.get("labels") or {}).get(LABEL_CUSTOMER)
        if not customer:
            return None
        namespace = namespace_for(customer)
        if self.child.namespaced:
            if meta.get("name") != self.child.name or meta.get("namespace") != namespace:
                return None
        elif meta.get("name") != namespace:
            return None
        return str(customer)

    def _list(self) -> None:
        """A fresh listing; customers whose object appeared, changed or vanished since the last one are told."""
        response = self.http.request("GET", self.child.path, query=[("labelSelector", self.child.selector)])
        if response.status != 200:
            raise api_error(response)
        listing = orjson.loads(response.body)
        fresh: dict[str, tuple[str, bytes, bytes]] = {}
        # A list's items carry no kind or apiVersion (a watch's objects do): put them back, reconciles compare them.
        identity = {"kind": str(listing["kind"]).removesuffix("List"), "apiVersion": listing["apiVersion"]}
        for obj in listing.get("items") or []:
            obj.update(identity)
            key = self._key(obj)
            if key is not None:
                fresh[key] = (obj["metadata"]["resourceVersion"], *essential(obj, self.child.status))
        previous, self._items = self._items, fresh
        self._version = listing["metadata"]["resourceVersion"]
        for key in fresh.keys() | previous.keys():
            if (fresh.get(key) or ("", b"", b""))[1] != (previous.get(key) or ("", b"", b""))[1]:
                self.on_change(key, self.child.kind, None)

    def _apply(self, event: Obj) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise WatchExpiredError
            raise RuntimeError(f"watch error: {obj.get('reason')}: {obj.get('message')}")
        self._version = obj["metadata"]["resourceVersion"]
        if kind == "BOOKMARK":
            return
        key = self._key(obj)
        if key is None:
            return
        if kind == "DELETED":
            if self._items.pop(key, None) is not None:
                self.on_change(key, self.child.kind, None)
            return
        essence, significance = essential(obj, self.child.status)
        previous = self._items.get(key)
        self._items[key] = (self._version, essence, significance)
        if previous is not None and previous[2] == significance:
            self.on_ignored(self.child.kind)
        else:
            self.on_change(key, self.child.kind, self._version)

    def _watch(self, stop: threading.Event) -> None:
        query = [
            ("labelSelector", self.child.selector),
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", self._version),
            ("timeoutSeconds", str(WATCH_SECONDS)),
        ]
        lines = self.http.stream_lines(self.child.path, query, WATCH_SECONDS + 30)
        try:
            for line in lines:
                if stop.is_set():
                    return
                if line.strip():
                    self._apply(orjson.loads(line))
        except kubernetes.client.ApiException as error:
            if error.status == 410:
                raise WatchExpiredError from error
            raise
        finally:
            lines.close()

    def run(self, stop: threading.Event) -> None:
        """List, then watch from there for as long as `stop` is not set; list again after any failure."""
        listed = False
        while not stop.is_set():
            try:
                if not listed:
                    self._list()
                    listed = True
                    self.synced.set()
                self._watch(stop)
            except WatchExpiredError:
                listed = False
            except Exception as error:  # a cache must outlive any one failed request
                logger.warning("watch failed; listing again", extra={"kind": self.child.kind, "error": str(error)})
                listed = False
                stop.wait(RETRY_SECONDS)

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stop,), name=f"informer-{self.child.kind}", daemon=True)
        thread.start()
        return thread


CHILD_KINDS = (
    ChildKind("namespace", "/api/v1/namespaces", "none", "", namespaced=False),
    ChildKind("secret", "/api/v1/secrets", "none", SECRET_NAME),
    ChildKind("quota", "/api/v1/resourcequotas", "none", QUOTA_NAME),
    ChildKind("policy", "/apis/networking.k8s.io/v1/networkpolicies", "none", POLICY_NAME),
    ChildKind("serviceaccount", "/api/v1/serviceaccounts", "none", SERVICE_ACCOUNT_NAME),
    ChildKind("deployment", "/apis/apps/v1/deployments", "readiness", GATEWAY_NAME),
)


def bot_secrets(namespace: str) -> ChildKind:
    """The Secrets holding customers' bot tokens (written by the control API or by hand; no label of ours)."""
    return ChildKind("bot-secret", f"/api/v1/namespaces/{namespace}/secrets", "none", "", selector="", by_name=True)
