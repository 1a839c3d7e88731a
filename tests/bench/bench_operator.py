"""Operator benchmark: N Customers at once, time to all Ready vs. a plain client's floor; steady writes and RSS.

    uv run python tests/bench/bench_operator.py --customers 1000 --steady-seconds 300
    uv run python tests/bench/bench_operator.py --customers 1000 --rounds 5   # median ratio of 5 pairs

Each phase gets a fresh local control plane. The floor: a plain client (32 threads) server-side-applies
the very objects the operator would render (namespace, Secret, ServiceAccount, quota, NetworkPolicy,
Deployment) for all N customers and waits for every Deployment to be Ready. The operator phase: N
Customers created at once by the same client, timed until every Customer reports Ready=True.
Steady state: the operator's own write counter (clawhost_operator_api_writes_total, which counts
every call of its only writing module) over the window, and its VmRSS sampled every 5 s.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import statistics
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import kubernetes

from clawhost_api.kube import KubeError, KubeHttp, load_config
from clawhost_api.tiers import get_tier
from clawhost_localcluster.environment import Environment, local_environment
from clawhost_localcluster.processes import ManagedProcess, free_port, wait_until
from clawhost_operator.children import (
    render_deployment,
    render_namespace,
    render_network_policy,
    render_quota,
    render_secret,
    render_service_account,
    secret_data,
)
from clawhost_operator.kube_writer import KubeWriter

REPO = Path(__file__).resolve().parents[2]
CONCURRENCY = 32
CUSTOMERS_PATH = "/apis/clawhost.dev/v1alpha1/customers"


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _api(env: Environment, kubeconfig: Path | None = None) -> kubernetes.client.ApiClient:
    client: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig or env.cluster.kubeconfig)
    )
    client.configuration.connection_pool_maxsize = CONCURRENCY * 2
    return kubernetes.client.ApiClient(client.configuration)


def _parallel(items: Iterable[Any], work: Callable[[Any], None]) -> None:
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        for _ in pool.map(work, items):
            pass


def _is_ready(kind: str, obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    if kind == "deployments":
        return bool(status.get("readyReplicas") == 1)
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


_WATCHED = {"deployments": ("/apis/apps/v1/deployments", "bench=floor"), "customers": (CUSTOMERS_PATH, "")}


def _get(api: kubernetes.client.ApiClient, path: str, query: list[tuple[str, str]]) -> Any:
    method, url, headers, _, _ = api.param_serialize("GET", path, query_params=query, auth_settings=["BearerToken"])
    return api.call_api(method, url, header_params=headers, _request_timeout=60)


def _key(obj: dict[str, Any]) -> str:
    return f"{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"


def _failed_creates(api: kubernetes.client.ApiClient) -> tuple[int, str]:
    """Events of controllers failing to create (a ReplicaSet's pod refused, say): count and one message."""
    items = json.loads(_get(api, "/api/v1/events", [("fieldSelector", "reason=FailedCreate")]).read())["items"]
    return sum(int(item.get("count") or 1) for item in items), (items[0]["message"] if items else "")


def _ready_now(api: kubernetes.client.ApiClient, kind: str) -> tuple[set[str], str]:
    """The objects Ready now, and the resourceVersion of that listing (to watch from)."""
    path, selector = _WATCHED[kind]
    listing = json.loads(_get(api, path, [("labelSelector", selector)]).read())
    return {_key(item) for item in listing["items"] if _is_ready(kind, item)}, listing["metadata"]["resourceVersion"]


def _wait_all(
    api: kubernetes.client.ApiClient, kind: str, total: int, started: float, timeout: float
) -> tuple[float, float]:
    """Watch until `total` objects are Ready; the time it took since `started`, and until half of them were.

    A watch, not polling: a LIST of 1,000 objects every half second costs the API server (and this
    process) CPU that both phases would otherwise pay on the machine they are measured on.
    """
    path, selector = _WATCHED[kind]
    ready, version = _ready_now(api, kind)
    last_report = 0.0
    half: float | None = None
    while len(ready) < total:
        query = [("labelSelector", selector), ("watch", "true"), ("allowWatchBookmarks", "true")]
        query += [("resourceVersion", version), ("timeoutSeconds", "10")]
        for line in _get(api, path, query).response:
            event = json.loads(line)
            obj = event["object"]
            version = obj["metadata"]["resourceVersion"]
            if event["type"] in ("ADDED", "MODIFIED") and _is_ready(kind, obj):
                ready.add(_key(obj))
            elif event["type"] == "ERROR":
                raise SystemExit(f"watch of {kind} failed: {obj.get('message')}")
            if half is None and len(ready) >= total / 2:
                half = time.monotonic() - started
            if len(ready) >= total:
                break
        elapsed = time.monotonic() - started
        if elapsed - last_report >= 10:
            _log(f"{kind}: {len(ready)}/{total} ready after {elapsed:.0f}s")
            last_report = elapsed
        if elapsed > timeout and len(ready) < total:
            raise SystemExit(f"timed out: {len(ready)}/{total} {kind} ready after {elapsed:.0f}s")
    elapsed = time.monotonic() - started
    return elapsed, elapsed if half is None else half


_STAGES = (
    ("namespaces", "/api/v1/namespaces"),
    ("deployments", "/apis/apps/v1/deployments"),
    ("replicasets", "/apis/apps/v1/replicasets"),
    ("pods", "/api/v1/pods"),
)
Pipeline = dict[str, tuple[float, float, float]]  # stage -> seconds after the first create: median, p90, last


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def _pipeline(api: kubernetes.client.ApiClient, started_wall: float) -> Pipeline:
    """When the customers' objects appeared, stage by stage (creation times have 1 s resolution).

    Shows where a phase spent its time: a stage that trails the one before it is a controller that fell behind.
    """
    started_second = math.floor(started_wall)  # the resolution of creation times
    stages: dict[str, list[float]] = {}
    for stage, path in _STAGES:
        items = json.loads(_get(api, path, []).read())["items"]
        namespaces = [(i, i["metadata"].get("namespace", i["metadata"]["name"])) for i in items]
        mine = [i for i, ns in namespaces if ns.startswith("customer-") and ns != "customer-canary"]
        stages[stage] = [_epoch(i["metadata"]["creationTimestamp"]) for i in mine]
        if stage == "pods":
            stages["pods Ready"] = [
                _epoch(c["lastTransitionTime"])
                for i in mine
                for c in (i.get("status") or {}).get("conditions") or []
                if c["type"] == "Ready" and c["status"] == "True"
            ]
    summary: Pipeline = {}
    for stage, times in stages.items():
        if times:
            times.sort()
            at = [times[min(len(times) - 1, int(q * len(times)))] - started_second for q in (0.5, 0.9)]
            summary[stage] = (at[0], at[1], times[-1] - started_second)
    return summary


def _terminated_watchers(api: kubernetes.client.ApiClient) -> int:
    """Watches the API server cut off because their client fell behind (each one sets a controller back)."""
    text = _get(api, "/metrics", []).read().decode()
    prefix = "apiserver_terminated_watchers_total{"
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)))


def _cpu_by_process(env: Environment, extra: dict[str, int] | None = None) -> dict[str, float]:
    """CPU seconds so far of each control-plane process, this benchmark's own process and `extra` ones."""
    usage = {"bench client": sum(os.times()[:2])}
    control_plane = env.cluster.control_plane
    for process in control_plane.processes if control_plane else []:
        if process.popen is not None:
            usage[process.name] = _cpu_seconds(process.popen.pid)
    for name, pid in (extra or {}).items():
        usage[name] = _cpu_seconds(pid)
    return usage


def _cpu_spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in after}


def floor_phase(names: list[str], timeout: float) -> tuple[dict[str, float], dict[str, float], Pipeline]:
    tier = get_tier("starter")
    with local_environment() as env:
        api = _api(env)
        writer = KubeWriter(KubeHttp(load_config(env.cluster.kubeconfig)))

        def create(name: str) -> None:
            data = secret_data("1:AA" + name, "chp_" + name, "gw_" + name, "{}")
            objects = [
                render_namespace(name, str(uuid.uuid4())),
                render_secret(name, data, ""),
                render_quota(name, tier),
                render_network_policy(name, "platform"),
                render_service_account(name),
                render_deployment(name, tier, "clawhost/openclaw-gateway:bench", 1, "h"),
            ]
            objects[0]["metadata"].pop("ownerReferences")
            objects[-1]["metadata"]["labels"]["bench"] = "floor"
            for obj in objects:
                writer.apply(obj)

        _log(f"floor: creating {len(names)} customers' objects directly")
        cpu_before = _cpu_by_process(env)
        started, started_wall = time.monotonic(), time.time()
        _parallel(names, create)
        elapsed, half = _wait_all(api, "deployments", len(names), started, timeout)
        cpu = _cpu_spent(cpu_before, _cpu_by_process(env))
        failed, example = _failed_creates(api)
        _log(f"floor: {failed} FailedCreate events{': e.g. ' + example if example else ''}")
        times = {"seconds_to_ready": elapsed, "seconds_to_half_ready": half}
        return {**times, "terminated_watchers": _terminated_watchers(api)}, cpu, _pipeline(api, started_wall)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _metric_sum(metrics_port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def _metric_lines(metrics_port: int, names: tuple[str, ...]) -> dict[str, float]:
    """Each labelled series of the given counters (the write breakdown: kind and verb; reconciles: trigger)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    series = (line.rsplit(" ", 1) for line in text.splitlines() if line.startswith(tuple(n + "{" for n in names)))
    return {key: float(value) for key, value in series if float(value)}


_BREAKDOWN = (
    "clawhost_operator_api_writes_total",
    "clawhost_operator_reconciles_total",
    "clawhost_operator_ignored_events_total",
)


def _writes(metrics_port: int) -> float:
    return _metric_sum(metrics_port, "clawhost_operator_api_writes_total")


def operator_phase(
    names: list[str], timeout: float, steady_seconds: float, extra_env: dict[str, str]
) -> tuple[dict[str, float], dict[str, float], Pipeline, dict[str, float]]:
    with local_environment() as env:
        cluster = env.cluster
        cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds" / "customer.crd.yaml"))
        cluster.wait_established("customers.clawhost.dev")
        for manifest in sorted((REPO / "deploy").glob("*.yaml")) + sorted(
            (REPO / "operator" / "deploy").glob("*.yaml")
        ):
            if "deployment" not in manifest.name:
                cluster.kubectl("apply", "-f", str(manifest))
        token = cluster.kubectl("create", "token", "clawhost-operator", "-n", "platform", "--duration=6h").stdout
        config = json.loads(json.dumps(__import__("yaml").safe_load(cluster.kubeconfig.read_text())))
        config["users"] = [{"name": "operator", "user": {"token": token.strip()}}]
        config["contexts"][0]["context"]["user"] = "operator"
        sa_kubeconfig = env.workdir / "operator.kubeconfig"
        sa_kubeconfig.write_text(json.dumps(config))
        api = _api(env)
        core = kubernetes.client.CoreV1Api(api)

        def bot_secret(name: str) -> None:
            token = base64.b64encode(b"1:AA" + name.encode()).decode()
            body = kubernetes.client.V1Secret(
                metadata=kubernetes.client.V1ObjectMeta(name=f"{name}-bot"), data={"token": token}
            )
            core.create_namespaced_secret("clawhost-secrets", body)

        _log("operator: creating bot-token Secrets (not timed)")
        _parallel(names, bot_secret)
        metrics_port, health_port = free_port(), free_port()
        operator = ManagedProcess(
            "operator",
            [sys.executable, "-m", "clawhost_operator"],
            env.workdir / "operator.log",
            env=dict(
                os.environ,
                KUBECONFIG=str(sa_kubeconfig),
                CLAWHOST_OPERATOR_METRICS_PORT=str(metrics_port),
                CLAWHOST_OPERATOR_HEALTH_PORT=str(health_port),
                **extra_env,
            ),
        )
        operator.start()
        try:

            def healthy() -> bool:
                with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/healthz", timeout=2) as r:
                    return bool(r.status == 200)

            wait_until("operator liveness", healthy, 60, operator)
            http = KubeHttp(load_config(env.cluster.kubeconfig))  # the floor's lean client: both phases alike

            def customer(name: str) -> None:
                body = {
                    "apiVersion": "clawhost.dev/v1alpha1",
                    "kind": "Customer",
                    "metadata": {"name": name},
                    "spec": {
                        "tier": "starter",
                        "billing": {"mode": "none"},
                        "telegram": {"botTokenSecretRef": {"name": f"{name}-bot"}, "allowedUserIds": [1]},
                    },
                }
                response = http.request("POST", CUSTOMERS_PATH, json.dumps(body).encode(), "application/json")
                if response.status != 201:
                    raise response.error()

            # Warm-up (untimed): one canary Customer to Ready proves the operator's watches are established;
            # right after the CRD is created the API server may still answer "storage is (re)initializing".
            bot_secret("canary")

            def canary_created() -> bool:
                try:
                    customer("canary")
                except KubeError as error:
                    if error.status == 503:  # the new CRD is not served yet
                        return False
                    raise
                return True

            wait_until("the API server to serve Customers", canary_created, 60, operator)
            wait_until(
                "the canary Customer to be Ready", lambda: len(_ready_now(api, "customers")[0]) >= 1, 120, operator
            )
            _log(f"operator: creating {len(names)} Customers")
            assert operator.popen is not None
            pid = operator.popen.pid
            cpu_before = _cpu_by_process(env, {"operator": pid})
            started, started_wall = time.monotonic(), time.time()
            _parallel(names, customer)
            elapsed, half = _wait_all(api, "customers", len(names) + 1, started, timeout)
            cpu_by_process = _cpu_spent(cpu_before, _cpu_by_process(env, {"operator": pid}))
            pipeline, terminated = _pipeline(api, started_wall), _terminated_watchers(api)
            failed, example = _failed_creates(api)
            _log(f"operator: {failed} FailedCreate events{': e.g. ' + example if example else ''}")
            writes_at_ready = _writes(metrics_port)
            reconciles_at_ready = _metric_sum(metrics_port, "clawhost_operator_reconciles_total")
            rss_at_ready = _rss_mb(pid)
            breakdown = _metric_lines(metrics_port, _BREAKDOWN)
            cpu_at_ready = _cpu_seconds(pid)
            _log(f"all Ready after {elapsed:.1f}s; steady state for {steady_seconds:.0f}s")
            # Settle: the last Ready status writes may still be in flight when the count reaches N.
            settle_until = time.monotonic() + 15
            while time.monotonic() < settle_until:
                time.sleep(1)
            writes_before = _writes(metrics_port)
            peak_rss = 0.0
            steady_until = time.monotonic() + steady_seconds
            while time.monotonic() < steady_until:
                time.sleep(5)  # sampling interval of the measurement
                peak_rss = max(peak_rss, _rss_mb(pid))
            return (
                {
                    "seconds_to_ready": elapsed,
                    "seconds_to_half_ready": half,
                    "writes_until_ready": writes_at_ready,
                    "steady_writes": _writes(metrics_port) - writes_before,
                    "rss_at_ready_mb": rss_at_ready,
                    "cpu_at_ready_s": cpu_at_ready,
                    "reconciles_until_ready": reconciles_at_ready,
                    "steady_cpu_s": _cpu_seconds(pid) - cpu_at_ready,
                    "peak_steady_rss_mb": peak_rss,
                    "final_rss_mb": _rss_mb(pid),
                    "terminated_watchers": terminated,
                },
                cpu_by_process,
                pipeline,
                breakdown,
            )
        finally:
            operator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--steady-seconds", type=float, default=300)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument(
        "--operator-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the operator process (repeatable), e.g. CLAWHOST_OPERATOR_WORKERS=8",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="floor and operator phase pairs (fresh control planes each); the ratio is their median, the "
        "steady state is measured after the last round's operator phase",
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    floor_names = [f"f{index:05d}" for index in range(args.customers)]
    names = [f"b{index:05d}" for index in range(args.customers)]
    extra_env = dict(item.split("=", 1) for item in args.operator_env)
    rounds: list[tuple[float, float]] = []
    for number in range(1, args.rounds + 1):
        _log(f"round {number} of {args.rounds}")
        floor_result, floor_cpu, floor_pipeline = floor_phase(floor_names, args.timeout)
        floor = floor_result["seconds_to_ready"]
        _log(f"floor: all Ready after {floor:.1f}s")
        steady = args.steady_seconds if number == args.rounds else 0.0
        result, operator_cpu, operator_pipeline, breakdown = operator_phase(names, args.timeout, steady, extra_env)
        rounds.append((floor, result["seconds_to_ready"]))
        _log(f"round {number}: floor {floor:.1f}s, operator {rounds[-1][1]:.1f}s, {rounds[-1][1] / floor:.2f}x")
    n = args.customers
    print()
    if extra_env:
        print("operator environment: " + " ".join(f"{k}={v}" for k, v in sorted(extra_env.items())))
    if args.rounds > 1:
        print("| round | floor (s) | operator (s) | ratio |")
        print("|---|---|---|---|")
        for number, (floor_s, operator_s) in enumerate(rounds, 1):
            print(f"| {number} | {floor_s:.1f} | {operator_s:.1f} | {operator_s / floor_s:.2f}x |")
        print()
        print(f"Rows below: the last round (ratio: the median of all {args.rounds}).")
    ratio = statistics.median(operator_s / floor_s for floor_s, operator_s in rounds)
    print(f"| metric (N={n}) | value | goal |")
    print("|---|---|---|")
    print(f"| floor: plain client, all Deployments Ready (s) | {floor:.1f} | |")
    print(f"| operator: all Customers Ready (s) | {result['seconds_to_ready']:.1f} | |")
    ratio_label = "ratio operator / floor" + (f", median of {args.rounds} rounds" if args.rounds > 1 else "")
    print(f"| {ratio_label} | {ratio:.2f}x | <= 1.5x |")
    halves = f"{floor_result['seconds_to_half_ready']:.1f} / {result['seconds_to_half_ready']:.1f}"
    print(f"| half Ready (s): floor / operator | {halves} | |")
    per_customer = result["writes_until_ready"] / n
    writes = f"{result['writes_until_ready']:.0f} ({per_customer:.1f}/customer)"
    print(f"| operator API writes until all Ready | {writes} | |")
    reconciles = f"{result['reconciles_until_ready']:.0f} ({result['reconciles_until_ready'] / n:.1f}/customer)"
    print(f"| operator reconciles until all Ready | {reconciles} | |")
    print(f"| operator CPU time from its start until all Ready (s) | {result['cpu_at_ready_s']:.1f} | |")
    print(f"| operator RSS when all Ready (MB) | {result['rss_at_ready_mb']:.0f} | |")
    if args.steady_seconds >= 5:  # RSS is sampled every 5 s: a shorter window has no sample
        window = f"{args.steady_seconds:.0f} s steady state"
        print(f"| operator API writes in {window} | {result['steady_writes']:.0f} | 0 |")
        print(f"| operator CPU time in steady state (s) | {result['steady_cpu_s']:.1f} | |")
        peak = f"{result['peak_steady_rss_mb']:.0f}"
        print(f"| operator peak RSS in steady state, sampled every 5 s (MB) | {peak} | <= 200 |")
        print(f"| operator RSS at the end of the steady state (MB) | {result['final_rss_mb']:.0f} | <= 200 |")
    else:
        print(f"| steady state (writes, RSS) | not measured: --steady-seconds {args.steady_seconds:g} | |")
    print()
    print("CPU seconds from the first create until all Ready, by process (2 cores: at most 2 s per second)")
    print("| process | floor | operator phase |")
    print("|---|---|---|")
    for name in sorted(set(floor_cpu) | set(operator_cpu), key=lambda n: -operator_cpu.get(n, 0.0)):
        print(f"| {name} | {floor_cpu.get(name, 0.0):.1f} | {operator_cpu.get(name, 0.0):.1f} |")
    totals = sum(floor_cpu.values()), sum(operator_cpu.values())
    print(f"| all | {totals[0]:.1f} | {totals[1]:.1f} |")
    print()
    print("Pipeline: seconds after the first create by which half / 90% / all of the objects existed")
    print("| stage | floor | operator phase |")
    print("|---|---|---|")
    phases = (floor_pipeline, operator_pipeline)
    for stage in operator_pipeline:
        cells = [" / ".join(f"{t:.0f}" for t in p[stage]) if stage in p else "" for p in phases]
        print(f"| {stage} | {cells[0]} | {cells[1]} |")
    watchers = f"{floor_result['terminated_watchers']:.0f} | {result['terminated_watchers']:.0f}"
    print(f"| watches cut off by the API server (client too slow) | {watchers} |")
    print()
    print("The operator's counters when all were Ready (the last round; the canary included)")
    print("| series | count | per customer |")
    print("|---|---|---|")
    for series, count in sorted(breakdown.items()):
        print(f"| {series.removeprefix('clawhost_operator_')} | {count:.0f} | {count / n:.2f} |")


if __name__ == "__main__":
    main()
