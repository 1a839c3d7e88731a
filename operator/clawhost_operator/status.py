"""The Customer's status: conditions (Ready, Reconciling, Stalled per kstatus), phase and what was applied."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class Observation:
    """What one reconcile concluded, before it is turned into status fields."""

    phase: str
    ready: bool
    reason: str
    message: str
    reconciling: bool
    stalled: bool
    namespace: str | None
    tier: str | None
    replicas: int | None
    config_hash: str | None
    token_hash: str | None
    token_rotated_at: str | None
    # Of the spec's Telegram ids, those the effective tier lets talk to the agent, and the rest (None: not rendered).
    active_telegram_ids: tuple[int, ...] | None = None
    inactive_telegram_ids: tuple[int, ...] = ()


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(previous: list[Obj], kind: str, status: bool, reason: str, message: str, generation: int) -> Obj:
    value = "True" if status else "False"
    before = next((c for c in previous if c.get("type") == kind), None)
    unchanged = before is not None and before.get("status") == value
    return {
        "type": kind,
        "status": value,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": before["lastTransitionTime"] if unchanged and before else now_rfc3339(),
    }


def render_status(observation: Observation, previous: Obj, generation: int) -> Obj:
    """The operator-owned part of status (never `billing`)."""
    conditions = previous.get("conditions") or []
    o = observation
    return {
        "observedGeneration": generation,
        "phase": o.phase,
        "namespace": o.namespace,
        "conditions": [
            _condition(conditions, "Ready", o.ready, o.reason, o.message, generation),
            _condition(
                conditions,
                "Reconciling",
                o.reconciling,
                "Progressing" if o.reconciling else "Idle",
                o.message if o.reconciling else "",
                generation,
            ),
            _condition(
                conditions,
                "Stalled",
                o.stalled,
                o.reason if o.stalled else "Healthy",
                o.message if o.stalled else "",
                generation,
            ),
        ],
        "applied": {
            "tier": o.tier,
            "replicas": o.replicas,
            "configHash": o.config_hash,
            "activeTelegramUserIds": list(o.active_telegram_ids) if o.active_telegram_ids is not None else None,
            "inactiveTelegramUserIds": list(o.inactive_telegram_ids) or None,
        },
        "proxyToken": {"hash": o.token_hash, "rotatedAt": o.token_rotated_at},
    }


def _strip_times(status: Obj) -> Obj:
    copy = dict(status)
    copy["conditions"] = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in status.get("conditions") or []
    ]
    return copy


def _prune(value: Any) -> Any:
    """Drop nulls and empty maps: a merge patch with null deletes the field, so both mean "absent"."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v is not None and v != {}}
    if isinstance(value, list):
        return [_prune(item) for item in value]
    return value


def status_changed(previous: Obj, desired: Obj) -> bool:
    """Compare only the fields we own, ignoring transition times (they only move when a status flips)."""
    current = {key: previous.get(key) for key in desired}
    return bool(_prune(_strip_times(current)) != _prune(_strip_times(desired)))
