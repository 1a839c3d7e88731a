"""kopf wiring: Customers through kopf, children and bot-token Secrets through lean informers, a reconcile queue."""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import kopf
from kopf._cogs.structs.bodies import RawBody
from prometheus_client import start_http_server

from clawhost_api.customer import GROUP, PLURAL, VERSION
from clawhost_api.kube import KubeError, KubeHttp, load_config
from clawhost_operator.customer_store import CustomerStore, bot_secret_name
from clawhost_operator.informers import CHILD_KINDS, ChildCache, ChildKind, OnChange, bot_secrets
from clawhost_operator.kube_writer import KubeWriter
from clawhost_operator.memory import start_trimmer
from clawhost_operator.metrics import ERRORS, IGNORED_EVENTS, QUEUE_DEPTH, RECONCILE_SECONDS, RECONCILES
from clawhost_operator.reconcile import LiveView, Reconciler
from clawhost_operator.settings import OperatorSettings
from clawhost_operator.workqueue import WorkQueue

logger = logging.getLogger("clawhost.operator")

SETTINGS = OperatorSettings()
_state: dict[str, Reconciler] = {}
_customers = CustomerStore()
_kopf_context: list[contextvars.Context] = []
_queue = WorkQueue()
_informers: dict[str, ChildCache] = {}
_informer_threads: list[threading.Thread] = []
_stop_resync = threading.Event()


@dataclass(frozen=True)
class Again:
    """Reconcile this customer again after `seconds`, queued with `trigger` (in the urgent lane if `urgent`)."""

    seconds: float
    trigger: str
    urgent: bool = False


RETRY = Again(2.0, "retry")  # after a failed reconcile


class _NoDiffBase(kopf.AnnotationsDiffBaseStorage):
    """Keeps no diff base: this operator has no change-detecting (create/update/field) handlers."""

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        return cast(kopf.BodyEssence, {})

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def _count_ignored(kind: str) -> None:
    IGNORED_EVENTS.labels(kind).inc()


def _own_echo(version: str | None) -> bool:
    reconciler = _state.get("reconciler")
    return reconciler is not None and reconciler.writer.own_versions.echo(version)


def _child_changed(customer: str, kind: str, version: str | None) -> None:
    if _own_echo(version):
        IGNORED_EVENTS.labels(f"{kind}-own-write").inc()
        return
    _queue.add(customer, kind, urgent=SETTINGS.urgent_child_changes)


@kopf.on.probe(id="informers")
def informers_alive(**_: Any) -> dict[str, int]:
    """Liveness: every child cache's thread is running (it lists again after any failure, so it only stops by a bug)."""
    dead = [thread.name for thread in _informer_threads if not thread.is_alive()]
    if dead:
        raise RuntimeError(f"informer threads stopped: {', '.join(dead)}")
    return {kind: len(informer) for kind, informer in _informers.items()}


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """kopf's own requests (the Customer watch, Events) log in as ours do: kubeconfig or in-cluster. kopf calls
    this again when the API server answers 401, so the ServiceAccount token is read afresh then."""
    config = load_config()
    return kopf.ConnectionInfo(
        server=config.server,
        ca_path=str(config.ca_file) if config.ca_file else None,
        ca_data=config.ca_data,
        insecure=config.insecure,
        token=config.bearer(fresh=True),
        certificate_path=str(config.client_cert_file) if config.client_cert_file else None,
        certificate_data=config.client_cert_data,
        private_key_path=str(config.client_key_file) if config.client_key_file else None,
        private_key_data=config.client_key_data,
    )


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.level = logging.WARNING  # our own events carry the story; kopf's would be noise
    # kopf's client has no connection limit and posts each object's Events from its own worker: unbounded,
    # a burst of N new Customers opened ~N TLS connections (handshake CPU on both ends, ~0.3 MB each here).
    settings.posting.worker_limit = SETTINGS.event_posters
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.scanning.disabled = True
    # Only event handlers here: kopf's diff base (a deep copy of every event's body, for change-detecting
    # handlers) would be pure overhead.
    settings.persistence.diffbase_storage = _NoDiffBase()
    http = KubeHttp(
        load_config(), user_agent="clawhost-operator"
    )  # one connection per thread: per worker, per informer
    _state["reconciler"] = Reconciler(SETTINGS, KubeWriter(http))
    start_http_server(SETTINGS.metrics_port)
    _stop_resync.clear()
    caches: list[tuple[ChildKind, OnChange]] = [(child, _child_changed) for child in CHILD_KINDS]
    caches.append((bot_secrets(SETTINGS.bot_token_namespace), _bot_secret_changed))
    for child, on_change in caches:  # each watch holds its own connection
        informer = ChildCache(child, http, on_change, _count_ignored)
        _informers[child.kind] = informer
        _informer_threads.append(informer.start(_stop_resync))
    QUEUE_DEPTH.set_function(_queue.depth)
    _queue.start_workers(SETTINGS.workers, _work)
    threading.Thread(target=_resync_loop, args=(_stop_resync,), name="resync", daemon=True).start()
    start_trimmer(SETTINGS.memory_trim_seconds, _stop_resync)
    logger.info("operator configured", extra={"metrics_port": SETTINGS.metrics_port})


def _capture_context() -> None:
    """Events need kopf's context (its posting queue and loop): keep a copy for the worker threads."""
    if not _kopf_context:
        _kopf_context.append(contextvars.copy_context())


def _work(name: str, trigger: str) -> None:
    """One queued reconcile on a worker thread; a failed one is queued again after a pause."""
    if not _kopf_context:
        return
    for informer in _informers.values():  # a reconcile must not take "not listed yet" for "missing"
        informer.synced.wait()
    again = _kopf_context[0].copy().run(reconcile_named, name, trigger)
    if again is not None:
        _queue.add_after(name, again.trigger, again.seconds, urgent=again.urgent)


def reconcile_named(name: str, trigger: str) -> Again | None:
    """Build the live view from the caches and reconcile. When (and why) to reconcile again, if at all: after a
    failure, or when the reconcile deferred something (a new Customer's first status) to a later look.

    The work queue guarantees one worker per customer at a time.
    """
    reconciler = _state.get("reconciler")
    if reconciler is None:
        return None
    customer = _customers.get(name)
    if customer is None:
        return None
    if trigger == "first-status" and not reconciler.awaits_first_status(name):
        return None  # its pod turned Ready in time: the Running status is written, nothing left to look at
    view = LiveView(
        customer=customer,
        namespace=_informers["namespace"].get(name),
        secret=_informers["secret"].get(name),
        quota=_informers["quota"].get(name),
        policy=_informers["policy"].get(name),
        service_account=_informers["serviceaccount"].get(name),
        deployment=_informers["deployment"].get(name),
        bot_secret=_informers["bot-secret"].get(bot_secret_name(customer.get("spec") or {})),
    )

    def emit(kind: str, reason: str, message: str) -> None:
        kopf.event(kopf.Body(cast(RawBody, customer)), type=kind, reason=reason, message=message)

    started = time.perf_counter()
    try:
        reconciler.reconcile(view, emit)
    except KubeError as error:
        ERRORS.labels("api").inc()
        RECONCILES.labels(trigger, "error").inc()
        # Conflicts mean our view lagged behind a write; the watch event that follows re-triggers us.
        level = logging.DEBUG if error.status == 409 else logging.WARNING
        logger.log(level, "reconcile failed", extra={"customer": name, "status": error.status, "reason": error.reason})
        return RETRY
    except Exception:
        ERRORS.labels("internal").inc()
        RECONCILES.labels(trigger, "error").inc()
        logger.exception("reconcile crashed", extra={"customer": name})
        return RETRY
    finally:
        RECONCILE_SECONDS.observe(time.perf_counter() - started)
    RECONCILES.labels(trigger, "ok").inc()
    if view.requeue_after is not None:
        # Its pod's turning Ready queues it anyway (urgent); this look writes Provisioning if it has not.
        return Again(view.requeue_after, "first-status", urgent=True)
    return None


@kopf.on.event(GROUP, VERSION, PLURAL)
async def on_customer(name: str, type: str | None, event: kopf.RawEvent, **_: Any) -> None:
    _capture_context()
    raw = cast(dict[str, Any], event["object"])
    if type == "DELETED":
        _customers.remove(name)
        return
    _customers.put(name, raw)
    if _own_echo(raw.get("metadata", {}).get("resourceVersion")):
        IGNORED_EVENTS.labels("customer-own-write").inc()
        return
    _queue.add(name, "customer")


def _bot_secret_changed(secret: str, kind: str, version: str | None) -> None:
    """A bot-token Secret changed: every customer referring to it."""
    for customer in _customers.referring_to(secret):
        _queue.add(customer, "bot-secret", urgent=SETTINGS.urgent_child_changes)


def _resync_loop(stop: threading.Event) -> None:
    """The periodic pass: every customer once per interval, spread evenly, catches what a missed event left behind.

    One thread instead of a kopf timer per Customer: a timer is an asyncio task holding its object's full body,
    which at 1,000 customers cost more memory than everything else the operator keeps.
    """
    interval = SETTINGS.resync_seconds
    while not stop.is_set():
        names = _customers.names()
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
