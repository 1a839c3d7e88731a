"""The operator as one object: its settings, caches, work queue, reconciler and threads, built once in `main`.

Customers, their children and the bot-token Secrets are all kept by lean LIST+WATCH informers (one thread per
kind); a watch event only marks its customer dirty in the work queue; worker threads reconcile from the caches.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from http.server import ThreadingHTTPServer

from prometheus_client import start_http_server

from clawhost_api.kube import KubeError, KubeHttp, load_config
from clawhost_operator.bot_secret_index import BotSecretIndex, bot_secret_name
from clawhost_operator.health import serve_health
from clawhost_operator.informers import CHILD_KINDS, CUSTOMERS, ChildCache, ChildKind, OnChange, bot_secrets
from clawhost_operator.kube_writer import KubeWriter
from clawhost_operator.memory import start_trimmer
from clawhost_operator.metrics import ERRORS, IGNORED_EVENTS, QUEUE_DEPTH, RECONCILE_SECONDS, RECONCILES
from clawhost_operator.reconcile import LiveView, Reconciler
from clawhost_operator.settings import OperatorSettings
from clawhost_operator.workqueue import WorkQueue

logger = logging.getLogger("clawhost.operator")
# One line per reconcile (customer, trigger, result) at DEBUG: off by default, on with CLAWHOST_OPERATOR_LOG_LEVEL.
reconcile_log = logging.getLogger("clawhost.operator.reconcile")


@dataclass(frozen=True)
class Again:
    """Reconcile this customer again after `seconds`, queued with `trigger` (in the urgent lane if `urgent`)."""

    seconds: float
    trigger: str
    urgent: bool = False


RETRY = Again(2.0, "retry")  # after a failed reconcile


class Operator:
    """Everything one operator process runs. `start` starts its threads and servers, `stop` ends them."""

    def __init__(self, settings: OperatorSettings, http: KubeHttp) -> None:
        self.settings = settings
        self.reconciler = Reconciler(settings, KubeWriter(http))
        self.queue = WorkQueue(conditional=frozenset({"first-status"}))  # skipped once no longer needed
        self.stopping = threading.Event()
        self.bot_secret_users = BotSecretIndex()
        self.customers = ChildCache(CUSTOMERS, http, self._customer_changed, self._count_ignored)
        caches: list[tuple[ChildKind, OnChange]] = [(child, self._child_changed) for child in CHILD_KINDS]
        caches.append((bot_secrets(settings.bot_token_namespace), self._bot_secret_changed))
        self.children = {
            child.kind: ChildCache(child, http, on_change, self._count_ignored) for child, on_change in caches
        }
        self._threads: list[threading.Thread] = []
        self._health: ThreadingHTTPServer | None = None

    @classmethod
    def from_settings(cls, settings: OperatorSettings) -> Operator:
        """Connection settings from KUBECONFIG or, inside a pod, its ServiceAccount."""
        # One connection per thread: per worker, per informer.
        return cls(settings, KubeHttp(load_config(), user_agent="clawhost-operator"))

    def start(self) -> None:
        logging.getLogger("clawhost.operator").setLevel(self.settings.log_level)
        start_http_server(self.settings.metrics_port)
        for informer in (self.customers, *self.children.values()):  # each watch holds its own connection
            self._threads.append(informer.start(self.stopping))
        QUEUE_DEPTH.set_function(self.queue.depth)
        self.queue.start_workers(self.settings.workers, self._work)
        threading.Thread(target=self._resync_loop, name="resync", daemon=True).start()
        start_trimmer(self.settings.memory_trim_seconds, self.stopping)
        self._health = serve_health(self.settings.health_port, self.alive)
        logger.info("operator started", extra={"metrics_port": self.settings.metrics_port})

    def stop(self) -> None:
        self.stopping.set()
        self.queue.close()
        if self._health is not None:
            self._health.shutdown()

    def alive(self) -> tuple[bool, dict[str, object]]:
        """Liveness: every cache's thread is running (it lists again after any failure, so it only stops by a bug)."""
        dead = [thread.name for thread in self._threads if not thread.is_alive()]
        if dead:
            return False, {"stopped": dead}
        informers = {"customer": self.customers, **self.children}
        return True, {kind: len(informer) for kind, informer in informers.items()}

    def _count_ignored(self, kind: str) -> None:
        IGNORED_EVENTS.labels(kind).inc()

    def _own_echo(self, version: str | None) -> bool:
        return self.reconciler.writer.own_versions.echo(version)

    def _customer_changed(self, name: str, kind: str, version: str | None) -> None:
        customer = self.customers.get(name)
        self.bot_secret_users.link(name, bot_secret_name(customer.get("spec") or {}) if customer else None)
        if self._own_echo(version):
            IGNORED_EVENTS.labels("customer-own-write").inc()
            return
        if customer is not None:
            self.queue.add(name, "customer")

    def _child_changed(self, customer: str, kind: str, version: str | None) -> None:
        if self._own_echo(version):
            IGNORED_EVENTS.labels(f"{kind}-own-write").inc()
            return
        self.queue.add(customer, kind, urgent=self.settings.urgent_child_changes)

    def _bot_secret_changed(self, secret: str, kind: str, version: str | None) -> None:
        """A bot-token Secret changed: every customer referring to it."""
        for customer in self.bot_secret_users.referring_to(secret):
            self.queue.add(customer, "bot-secret", urgent=self.settings.urgent_child_changes)

    def _work(self, name: str, trigger: str) -> None:
        """One queued reconcile on a worker thread; a failed one is queued again after a pause."""
        for informer in (self.customers, *self.children.values()):  # "not listed yet" is not "missing"
            informer.synced.wait()
        again = self.reconcile_named(name, trigger)
        if again is not None:
            self.queue.add_after(name, again.trigger, again.seconds, urgent=again.urgent)

    def reconcile_named(self, name: str, trigger: str) -> Again | None:
        """Build the live view from the caches and reconcile. When (and why) to reconcile again, if at all: after a
        failure, or when the reconcile deferred something (a new Customer's first status) to a later look.

        The work queue guarantees one worker per customer at a time.
        """
        customer = self.customers.get(name)
        if customer is None:
            return None
        if trigger == "first-status" and not self.reconciler.awaits_first_status(name):
            return None  # its pod turned Ready in time: the Running status is written, nothing left to look at
        children = self.children
        view = LiveView(
            customer=customer,
            namespace=children["namespace"].get(name),
            secret=children["secret"].get(name),
            quota=children["quota"].get(name),
            policy=children["policy"].get(name),
            service_account=children["serviceaccount"].get(name),
            deployment=children["deployment"].get(name),
            pod=children["pod"].get(name),
            bot_secret=children["bot-secret"].get(bot_secret_name(customer.get("spec") or {})),
        )
        writer = self.reconciler.writer

        def emit(kind: str, reason: str, message: str) -> None:
            try:
                writer.post_event(customer, kind, reason, message)
            except Exception as error:  # an Event is a note for people: losing one must not fail the reconcile
                logger.warning("event not posted", extra={"customer": name, "reason": reason, "error": str(error)})

        started = time.perf_counter()
        result = "error"
        try:
            self.reconciler.reconcile(view, emit)
            result = "ok"
        except KubeError as error:
            ERRORS.labels("api").inc()
            # Conflicts mean our view lagged behind a write; the watch event that follows re-triggers us.
            level = logging.DEBUG if error.status == 409 else logging.WARNING
            logger.log(
                level, "reconcile failed", extra={"customer": name, "status": error.status, "reason": error.reason}
            )
            return RETRY
        except Exception:
            ERRORS.labels("internal").inc()
            logger.exception("reconcile crashed", extra={"customer": name})
            return RETRY
        finally:
            RECONCILE_SECONDS.observe(time.perf_counter() - started)
            RECONCILES.labels(trigger, result).inc()
            reconcile_log.debug("reconciled", extra={"customer": name, "trigger": trigger, "result": result})
        if view.requeue_after is not None:
            # Its pod's turning Ready queues it anyway (urgent); this look writes Provisioning if it has not.
            return Again(view.requeue_after, "first-status", urgent=True)
        return None

    def _resync_loop(self) -> None:
        """The periodic pass: every customer once per interval, spread evenly, catches what a missed event left behind.

        One thread instead of a timer per Customer: at 1,000 customers, per-object timers (kopf's, each an asyncio
        task holding its object's full body) cost more memory than everything else the operator keeps.
        """
        interval, stop = self.settings.resync_seconds, self.stopping
        while not stop.is_set():
            names = self.customers.keys()
            if not names:
                stop.wait(min(interval, 1.0))
                continue
            pause = interval / len(names)
            for name in names:
                if stop.wait(pause):
                    return
                self.queue.add(name, "resync")
