"""One level-based reconcile of one Customer: read the live view, decide, write only what differs."""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from clawhost_api.customer import (
    ANNOTATION_ROTATE_TOKEN,
    BillingStatus,
    CustomerSpec,
    hash_proxy_token,
    namespace_for,
)
from clawhost_api.entitlement import Entitlement, entitlement
from clawhost_operator.children import (
    ANNOTATION_ROTATION,
    KEY_GATEWAY_TOKEN,
    KEY_PROXY_TOKEN,
    config_hash,
    render_deployment,
    render_namespace,
    render_network_policy,
    render_quota,
    render_secret,
    render_service_account,
    secret_data,
)
from clawhost_operator.compare import contains
from clawhost_operator.effective import Decision, decide
from clawhost_operator.gateway_pod import GatewayRun, explain, gateway_run
from clawhost_operator.informers import readiness_verdict
from clawhost_operator.kube_writer import KubeWriter
from clawhost_operator.metrics import TRANSITIONS
from clawhost_operator.openclaw_config import render_openclaw_config, serialize_config
from clawhost_operator.settings import OperatorSettings
from clawhost_operator.status import Observation, now_rfc3339, render_status, status_changed

Obj = dict[str, Any]
EmitEvent = Callable[[str, str, str], None]  # (type, reason, message)

FINALIZER = "clawhost.dev/namespace-cleanup"


@dataclass
class LiveView:
    """The live objects of one customer, as the watches last saw them."""

    customer: Obj
    namespace: Obj | None = None
    secret: Obj | None = None
    quota: Obj | None = None
    policy: Obj | None = None
    service_account: Obj | None = None
    deployment: Obj | None = None
    pod: Obj | None = None  # the gateway container's restarts and last exit (`gateway_pod.summarize_pod`)
    bot_secret: Obj | None = None
    # resourceVersions of the Customer written by this reconcile: versions the watch may still deliver that do
    # not yet show a status write made later in the same pass.
    own_versions: set[str] = field(default_factory=set)
    # Set by a reconcile that wants another look after this many seconds (a deferred first status).
    requeue_after: float | None = None


@dataclass
class _IssuedTokens:
    rotation: str
    proxy_token: str
    gateway_token: str
    rotated_at: str


@dataclass
class TokenMemory:
    """Tokens issued by this process, so a watch that lags behind our own write never causes a second issue."""

    issued: dict[str, _IssuedTokens] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def forget(self, customer: str) -> None:
        with self.lock:
            self.issued.pop(customer, None)


def _decoded(secret: Obj | None) -> dict[str, str]:
    if secret is None:
        return {}
    return {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}


def _new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def _annotations(obj: Obj | None) -> dict[str, str]:
    if obj is None:
        return {}
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def _deployment_ready(live: Obj | None, desired: Obj) -> bool:
    if live is None or not contains(live, desired):
        return False
    return readiness_verdict(live.get("metadata") or {}, live.get("status") or {})[0]


class Reconciler:
    """Holds the writer, settings and token memory; `reconcile` is safe to call for any trigger, any number of times."""

    def __init__(self, settings: OperatorSettings, writer: KubeWriter) -> None:
        self.settings = settings
        self.writer = writer
        self.tokens = TokenMemory()
        extra_ca_file = settings.gateway_extra_ca_file
        self.extra_ca = extra_ca_file.read_text() if extra_ca_file is not None else None
        # What we last wrote, keyed by the resourceVersion our view had then. The watch that feeds the
        # view lags behind our own writes; while it still shows that same version, the same write is
        # skipped instead of repeated. A newer version (anyone's write) is compared afresh.
        self._written: dict[tuple[str, str], tuple[frozenset[str | None], bytes]] = {}
        self._written_lock = threading.Lock()
        self._restarts_seen: dict[str, int] = {}  # the gateway restarts last told per customer, by Event
        # When this process first found each status-less Customer still provisioning (see `_first_status_wait`).
        self._provisioning_since: dict[str, float] = {}

    def _already_written(self, key: tuple[str, str], live: Obj | None, desired: Obj) -> bool:
        version = (live or {}).get("metadata", {}).get("resourceVersion")
        with self._written_lock:
            remembered = self._written.get(key)
            if remembered is None:
                return False
            if version not in remembered[0]:
                # The view has moved past the version our write was based on: judge it afresh from now on.
                del self._written[key]
                return False
            return remembered[1] == orjson.dumps(desired, option=orjson.OPT_SORT_KEYS)

    def _remember(self, key: tuple[str, str], live: Obj | None, desired: Obj, also: set[str] | None = None) -> None:
        versions = frozenset({(live or {}).get("metadata", {}).get("resourceVersion"), *(also or ())})
        with self._written_lock:
            self._written[key] = (versions, orjson.dumps(desired, option=orjson.OPT_SORT_KEYS))

    def _drop(self, key: tuple[str, str]) -> None:
        with self._written_lock:
            self._written.pop(key, None)

    def _forget(self, customer: str) -> None:
        with self._written_lock:
            for key in [k for k in self._written if k[0] == customer]:
                del self._written[key]
            self._provisioning_since.pop(customer, None)

    def awaits_first_status(self, customer: str) -> bool:
        """Its first status was deferred and has not been written since (by this process)."""
        with self._written_lock:
            return customer in self._provisioning_since

    def _first_status_wait(self, customer: str) -> float:
        """Seconds a new Customer's first status may still wait for its pod to turn Ready.

        A new gateway is usually Ready within a second or two of its objects being applied. Until then its
        Customer shows only the CRD's default `status.observedGeneration: 0`, which kstatus (Flux) reads as
        in progress and the Argo CD health check as Progressing; if the pod is Ready in time, the first status
        written is Running, and the Provisioning write (an API write, its Event another) is never spent. A pod
        slower than the grace gets Provisioning, with the proxy token's hash, as before.
        """
        now = time.monotonic()
        with self._written_lock:
            since = self._provisioning_since.setdefault(customer, now)
        return since + self.settings.first_status_grace_seconds - now

    def reconcile(self, view: LiveView, emit: EmitEvent) -> None:
        customer = view.customer
        meta = customer["metadata"]
        name = meta["name"]
        if meta.get("deletionTimestamp"):
            self._finalize(view, emit)
            return
        finalizers = list(meta.get("finalizers") or [])
        if FINALIZER not in finalizers:
            written = self.writer.set_customer_finalizers(name, [*finalizers, FINALIZER], meta["resourceVersion"])
            if written is not None:
                view.own_versions.add(written)
        previous = customer.get("status") or {}
        try:
            spec = CustomerSpec.model_validate(customer.get("spec") or {})
            billing = BillingStatus.model_validate(previous["billing"]) if previous.get("billing") else None
        except ValidationError as error:
            fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in error.errors())
            self._observe(
                view,
                emit,
                Observation(
                    phase="Failed",
                    ready=False,
                    reason="InvalidSpec",
                    message=f"invalid fields: {fields}",
                    reconciling=False,
                    stalled=True,
                    namespace=None,
                    tier=None,
                    replicas=None,
                    config_hash=None,
                    token_hash=None,
                    token_rotated_at=None,
                ),
            )
            return
        decision = decide(spec, billing)
        if decision.action == "destroy" or (decision.action == "await" and view.namespace is None):
            self._tear_down(view, decision, emit)
            return
        if (view.namespace or {}).get("metadata", {}).get("deletionTimestamp"):
            self._observe(
                view,
                emit,
                Observation(
                    phase="Provisioning",
                    ready=False,
                    reason="NamespaceTerminating",
                    message="waiting for the previous namespace to finish terminating",
                    reconciling=True,
                    stalled=False,
                    namespace=namespace_for(name),
                    tier=decision.tier,
                    replicas=0,
                    config_hash=None,
                    token_hash=None,
                    token_rotated_at=None,
                ),
            )
            return
        self._provision(view, spec, entitlement(spec, billing), decision, emit)

    def _finalize(self, view: LiveView, emit: EmitEvent) -> None:
        meta = view.customer["metadata"]
        name = meta["name"]
        if view.namespace is not None:
            if not view.namespace["metadata"].get("deletionTimestamp"):
                self.writer.delete_namespace(namespace_for(name))
                emit("Normal", "Deleting", f"deleting namespace {namespace_for(name)}")
            return
        finalizers = list(meta.get("finalizers") or [])
        if FINALIZER in finalizers:
            self.tokens.forget(name)
            self._forget(name)
            self.writer.set_customer_finalizers(
                name, [f for f in finalizers if f != FINALIZER], meta["resourceVersion"]
            )

    def _tear_down(self, view: LiveView, decision: Decision, emit: EmitEvent) -> None:
        name = view.customer["metadata"]["name"]
        exists = view.namespace is not None
        if exists and not view.namespace["metadata"].get("deletionTimestamp"):  # type: ignore[index]
            self.writer.delete_namespace(namespace_for(name))
            emit("Normal", "Destroying", f"{decision.message}; deleting namespace {namespace_for(name)}")
        self.tokens.forget(name)
        self._observe(
            view,
            emit,
            Observation(
                phase="Destroyed" if decision.action == "destroy" else "AwaitingPayment",
                ready=False,
                reason=decision.reason,
                message=decision.message,
                reconciling=exists,
                stalled=False,
                namespace=namespace_for(name) if exists else None,
                tier=decision.tier,
                replicas=0 if exists else None,
                config_hash=None,
                token_hash=None,
                token_rotated_at=None,
            ),
        )

    def _tokens(self, view: LiveView) -> _IssuedTokens:
        name = view.customer["metadata"]["name"]
        rotation = _annotations(view.customer).get(ANNOTATION_ROTATE_TOKEN, "")
        live = _decoded(view.secret)
        previous_rotated = ((view.customer.get("status") or {}).get("proxyToken") or {}).get("rotatedAt")
        with self.tokens.lock:
            remembered = self.tokens.issued.get(name)
            if remembered is not None and remembered.rotation == rotation:
                return remembered
            live_rotation = _annotations(view.secret).get(ANNOTATION_ROTATION)
            if live.get(KEY_PROXY_TOKEN) and live_rotation == rotation:
                issued = _IssuedTokens(
                    rotation,
                    live[KEY_PROXY_TOKEN],
                    live.get(KEY_GATEWAY_TOKEN) or _new_token("gw_"),
                    previous_rotated or now_rfc3339(),
                )
            else:
                issued = _IssuedTokens(
                    rotation, _new_token("chp_"), live.get(KEY_GATEWAY_TOKEN) or _new_token("gw_"), now_rfc3339()
                )
            self.tokens.issued[name] = issued
            return issued

    def _provision(
        self, view: LiveView, spec: CustomerSpec, entitled: Entitlement, decision: Decision, emit: EmitEvent
    ) -> None:
        customer = view.customer
        name = customer["metadata"]["name"]
        ref = spec.telegram.bot_token_secret_ref
        bot_token = _decoded(view.bot_secret).get(ref.key)
        if not bot_token:
            where = f"{self.settings.bot_token_namespace}/{ref.name}"
            self._observe(
                view,
                emit,
                Observation(
                    phase="Failed",
                    ready=False,
                    reason="BotTokenMissing",
                    message=f"Secret {where} has no key {ref.key!r}",
                    reconciling=False,
                    stalled=True,
                    namespace=namespace_for(name) if view.namespace else None,
                    tier=decision.tier,
                    replicas=None,
                    config_hash=None,
                    token_hash=None,
                    token_rotated_at=None,
                ),
            )
            return
        tier = entitled.tier
        tokens = self._tokens(view)
        before = _decoded(view.secret).get(KEY_PROXY_TOKEN)
        config = render_openclaw_config(entitled, self.settings.proxy_base_url, self.settings.telegram_api_root)
        data = secret_data(bot_token, tokens.proxy_token, tokens.gateway_token, serialize_config(config), self.extra_ca)
        inputs_hash = config_hash(data)
        deployment = render_deployment(
            name, tier, self.settings.gateway_image, decision.replicas, inputs_hash, self.extra_ca is not None
        )
        wanted = [
            (render_namespace(name, customer["metadata"]["uid"]), view.namespace),
            (render_secret(name, data, tokens.rotation), view.secret),
            (render_quota(name, tier), view.quota),
            (render_network_policy(name, self.settings.proxy_namespace), view.policy),
            (render_service_account(name), view.service_account),  # before the pods that run as it
            (deployment, view.deployment),
        ]
        for desired, live in wanted:
            key = (name, desired["kind"])
            if live is not None and contains(live, desired):
                self._drop(key)
            elif not self._already_written(key, live, desired):
                self.writer.apply(desired)
                self._remember(key, live, desired)
                # Creations are summed up by the phase transition event; updates (spec changes, repaired
                # drift) get one each. Every Event is an API write, so they are not spent on the expected.
                if live is not None:
                    emit("Normal", "Applied", f"{desired['kind']} {desired['metadata']['name']} updated")
        if before and before != tokens.proxy_token:
            emit("Normal", "ProxyTokenRotated", "a new proxy token was issued; the old one is revoked")
        running = decision.action == "run"
        ready = running and _deployment_ready(view.deployment, deployment)
        replicas_live = ((view.deployment or {}).get("status") or {}).get("replicas", 0)
        if running:
            phase, reason, message = (
                ("Running", "Running", "the gateway pod is Ready")
                if ready
                else ("Provisioning", "Provisioning", "waiting for the gateway pod to become Ready")
            )
            run = gateway_run(view.pod)
            told = explain(run, ready, tier.memory_limit)
            if told is not None:
                reason, message = told
            self._tell_restarts(name, run, emit)
        else:
            phase, reason, message = "Suspended", decision.reason, decision.message
        self._observe(
            view,
            emit,
            Observation(
                phase=phase,
                ready=ready,
                reason=reason,
                message=message,
                reconciling=(running and not ready) or (not running and replicas_live > 0),
                stalled=False,
                namespace=namespace_for(name),
                tier=decision.tier,
                replicas=decision.replicas,
                config_hash=inputs_hash,
                token_hash=hash_proxy_token(tokens.proxy_token),
                token_rotated_at=tokens.rotated_at,
                active_telegram_ids=entitled.active_telegram_ids,
                inactive_telegram_ids=entitled.inactive_telegram_ids,
            ),
        )

    def _tell_restarts(self, name: str, run: GatewayRun, emit: EmitEvent) -> None:
        """One Warning Event per restart this process sees (the Ready condition tells the latest at all times)."""
        with self._written_lock:
            seen = self._restarts_seen.get(name, 0)
            self._restarts_seen[name] = run.restarts
        if run.restarts > seen:
            why = "it ran out of memory" if run.out_of_memory else f"it ended: {run.last_reason}"
            emit("Warning", "GatewayRestarted", f"the gateway was restarted ({run.restarts} in all); {why}")

    def _observe(self, view: LiveView, emit: EmitEvent, observation: Observation) -> None:
        customer = view.customer
        previous = customer.get("status") or {}
        generation = int(customer["metadata"].get("generation") or 0)
        desired = render_status(observation, previous, generation)
        key = (customer["metadata"]["name"], "status")
        comparable = {k: v for k, v in desired.items() if k != "conditions"} | {
            "conditions": [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in desired["conditions"]]
        }
        if not status_changed(previous, desired):
            self._drop(key)
            return
        if self._already_written(key, customer, comparable):
            return
        if not previous.get("phase") and observation.phase == "Provisioning":
            wait = self._first_status_wait(key[0])
            if wait > 0:
                view.requeue_after = wait
                return
        self.writer.patch_customer_status(customer["metadata"]["name"], desired)
        with self._written_lock:
            self._provisioning_since.pop(key[0], None)
        self._remember(key, customer, comparable, view.own_versions)
        inactive = observation.inactive_telegram_ids
        if inactive and list(inactive) != (previous.get("applied") or {}).get("inactiveTelegramUserIds"):
            # Once per change (the status shows them at all times): the spec names more users than the tier allows.
            emit(
                "Warning",
                "TelegramUsersInactive",
                f"the {observation.tier} tier allows {len(observation.active_telegram_ids or ())} Telegram user(s): "
                f"{len(inactive)} of the spec's ids cannot talk to the agent; upgrade the plan or remove ids",
            )
        if previous.get("phase") != observation.phase:
            TRANSITIONS.labels(observation.phase).inc()
            kind = "Warning" if observation.stalled else "Normal"
            emit(
                kind,
                observation.reason,
                f"phase {previous.get('phase') or 'None'} → {observation.phase}: {observation.message}",
            )
