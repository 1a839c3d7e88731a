"""Prometheus metrics of the operator."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter("clawhost_operator_reconciles_total", "Reconciles of a Customer", ["trigger", "result"])
RECONCILE_SECONDS = Histogram(
    "clawhost_operator_reconcile_duration_seconds",
    "Duration of one reconcile",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
API_WRITES = Counter(
    "clawhost_operator_api_writes_total", "Writes the operator made to the API server", ["kind", "verb"]
)
ERRORS = Counter("clawhost_operator_errors_total", "Reconciles that raised", ["kind"])
TRANSITIONS = Counter("clawhost_operator_transitions_total", "Customer phase transitions", ["phase"])
IGNORED_EVENTS = Counter(
    "clawhost_operator_ignored_events_total", "Child updates that changed nothing a reconcile reads", ["kind"]
)
QUEUE_DEPTH = Gauge("clawhost_operator_queue_depth", "Customers waiting for a reconcile")
