"""Prometheus metrics of the control API, served on their own port (never the tenant-facing API port).

Requests and latency by route template (`/agent`, never a raw path: bounded label values), Stripe
webhook events by type and outcome, sign-ins refused and requests rate-limited. Each app has its own
registry, so apps in one process (tests) do not share counters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from threading import Thread
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clawhost_control_api.billing.events import HANDLED

WEBHOOK_TYPES = frozenset(HANDLED)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "clawhost_control_api_requests_total",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "clawhost_control_api_request_duration_seconds",
            "Time from request to the end of the response, by method and route template.",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.webhook_events = Counter(
            "clawhost_control_api_webhook_events_total",
            "Stripe webhook deliveries by event type (other: not handled) and outcome.",
            ["type", "outcome"],
            registry=r,
        )
        self.logins_refused = Counter(
            "clawhost_control_api_logins_refused_total",
            "Sign-ins refused, by reason (wrong_credentials, busy).",
            ["reason"],
            registry=r,
        )
        self.rate_limited = Counter(
            "clawhost_control_api_rate_limited_total",
            "Requests refused with 429, by action (login, signup, refresh) and scope (ip, account).",
            ["action", "scope"],
            registry=r,
        )

    def webhook(self, event_type: object, outcome: str) -> None:
        kind = event_type if isinstance(event_type, str) and event_type in WEBHOOK_TYPES else "other"
        self.webhook_events.labels(type=kind, outcome=outcome).inc()


class RequestMetrics:
    """ASGI middleware: count and time every HTTP request by its route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            template = self._template(scope)
            method = str(scope.get("method", ""))
            self.metrics.requests.labels(method=method, route=template, status=str(status)).inc()
            self.metrics.latency.labels(method=method, route=template).observe(time.perf_counter() - started)

    @staticmethod
    def _template(scope: Scope) -> str:
        route: Any = scope.get("route")  # the router writes the matched route into this same scope
        return str(getattr(route, "path", "unmatched"))


@dataclass
class MetricsServer:
    """`/metrics` in a thread on its own port; `port` is the bound one (useful with port 0)."""

    server: WSGIServer
    thread: Thread

    @classmethod
    def start(cls, metrics: Metrics, host: str, port: int) -> MetricsServer:
        server, thread = start_http_server(port, addr=host, registry=metrics.registry)
        return cls(server, thread)

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
