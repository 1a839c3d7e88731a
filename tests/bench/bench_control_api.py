"""Control API benchmark: the dashboard read (`GET /agent`) at 100 concurrency with 1,000 Customers.

    uv run python tests/bench/bench_control_api.py [--customers 1000] [--seconds 20] [--connections 100]

A fresh local control plane, Redis and PostgreSQL (the harness); the Customer CRD and the control
API's RBAC installed (no operator: nothing needs to reconcile). N Customers are created, and N users
each owning one (password hashes, sessions and RS256 access tokens made the way the app makes them).
The app runs in one uvicorn worker process as its ServiceAccount; `wrk` (one thread, C) sends
`GET /agent` with each request's bearer token taken round-robin from the N users.

Two variants, measured the same way in the same run:
  clawhost   the app as shipped: the Customer comes from the watch-fed cache.
  naive      the same app, but `GET /agent` reads the Customer from the API server per request.
For each, the API server's own counter (apiserver_request_total for customers, from /metrics) is
read before and after the measured window, so the table shows API-server reads per request.

The measuring part holds an exclusive fcntl lock on /tmp/clawhost-bench.lock so benchmarks of
different engineers on this 2-core machine never overlap.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import psycopg
import yaml
from fastapi import FastAPI, HTTPException, status

from clawhost_api.customer import PLATFORM_NAMESPACE
from clawhost_control_api.api.deps import CurrentUser, Kube
from clawhost_control_api.api.routes.agent import AgentView, view_of
from clawhost_control_api.core.passwords import hash_password
from clawhost_control_api.core.security import KeyPair, TokenIssuer
from clawhost_control_api.db.migrations import migrate
from clawhost_control_api.main import create_app
from clawhost_localcluster.environment import Environment, local_environment
from clawhost_localcluster.pki import write_jwt_keys
from clawhost_localcluster.processes import ManagedProcess, free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = Path(__file__).resolve().parent
LOCK_FILE = Path("/tmp/clawhost-bench.lock")
SERVICE_ACCOUNT = "clawhost-control-api"
VARIANT_ENV = "CLAWHOST_BENCH_VARIANT"
CREATE_CONCURRENCY = 32

# wrk: one request per call, token i % N; `done` prints the numbers as one JSON line.
WRK_SCRIPT = """
local tokens = {}
local i = 0
init = function(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = "Bearer " .. line end
end
request = function()
  i = i + 1
  return wrk.format("GET", "/agent", { Authorization = tokens[(i % #tokens) + 1] })
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d,'
    .. ' "non_2xx": %d, "socket_errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- the peer, served by the same uvicorn command ------------------------------------------------


def app_for_bench() -> FastAPI:
    """uvicorn factory: the shipped app, or (naive) the same app whose GET /agent asks the API server."""
    app = create_app()
    if os.environ.get(VARIANT_ENV) != "naive":
        return app

    async def read_agent_from_api_server(user: CurrentUser, kube: Kube) -> AgentView:
        if user.customer_name is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="you have no agent yet")
        return view_of(await kube.get_customer(user.customer_name))

    app.router.add_api_route("/agent", read_agent_from_api_server, methods=["GET"])
    # Routes match in order: the naive read goes before the cached one.
    app.router.routes.insert(0, app.router.routes.pop())
    return app


# --- setup ---------------------------------------------------------------------------------------


def _install(env: Environment) -> Path:
    """CRD + the control API's namespaces and RBAC; returns a kubeconfig acting as its ServiceAccount."""
    kubectl = env.cluster.kubectl
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds" / "customer.crd.yaml"))
    env.cluster.wait_established("customers.clawhost.dev")
    deploy = REPO / "control_api" / "deploy"
    kubectl("apply", "-f", str(REPO / "deploy" / "00-namespaces.yaml"), "-f", str(deploy / "10-rbac.yaml"))
    token = kubectl("create", "token", SERVICE_ACCOUNT, "-n", PLATFORM_NAMESPACE, "--duration=6h").stdout.strip()
    config = yaml.safe_load(env.cluster.kubeconfig.read_text())
    config["users"] = [{"name": "api", "user": {"token": token}}]
    config["contexts"] = [{"name": "api", "context": {"cluster": config["clusters"][0]["name"], "user": "api"}}]
    config["current-context"] = "api"
    path = env.workdir / "api.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def _create_customers(env: Environment, count: int) -> list[str]:
    api_client: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(env.cluster.kubeconfig)
    )
    api_client.configuration.connection_pool_maxsize = CREATE_CONCURRENCY * 2
    custom = kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(api_client.configuration))
    names = [f"b{i:05d}{uuid.uuid4().hex[:6]}" for i in range(count)]
    tiers = ("starter", "pro", "team")

    def create(index_name: tuple[int, str]) -> None:
        index, name = index_name
        body = {
            "apiVersion": "clawhost.dev/v1alpha1",
            "kind": "Customer",
            "metadata": {"name": name},
            "spec": {
                "tier": tiers[index % 3],
                "telegram": {"botTokenSecretRef": {"name": f"bot-{name}"}, "allowedUserIds": [1000 + index]},
                "billing": {"mode": "stripe"},
            },
        }
        custom.create_cluster_custom_object("clawhost.dev", "v1alpha1", "customers", body, _preload_content=False)

    with ThreadPoolExecutor(CREATE_CONCURRENCY) as pool:
        list(pool.map(create, enumerate(names)))
    return names


def _users(database_url: str, names: list[str], private: Path, public: Path) -> list[str]:
    """One user per Customer with an open session; returns their access tokens (as the app issues them)."""
    issuer = TokenIssuer(
        KeyPair.from_files(private, public, "clawhost-1"),
        "https://clawhost.dev",
        "clawhost-dashboard",
        timedelta(hours=1),
        timedelta(days=7),
    )
    password_hash = hash_password("benchmark password")  # one hash: argon2 is not what is measured
    tokens: list[str] = []
    users, sessions = [], []
    for name in names:
        user_id, session_id = uuid.uuid4(), uuid.uuid4()
        users.append((user_id, f"{name}@bench.example", password_hash, name))
        sessions.append((session_id, user_id))
        tokens.append(issuer.encode(issuer.issue(str(user_id), str(session_id), "access")))
    with psycopg.connect(database_url) as conn, conn.cursor() as cursor:
        cursor.executemany("INSERT INTO users (id, email, password_hash, customer_name) VALUES (%s, %s, %s, %s)", users)
        cursor.executemany("INSERT INTO sessions (id, user_id) VALUES (%s, %s)", sessions)
    return tokens


def _fresh_database(dsn: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    return psycopg.conninfo.make_conninfo(dsn, dbname=name)


# --- measuring -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    variant: str
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int
    api_reads: int  # GET/LIST of customers the API server served during the window
    api_requests: int  # every customers request (incl. watch) during the window

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


_METRIC = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$")


def _customer_requests(env: Environment) -> tuple[int, int]:
    """(GET+LIST, all verbs) of clawhost.dev customers the API server has served so far."""
    text = env.cluster.kubectl("get", "--raw", "/metrics").stdout
    reads = total = 0
    for line in text.splitlines():
        match = _METRIC.match(line)
        if not match or 'resource="customers"' not in match["labels"]:
            continue
        value = int(float(match["value"]))
        total += value
        if 'verb="GET"' in match["labels"] or 'verb="LIST"' in match["labels"]:
            reads += value
    return reads, total


@contextmanager
def _app_process(variant: str, env: Environment, settings_env: dict[str, str], log: Path) -> Iterator[str]:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "--app-dir",
        str(BENCH_DIR),
        "bench_control_api:app_for_bench",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    process = ManagedProcess(
        f"control-api-{variant}", argv, log, env={**os.environ, **settings_env, VARIANT_ENV: variant}
    )
    url = f"http://127.0.0.1:{port}"
    process.start()
    try:
        wait_until(
            "the control API",
            lambda: httpx.get(f"{url}/.well-known/jwks.json", timeout=2).status_code == 200,
            120,
            process,
        )
        yield url
    finally:
        process.stop()


def _measure(
    variant: str, env: Environment, url: str, token_file: Path, script: Path, seconds: int, connections: int
) -> Result:
    # Correctness first: a user reads their own agent.
    first_token = token_file.read_text().splitlines()[0]
    probe = httpx.get(f"{url}/agent", headers={"Authorization": f"Bearer {first_token}"}, timeout=10)
    assert probe.status_code == 200, probe.text
    wrk = ["wrk", "-t1", f"-c{connections}", "--timeout", "10s", "-s", str(script)]
    # Warm-up: connections, the DB pool and the interpreter's caches.
    subprocess.run([*wrk, "-d3s", url, "--", str(token_file)], check=True, capture_output=True, text=True)
    reads_before, total_before = _customer_requests(env)
    out = subprocess.run(
        [*wrk, f"-d{seconds}s", url, "--", str(token_file)], check=True, capture_output=True, text=True
    ).stdout
    reads_after, total_after = _customer_requests(env)
    line = next(x for x in out.splitlines() if x.startswith("WRK "))
    data: dict[str, Any] = json.loads(line.removeprefix("WRK "))
    return Result(
        variant=variant,
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        non_2xx=data["non_2xx"],
        socket_errors=data["socket_errors"],
        # The two /metrics scrapes are not customers requests; nothing else reads customers here.
        api_reads=reads_after - reads_before,
        api_requests=total_after - total_before,
    )


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _log(f"another benchmark holds {path}; waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _table(results: list[Result], customers: int, connections: int) -> str:
    head = (
        f"GET /agent, {customers} Customers, {customers} users, {connections} connections, "
        "1 uvicorn worker, wrk -t1 (2-core machine shared with the cluster)"
    )
    rows = [
        f"| {'variant':<9} | {'requests':>8} | {'RPS':>7} | {'p50 ms':>7} | {'p90 ms':>7} | {'p99 ms':>7} |"
        f" {'max ms':>7} | {'non-2xx':>7} | {'API GET+LIST':>12} | {'per request':>11} |",
        f"|{'-' * 11}|{'-' * 10}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 14}|{'-' * 13}|",
    ]
    for r in results:
        rows.append(
            f"| {r.variant:<9} | {r.requests:>8} | {r.rps:>7.0f} | {r.p50_ms:>7.1f} | {r.p90_ms:>7.1f} |"
            f" {r.p99_ms:>7.1f} | {r.max_ms:>7.1f} | {r.non_2xx + r.socket_errors:>7} | {r.api_reads:>12} |"
            f" {r.api_reads / max(r.requests, 1):>11.3f} |"
        )
    return "\n".join([head, *rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=20, help="measured window per variant")
    parser.add_argument("--connections", type=int, default=100)
    args = parser.parse_args()

    with local_environment() as env:
        workdir = env.workdir
        started = time.monotonic()
        kubeconfig = _install(env)
        names = _create_customers(env, args.customers)
        _log(f"{len(names)} Customers created in {time.monotonic() - started:.1f}s")
        database_url = _fresh_database(env.postgres.dsn)
        migrate(database_url)
        keys = write_jwt_keys(workdir)
        private, public = keys.private_file, keys.public_file
        tokens = _users(database_url, names, private, public)
        token_file = workdir / "tokens.txt"
        token_file.write_text("\n".join(tokens) + "\n")
        script = workdir / "get_agent.lua"
        script.write_text(WRK_SCRIPT)
        settings_env = {
            "CLAWHOST_API_DATABASE_URL": database_url,
            "CLAWHOST_API_REDIS_URL": env.redis.url,
            "CLAWHOST_API_JWT_PRIVATE_KEY_FILE": str(private),
            "CLAWHOST_API_JWT_PUBLIC_KEY_FILE": str(public),
            "CLAWHOST_API_KUBECONFIG": str(kubeconfig),
        }
        results: list[Result] = []
        with _exclusive(LOCK_FILE):
            for variant in ("clawhost", "naive"):
                log = workdir / f"api-{variant}.log"
                with _app_process(variant, env, settings_env, log) as url:
                    _log(f"measuring {variant} for {args.seconds}s")
                    results.append(_measure(variant, env, url, token_file, script, args.seconds, args.connections))
        print(_table(results, args.customers, args.connections), flush=True)
        ours = results[0]
        print(
            f"clawhost: {ours.api_reads} API-server reads of Customers during {ours.requests} requests "
            f"({ours.api_reads / max(ours.requests, 1):.4f} per request; all customers requests incl. watch: "
            f"{ours.api_requests})",
            flush=True,
        )
        if ours.api_reads / max(ours.requests, 1) > 0.001:
            raise SystemExit("the cached read hit the API server per request")


if __name__ == "__main__":
    main()
