"""What a customer's gateway pod says about its container's past (restarts, the last exit, why it waits), and how
the Customer's Ready condition tells it: a restarted or out-of-memory gateway is explained on the Customer, not
only in the pod nobody outside the platform can read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clawhost_operator.children import GATEWAY_NAME

Obj = dict[str, Any]


@dataclass(frozen=True)
class GatewayRun:
    restarts: int = 0
    last_reason: str | None = None  # why the previous run ended: OOMKilled, Error, Completed, ...
    last_exit_code: int | None = None
    last_finished_at: str | None = None
    waiting_reason: str | None = None  # CrashLoopBackOff, CreateContainerConfigError, ImagePullBackOff, ...

    @property
    def out_of_memory(self) -> bool:
        return self.last_reason == "OOMKilled"


# The ordinary start of a container (the kubelet creating it, the isolation gate's init container running): told as
# the plain "waiting for the gateway pod to become Ready", so they are not kept. Telling them would cost every new
# pod, and every rollout, a reconcile and a status write on the way in and another on the way out.
STARTING = frozenset({"ContainerCreating", "PodInitializing"})


def summarize_pod(pod: Obj) -> Obj:
    """The gateway container's status as the pod cache keeps it (a change in it is worth a reconcile)."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    container = next((s for s in statuses if s.get("name") == GATEWAY_NAME), None) or {}
    last = (container.get("lastState") or {}).get("terminated") or {}
    waiting = (container.get("state") or {}).get("waiting") or {}
    summary: Obj = {"restarts": int(container.get("restartCount") or 0)}
    if last:
        summary["last"] = {
            "reason": last.get("reason"),
            "exitCode": last.get("exitCode"),
            "finishedAt": last.get("finishedAt"),
        }
    if waiting.get("reason") and waiting["reason"] not in STARTING:
        summary["waiting"] = waiting["reason"]
    return summary


def tells_nothing(summary: Obj) -> bool:
    """A gateway that never restarted and waits for nothing unusual: `explain` and the restart Events read such a
    pod exactly as no pod at all, so its arrival, its start and its leaving are worth no reconcile."""
    return not summary.get("restarts") and "waiting" not in summary


def gateway_run(pod: Obj | None) -> GatewayRun:
    """From the pod cache's summary (`summarize_pod`, under `status`); no pod: nothing has happened."""
    if pod is None:
        return GatewayRun()
    summary = pod.get("status") or {}
    last = summary.get("last") or {}
    return GatewayRun(
        restarts=int(summary.get("restarts") or 0),
        last_reason=last.get("reason"),
        last_exit_code=last.get("exitCode"),
        last_finished_at=last.get("finishedAt"),
        waiting_reason=summary.get("waiting"),
    )


def _last_exit(run: GatewayRun) -> str:
    code = f", exit code {run.last_exit_code}" if run.last_exit_code is not None else ""
    when = f" at {run.last_finished_at}" if run.last_finished_at else ""
    return f"{run.last_reason or 'exited'}{code}{when}"


def _times(count: int) -> str:
    return "1 time" if count == 1 else f"{count} times"


def explain(run: GatewayRun, ready: bool, memory_limit: str) -> tuple[str, str] | None:
    """(reason, message) for the Ready condition when the gateway's past needs telling; None when it does not."""
    if run.restarts == 0 and run.waiting_reason is None:
        return None
    if ready:
        return "Running", f"the gateway pod is Ready; restarted {_times(run.restarts)}, last: {_last_exit(run)}"
    if run.out_of_memory:
        return (
            "GatewayOutOfMemory",
            f"the gateway ran out of memory (its limit is {memory_limit}) and was restarted {_times(run.restarts)}; "
            f"last: {_last_exit(run)}. A larger tier has more memory",
        )
    if run.waiting_reason == "CrashLoopBackOff":
        return "GatewayCrashLooping", f"the gateway keeps exiting ({_times(run.restarts)}); last: {_last_exit(run)}"
    if run.restarts:
        return "GatewayRestarting", f"the gateway exited ({_last_exit(run)}) and is starting again"
    return "Provisioning", f"waiting for the gateway pod to become Ready ({run.waiting_reason})"
