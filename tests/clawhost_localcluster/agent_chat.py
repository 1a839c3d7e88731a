"""Talk to a Customer's own agent without Telegram (`make chat CUSTOMER=<name>`): each message is one turn of the real
OpenClaw gateway in the customer's pod, which thinks through the in-cluster token proxy with the customer's proxy
token, so the turn is metered like a Telegram DM.

How: `openclaw agent` (OpenClaw's CLI for one gateway-backed agent turn) runs in the gateway container with `kubectl
exec`. There it has the gateway's own environment (config path, state dir, and the gateway token its config names),
reaches the gateway on the pod's loopback, whose device pairing OpenClaw approves for local connections, and writes
only under /state (the root filesystem is read-only). Nothing is opened in the pod's NetworkPolicy and no gateway
setting changes. The turns share one session of their own (`agent:main:local-chat`), apart from Telegram's.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any

from clawhost_api.customer import namespace_for
from clawhost_localcluster.environment import Cluster
from clawhost_operator.children import GATEWAY_NAME

SESSION_KEY = "local-chat"
EXIT_NOT_RUNNING = 3  # as `status` when nothing runs
EXIT_NO_CUSTOMER = 4
EXIT_NOT_READY = 5
EXIT_NO_REAL_GATEWAY = 6
EXIT_TURN_FAILED = 7


class ChatError(Exception):
    """What went wrong, in words for the person at the terminal, and the exit code that says which case it is."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _get(cluster: Cluster, *args: str) -> dict[str, Any] | None:
    result = cluster.kubectl("get", *args, "-o", "json", check=False)
    if result.returncode != 0:
        if "NotFound" in result.stderr or "not found" in result.stderr:
            return None
        raise ChatError(f"cannot read {' '.join(args)} from the cluster: {result.stderr.strip()}", EXIT_NOT_RUNNING)
    return dict(json.loads(result.stdout))


def _ready_condition(customer: dict[str, Any]) -> dict[str, Any]:
    for condition in (customer.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return dict(condition)
    return {}


@dataclass
class AgentChat:
    cluster: Cluster
    customer: str
    turn_timeout: float = 600  # seconds; a first turn on a busy 2-core machine takes about a minute

    def gateway_pod(self) -> str:
        """The name of the customer's Ready gateway pod on a real node, or a ChatError saying why there is none."""
        customer = _get(self.cluster, "customer", self.customer)
        if customer is None:
            raise ChatError(
                f"there is no Customer named {self.customer!r} (`kubectl get customers` lists them)", EXIT_NO_CUSTOMER
            )
        ready = _ready_condition(customer)
        if ready.get("status") != "True":
            phase = (customer.get("status") or {}).get("phase") or "not yet reconciled"
            doing = f"{ready.get('reason')}: {ready.get('message')}" if ready else "the operator has not seen it yet"
            raise ChatError(
                f"Customer {self.customer!r} is not Ready yet (phase {phase}; {doing}); "
                f"`kubectl get customer {self.customer} -w` shows when it is",
                EXIT_NOT_READY,
            )
        namespace = namespace_for(self.customer)
        listing = _get(self.cluster, "pods", "-n", namespace, "-l", "app.kubernetes.io/name=openclaw-gateway")
        pods = [
            pod
            for pod in (listing or {}).get("items", [])
            if not pod["metadata"].get("deletionTimestamp") and pod.get("status", {}).get("phase") == "Running"
        ]
        if not pods:
            raise ChatError(f"Customer {self.customer!r} has no running gateway pod in {namespace}", EXIT_NOT_READY)
        pod = pods[0]
        node = _get(self.cluster, "node", pod["spec"].get("nodeName", ""))
        if node is not None and node["metadata"].get("annotations", {}).get("kwok.x-k8s.io/node") == "fake":
            raise ChatError(
                f"{self.customer}'s pod runs on a kwok node ({node['metadata']['name']}), where no gateway really "
                "runs: start the platform with the real node (`make up` without CLAWHOST_LOCAL_NODE=kwok)",
                EXIT_NO_REAL_GATEWAY,
            )
        return str(pod["metadata"]["name"])

    def ask(self, text: str) -> str:
        """One turn: `text` to the agent, its answer back."""
        if not text.strip():
            raise ChatError("an empty message: type something for the agent", EXIT_TURN_FAILED)
        pod = self.gateway_pod()
        command = [
            str(self.cluster.kubectl_path),
            "--kubeconfig",
            str(self.cluster.kubeconfig),
            "exec",
            "-n",
            namespace_for(self.customer),
            pod,
            "-c",
            GATEWAY_NAME,
            "--",
            "openclaw",
            "agent",
            "--agent",
            "main",
            "--session-key",
            SESSION_KEY,
            "--timeout",
            str(int(self.turn_timeout)),
            "--json",
            "--message",
            text,
        ]
        try:
            run = subprocess.run(command, capture_output=True, text=True, timeout=self.turn_timeout + 60, check=False)
        except subprocess.TimeoutExpired:
            raise ChatError(f"no answer within {self.turn_timeout:.0f}s", EXIT_TURN_FAILED) from None
        return _answer(run)


def _answer(run: subprocess.CompletedProcess[str]) -> str:
    """The agent's text from `openclaw agent --json`'s output, or a ChatError with what it said instead."""
    try:
        reply = json.loads(run.stdout)
    except ValueError:
        output = (run.stderr or run.stdout).strip()[-800:]
        raise ChatError(
            f"the gateway gave no answer (exit code {run.returncode}): {output}", EXIT_TURN_FAILED
        ) from None
    if run.returncode != 0 or reply.get("status") != "ok":
        error = reply.get("error") or {}
        said = str(error.get("message") if isinstance(error, dict) else error)
        raise ChatError(
            f"the turn failed ({reply.get('status', 'error')}): {said or run.stderr.strip()[-800:]}", EXIT_TURN_FAILED
        )
    payloads = (reply.get("result") or {}).get("payloads") or []
    texts = [str(p["text"]) for p in payloads if isinstance(p, dict) and p.get("text")]
    return "\n".join(texts) if texts else "(the agent answered with nothing to show)"
