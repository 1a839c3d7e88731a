"""kopf wiring: watches (as in-memory indexes) of Customers and their children, and thin handlers calling Reconciler."""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, cast

import kopf
import kubernetes
from kopf._cogs.structs.bodies import RawBody
from kopf._core.intents.filters import MetaFilterToken
from prometheus_client import start_http_server

from clawhost_api.customer import GROUP, LABEL_CUSTOMER, LABEL_MANAGED_BY, PLURAL, VERSION
from clawhost_operator.children import MANAGER
from clawhost_operator.kube_writer import KubeWriter
from clawhost_operator.memory import start_trimmer
from clawhost_operator.metrics import ERRORS, IGNORED_EVENTS, QUEUE_DEPTH, RECONCILE_SECONDS, RECONCILES
from clawhost_operator.reconcile import LiveView, Reconciler
from clawhost_operator.settings import OperatorSettings
from clawhost_operator.workqueue import WorkQueue

logger = logging.getLogger("clawhost.operator")

SETTINGS = OperatorSettings()
OURS: dict[str, str | MetaFilterToken] = {LABEL_MANAGED_BY: MANAGER, LABEL_CUSTOMER: kopf.PRESENT}
_state: dict[str, Reconciler] = {}
_indexes: dict[str, Any] = {}
_kopf_context: list[contextvars.Context] = []
_queue = WorkQueue()
_stop_resync = threading.Event()
RETRY_SECONDS = 2.0


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.level = logging.WARNING  # our own events carry the story; kopf's would be noise
    # kopf's client has no connection limit and posts each object's Events from its own worker: unbounded,
    # a burst of N new Customers opened ~N TLS connections (handshake CPU on both ends, ~0.3 MB each here).
    settings.posting.worker_limit = SETTINGS.event_posters
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.scanning.disabled = True
    # Server-side filtering: on a shared cluster the operator never even receives other namespaces,
    # quotas, policies or Deployments. (Secrets stay unfiltered: bot-token Secrets carry no label of ours.)
    ours = f"{LABEL_MANAGED_BY}={MANAGER},{LABEL_CUSTOMER}"
    for plural in ("namespaces", "resourcequotas", "networkpolicies", "deployments"):
        settings.watching.label_selectors[plural] = ours
    kubernetes.config.load_config()  # type: ignore[no-untyped-call]
    configuration = kubernetes.client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = SETTINGS.workers  # one pooled connection per worker thread
    _state["reconciler"] = Reconciler(SETTINGS, KubeWriter(kubernetes.client.ApiClient(configuration)))
    start_http_server(SETTINGS.metrics_port)
    _stop_resync.clear()
    QUEUE_DEPTH.set_function(_queue.depth)
    _queue.start_workers(SETTINGS.workers, _work)
    threading.Thread(target=_resync_loop, args=(_stop_resync,), name="resync", daemon=True).start()
    start_trimmer(SETTINGS.memory_trim_seconds, _stop_resync)
    logger.info("operator configured", extra={"metrics_port": SETTINGS.metrics_port})


_KEPT_METADATA = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "deletionTimestamp",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
)


_READINESS_FIELDS = ("observedGeneration", "readyReplicas", "updatedReplicas", "replicas")


def _packed(body: kopf.Body, status: str = "all") -> bytes:
    """What reconciles read, as compact JSON: the indexes hold every object of 1,000s of customers.

    Without managedFields and the like. `status`: "all" keeps it (Customers), "readiness" keeps the Deployment
    fields readiness is judged by, "none" drops it (children whose status no reconcile reads: namespace phase,
    quota usage). One bytes object instead of a tree of small dicts: ~6x smaller, and one allocation that does
    not pin the heap pages the burst's transient event objects lived on.
    """
    kept = {key: value for key, value in body.items() if key not in ("metadata", "status")}
    kept["metadata"] = {key: body["metadata"][key] for key in _KEPT_METADATA if key in body["metadata"]}
    live_status = body.get("status") or {}
    if status == "all" and live_status:
        kept["status"] = dict(live_status)
    elif status == "readiness":
        kept["status"] = {key: live_status[key] for key in _READINESS_FIELDS if key in live_status}
    return json.dumps(kept, separators=(",", ":")).encode()


def _by_customer(labels: kopf.Labels, body: kopf.Body, status: str = "none") -> dict[str, bytes]:
    return {labels[LABEL_CUSTOMER]: _packed(body, status)}


@kopf.index(GROUP, VERSION, PLURAL)
async def customers_idx(name: str, body: kopf.Body, **_: Any) -> dict[str, bytes]:
    return {name: _packed(body)}


def _bot_secret_name(spec: kopf.Spec | dict[str, Any]) -> str:
    return str(((spec.get("telegram") or {}).get("botTokenSecretRef") or {}).get("name", ""))


@kopf.index(GROUP, VERSION, PLURAL)
async def customers_by_bot_secret_idx(name: str, spec: kopf.Spec, **_: Any) -> dict[str, str]:
    return {_bot_secret_name(spec): name}


@kopf.index("namespaces", labels=OURS)
async def namespaces_idx(labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[str, bytes]:
    return _by_customer(labels, body)


@kopf.index("secrets", labels=OURS)
async def secrets_idx(labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[str, bytes]:
    return _by_customer(labels, body)


@kopf.index("resourcequotas", labels=OURS)
async def quotas_idx(labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[str, bytes]:
    return _by_customer(labels, body)


@kopf.index("networking.k8s.io", "v1", "networkpolicies", labels=OURS)
async def policies_idx(labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[str, bytes]:
    return _by_customer(labels, body)


@kopf.index("apps", "v1", "deployments", labels=OURS)
async def deployments_idx(labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[str, bytes]:
    return _by_customer(labels, body, status="readiness")


def _is_bot_secret(namespace: str | None, **_: Any) -> bool:
    return namespace == SETTINGS.bot_token_namespace


@kopf.index("secrets", when=_is_bot_secret)
async def bot_secrets_idx(name: str, body: kopf.Body, **_: Any) -> dict[str, bytes]:
    return {name: _packed(body, status="none")}


def _first(index: kopf.Index[str, bytes], key: str) -> dict[str, Any] | None:
    for item in index.get(key) or ():
        unpacked: dict[str, Any] = json.loads(item)
        return unpacked
    return None


def _capture(kwargs: dict[str, Any]) -> None:
    """kopf hands its (live, self-updating) indexes only to handlers, and Events need its context: keep both."""
    if not _indexes:
        _kopf_context.append(contextvars.copy_context())
        _indexes.update({key: value for key, value in kwargs.items() if key.endswith("_idx")})


def _work(name: str, trigger: str) -> None:
    """One queued reconcile on a worker thread; a failed one is queued again after a pause."""
    if not _kopf_context:
        return
    if not _kopf_context[0].copy().run(reconcile_named, name, trigger, _indexes):
        _queue.add_after(name, "retry", RETRY_SECONDS)


def reconcile_named(name: str, trigger: str, indexes: dict[str, Any]) -> bool:
    """Build the live view from the indexes and reconcile. False when it failed and should be retried.

    The work queue guarantees one worker per customer at a time.
    """
    reconciler = _state.get("reconciler")
    if reconciler is None:
        return True
    customer = _first(indexes["customers_idx"], name)
    if customer is None:
        return True
    view = LiveView(
        customer=customer,
        namespace=_first(indexes["namespaces_idx"], name),
        secret=_first(indexes["secrets_idx"], name),
        quota=_first(indexes["quotas_idx"], name),
        policy=_first(indexes["policies_idx"], name),
        deployment=_first(indexes["deployments_idx"], name),
        bot_secret=_first(indexes["bot_secrets_idx"], _bot_secret_name(customer.get("spec") or {})),
    )

    def emit(kind: str, reason: str, message: str) -> None:
        kopf.event(kopf.Body(cast(RawBody, customer)), type=kind, reason=reason, message=message)

    started = time.perf_counter()
    try:
        reconciler.reconcile(view, emit)
    except kubernetes.client.ApiException as error:
        ERRORS.labels("api").inc()
        RECONCILES.labels(trigger, "error").inc()
        # Conflicts mean our view lagged behind a write; the watch event that follows re-triggers us.
        level = logging.DEBUG if error.status == 409 else logging.WARNING
        logger.log(level, "reconcile failed", extra={"customer": name, "status": error.status, "reason": error.reason})
        return False
    except Exception:
        ERRORS.labels("internal").inc()
        RECONCILES.labels(trigger, "error").inc()
        logger.exception("reconcile crashed", extra={"customer": name})
        return False
    finally:
        RECONCILE_SECONDS.observe(time.perf_counter() - started)
    RECONCILES.labels(trigger, "ok").inc()
    return True


@kopf.on.event(GROUP, VERSION, PLURAL)
async def on_customer(name: str, type: str | None, **kwargs: Any) -> None:
    _capture(kwargs)
    if type != "DELETED":
        _queue.add(name, "customer")


_fingerprints: dict[tuple[str, str], bytes] = {}
_fingerprints_guard = threading.Lock()


def _fingerprint(kind: str, body: kopf.Body) -> bytes:
    """What a reconcile can react to in a child: everything but status (of a Deployment, its readiness)."""
    meta = body.get("metadata") or {}
    relevant: dict[str, Any] = {key: value for key, value in body.items() if key not in ("metadata", "status")}
    relevant["metadata"] = {key: meta.get(key) for key in _KEPT_METADATA if key != "resourceVersion"}
    if kind == "deployment":
        status = body.get("status") or {}
        relevant["status"] = [status.get(key) for key in _READINESS_FIELDS]
    return hashlib.blake2b(json.dumps(relevant, sort_keys=True, default=str).encode(), digest_size=16).digest()


def _changed(kind: str, customer: str, type_: str | None, body: kopf.Body) -> bool:
    """False for an update that only moved fields no reconcile reads (quota usage, most Deployment status)."""
    key = (kind, customer)
    with _fingerprints_guard:
        if type_ == "DELETED":
            _fingerprints.pop(key, None)
            return True
        fingerprint = _fingerprint(kind, body)
        previous = _fingerprints.get(key)
        _fingerprints[key] = fingerprint
    return not (type_ == "MODIFIED" and previous == fingerprint)


def _child_handler(kind: str) -> Callable[..., Coroutine[Any, Any, None]]:
    async def handler(labels: kopf.Labels, type: str | None, body: kopf.Body, **kwargs: Any) -> None:
        _capture(kwargs)
        customer = labels[LABEL_CUSTOMER]
        if not _changed(kind, customer, type, body):
            IGNORED_EVENTS.labels(kind).inc()
            return
        _queue.add(customer, kind)

    handler.__name__ = f"on_{kind}"
    return handler


kopf.on.event("namespaces", labels=OURS, id="on_namespace")(_child_handler("namespace"))
kopf.on.event("secrets", labels=OURS, id="on_secret")(_child_handler("secret"))
kopf.on.event("resourcequotas", labels=OURS, id="on_quota")(_child_handler("quota"))
kopf.on.event("networking.k8s.io", "v1", "networkpolicies", labels=OURS, id="on_policy")(_child_handler("policy"))
kopf.on.event("apps", "v1", "deployments", labels=OURS, id="on_deployment")(_child_handler("deployment"))


@kopf.on.event("secrets", when=_is_bot_secret)
async def on_bot_secret(name: str, **kwargs: Any) -> None:
    _capture(kwargs)
    for customer in list(kwargs["customers_by_bot_secret_idx"].get(name) or ()):
        _queue.add(customer, "bot-secret")


def _resync_loop(stop: threading.Event) -> None:
    """The periodic pass: every customer once per interval, spread evenly, catches what a missed event left behind.

    One thread instead of a kopf timer per Customer: a timer is an asyncio task holding its object's full body,
    which at 1,000 customers cost more memory than everything else the operator keeps.
    """
    interval = SETTINGS.resync_seconds
    while not stop.is_set():
        names = list(_indexes["customers_idx"].keys()) if _indexes else []
        if not names:
            stop.wait(min(interval, 1.0))
            continue
        pause = interval / len(names)
        for name in names:
            if stop.wait(pause):
                return
            _queue.add(name, "resync")


@kopf.on.cleanup()
def stop_resync(**_: Any) -> None:
    _stop_resync.set()
    _queue.close()
