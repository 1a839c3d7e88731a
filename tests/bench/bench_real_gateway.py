"""Real OpenClaw gateways on the real node: Customer create -> Ready with the gateway image cold (just imported into
containerd) and warm, one gateway's memory against its tier's request and limit (idle and after one turn), and how
many Starter gateways fit on this machine before the first one is refused, evicted or killed for memory.

The peer, measured in the same run: the floor, a pod of the same image, resources, security context and probes as
the operator renders, running a Node HTTP server of a few lines instead of OpenClaw (so no Customer, no operator,
no isolation gate): what Kubernetes and the node cost before OpenClaw starts.

uv run python tests/bench/bench_real_gateway.py [--max-gateways 12]

Takes the machine's real node (waits for its lock); prints a table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from clawhost_api.customer import namespace_for
from clawhost_api.tiers import get_tier
from clawhost_localcluster.environment import running_postgres, running_redis
from clawhost_localcluster.images import ensure_gateway_image
from clawhost_localcluster.node_environment import RealNodeCluster, running_real_node_cluster
from clawhost_localcluster.platform import get_json
from clawhost_localcluster.real_platform import RealPlatform, progress, running_real_platform
from clawhost_localcluster.waiting import eventually
from clawhost_operator.children import render_deployment
from clawhost_operator.openclaw_config import GATEWAY_PORT

USER = 424242


def _mib(value: int) -> str:
    return f"{value / 2**20:.0f} MiB"


def _quantity_bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(quantity.removesuffix(suffix)) * factor
    return int(quantity)


def _create_until_ready(platform: RealPlatform, name: str) -> float:
    started = time.monotonic()
    platform.create_customer(USER, name=name)
    platform.customers.wait_ready(name, timeout=900)
    return time.monotonic() - started


FLOOR_SERVER = "require('http').createServer((q,s)=>{s.end('ok')}).listen(PORT,()=>console.log('serving'))"


def _floor_create_until_ready(platform: RealPlatform, reference: str) -> float:
    """The peer: the gateway's pod as the operator renders it, with a trivial Node server for OpenClaw."""
    deployment = render_deployment("bench-floor", get_tier("starter"), reference, 1, "floor")
    spec = deployment["spec"]["template"]["spec"]
    [gateway] = spec["containers"]
    gateway["command"] = ["node", "-e", FLOOR_SERVER.replace("PORT", str(GATEWAY_PORT))]
    gateway.pop("args", None)
    gateway["env"] = [e for e in gateway["env"] if "valueFrom" not in e]
    gateway["volumeMounts"] = [m for m in gateway["volumeMounts"] if m["name"] != "config"]
    spec["initContainers"] = []
    spec["volumes"] = [v for v in spec["volumes"] if v["name"] != "config"]
    spec["serviceAccountName"] = "default"
    namespace = platform.node_cluster.fresh_namespace("bench-floor")
    deployment["metadata"]["namespace"] = namespace
    started = time.monotonic()
    platform.cluster.kubectl("apply", "-f", "-", stdin=json.dumps(deployment))
    platform.cluster.kubectl(
        "wait",
        "--for=condition=Available",
        f"deployment/{deployment['metadata']['name']}",
        "-n",
        namespace,
        "--timeout=900s",
    )
    elapsed = time.monotonic() - started
    platform.cluster.kubectl("delete", "namespace", namespace, "--wait=false")
    return elapsed


def _memory(platform: RealPlatform, customer: str) -> dict[str, int]:
    """The container's cgroup: usage (what the limit is checked against) and its resident memory (rss)."""
    script = (
        "const fs=require('fs');const d='/sys/fs/cgroup/memory/';const stat={};"
        "for(const l of fs.readFileSync(d+'memory.stat','utf8').split('\\n')){const [k,v]=l.split(' ');stat[k]=+v}"
        "console.log(JSON.stringify({usage:+fs.readFileSync(d+'memory.usage_in_bytes','utf8'),"
        "rss:stat.total_rss,cache:stat.total_cache}))"
    )
    result = platform.node_in_pod(customer, script)
    return dict(json.loads(result.stdout))


def _turn(platform: RealPlatform, customer: str) -> float:
    api, bot = platform.telegram.api, platform.bots[customer]
    started = time.monotonic()
    api.send_dm(bot.token, USER, "hello agent")
    api.wait_for_message(bot.token, USER, timeout=600)
    return time.monotonic() - started


def _what_stopped(platform: RealPlatform, name: str) -> str | None:
    """Why the newest gateway is not running, if it is not: unschedulable, evicted or killed for memory."""
    pods = get_json(platform.cluster, "pods", "-n", namespace_for(name)) or {"items": []}
    for pod in pods["items"]:
        status: dict[str, Any] = pod.get("status") or {}
        if status.get("reason") == "Evicted":
            return f"evicted: {status.get('message')}"
        for condition in status.get("conditions") or []:
            if condition["type"] == "PodScheduled" and condition["status"] == "False":
                return f"not scheduled: {condition.get('message')}"
        for container in status.get("containerStatuses") or []:
            last = (container.get("lastState") or {}).get("terminated") or {}
            if last.get("reason") == "OOMKilled":
                return "OOMKilled"
    return None


def _any_oom(platform: RealPlatform, names: list[str]) -> str | None:
    for name in names:
        why = _what_stopped(platform, name)
        if why is not None:
            return f"{name}: {why}"
    return None


def _measure(platform: RealPlatform, running: RealNodeCluster, max_gateways: int) -> list[tuple[str, str]]:
    tier = get_tier("starter")
    rows: list[tuple[str, str]] = []
    # Cold: the image is written (cached) but not in containerd until just before the first Customer.
    image = ensure_gateway_image()
    progress("cold: removing the gateway image from containerd, then import + create -> Ready")
    subprocess.run(
        ["ctr", "--address", str(running.node.containerd.socket), "-n", "k8s.io", "images", "rm", image.reference],
        check=False,
        capture_output=True,
    )
    started = time.monotonic()
    running.node.import_image(image)
    imported = time.monotonic() - started
    cold = _create_until_ready(platform, "bench-cold")
    rows.append(("create -> Ready, image cold (s; import before it)", f"{cold:.1f} (+{imported:.1f})"))
    warm = _create_until_ready(platform, "bench-warm")
    rows.append(("create -> Ready, image warm (s)", f"{warm:.1f}"))
    progress("peer: the same pod with a trivial Node server for OpenClaw -> Available")
    floor = _floor_create_until_ready(platform, image.reference)
    rows.append(("peer: same pod, trivial server -> Available (s)", f"{floor:.1f}"))
    idle = _memory(platform, "bench-warm")
    turn = _turn(platform, "bench-warm")
    after = _memory(platform, "bench-warm")
    request, limit = _quantity_bytes(tier.memory_request), _quantity_bytes(tier.memory_limit)
    rows.append(("one DM answered over the Bot API (s)", f"{turn:.1f}"))
    rows.append(("gateway memory idle: cgroup usage / rss", f"{_mib(idle['usage'])} / {_mib(idle['rss'])}"))
    rows.append(("gateway memory after one turn: usage / rss", f"{_mib(after['usage'])} / {_mib(after['rss'])}"))
    ratio = after["rss"] / request
    rows.append(("starter request / limit", f"{_mib(request)} / {_mib(limit)} (rss / request {ratio:.2f})"))
    names = ["bench-cold", "bench-warm"]
    stopped = None
    while len(names) < max_gateways and stopped is None:
        name = f"bench-{len(names) + 1}"
        names.append(name)
        platform.create_customer(USER, name=name)
        progress(f"gateway {len(names)}: waiting for Ready or for one to be refused, evicted or OOMKilled")

        def settled(latest: str = name) -> str | None:
            problem = _any_oom(platform, names)
            if problem is not None:
                return problem
            customer = platform.customers.get(latest) or {}
            ready = [c for c in (customer.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"]
            return "ready" if ready and ready[0]["status"] == "True" else None

        outcome = eventually(settled, timeout=900, interval=2, what=f"{name} Ready or a gateway stopped")
        stopped = None if outcome == "ready" else outcome
    fitted = len(names) - (1 if stopped else 0)
    rows.append(("Starter gateways Ready together", f"{fitted} (then: {stopped or 'limit of the run'})"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-gateways", type=int, default=12)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="clawhost-bench-real-") as root,
        running_redis(Path(root) / "redis") as redis_server,
        running_postgres(Path(root) / "postgres") as postgres,
        running_real_node_cluster(Path(root) / "node") as running,
        running_real_platform(
            running, redis_server.port, postgres.port, postgres.database, Path(root) / "platform"
        ) as platform,
    ):
        rows = _measure(platform, running, args.max_gateways)
    width = max(len(label) for label, _ in rows)
    print(f"\n{'metric'.ljust(width)} | value")
    for label, value in rows:
        print(f"{label.ljust(width)} | {value}")


if __name__ == "__main__":
    main()
