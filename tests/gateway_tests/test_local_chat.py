"""`make chat` and `make up`'s in-cluster token proxy, on the real node.

The platform fixture runs the token proxy through `start_token_proxy_in_cluster`, the function `make up` calls on
the real node; these tests read back what it made. `chat` talks to a Customer's real gateway in its pod, through
that proxy, and says clearly why it cannot when it cannot.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from clawhost_localcluster.agent_chat import (
    EXIT_NO_CUSTOMER,
    EXIT_NO_REAL_GATEWAY,
    EXIT_NOT_READY,
    EXIT_NOT_RUNNING,
)
from clawhost_localcluster.fake_kimi import UPSTREAM_KEY
from clawhost_localcluster.in_cluster_proxy import render_token_proxy
from clawhost_localcluster.platform import gateway_secret, get_json
from clawhost_localcluster.real_platform import RealPlatform, progress
from clawhost_localcluster.waiting import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.node, pytest.mark.timeout(2400)]

READY_TIMEOUT = 600
USER = 626262


@pytest.fixture(scope="module")
def chatty(real_platform: RealPlatform) -> Iterator[str]:
    """A Ready Customer to talk to, deleted after the module (its gateway's memory goes back to the others)."""
    name = real_platform.create_customer(USER, name=f"chat-{uuid.uuid4().hex[:6]}")
    progress(f"created {name}; waiting for its real gateway")
    real_platform.customers.wait_ready(name, timeout=READY_TIMEOUT)
    yield name
    real_platform.cluster.kubectl("delete", "customer", name, "--wait=false", check=False)


def _run_dir(tmp_path: Path, platform: RealPlatform, node: str) -> Path:
    """What `make up` leaves for `chat` to find: its state file and a live supervisor pid (this test's own)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir(parents=True)
    state = {"kubeconfig": str(platform.cluster.kubeconfig), "kubectl": str(platform.cluster.kubectl_path)}
    (run_dir / "state.json").write_text(json.dumps({**state, "node": node}))
    (run_dir / "supervisor.pid").write_text(str(os.getpid()))
    return run_dir


def _chat(run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clawhost_localcluster", "chat", *args],
        env=dict(os.environ, CLAWHOST_RUN_DIR=str(run_dir)),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def _ledger(platform: RealPlatform, customer: str) -> list[dict[str, Any]]:
    with (
        psycopg.connect(platform.outside.postgres_dsn) as conn,
        conn.cursor(row_factory=psycopg.rows.dict_row) as cursor,
    ):
        return cursor.execute("SELECT * FROM token_ledger WHERE customer = %s", (customer,)).fetchall()


def test_chat_answers_from_the_customers_real_gateway_through_the_proxy_and_is_metered(
    real_platform: RealPlatform, chatty: str, tmp_path: Path
) -> None:
    kimi = real_platform.outside.kimi
    before = len(kimi.requests)
    rows_before = len(_ledger(real_platform, chatty))
    said = f"hello from the terminal {uuid.uuid4().hex[:8]}"
    run_dir = _run_dir(tmp_path, real_platform, "real (test)")

    chat = _chat(run_dir, chatty, said)

    assert chat.returncode == 0, chat.stderr
    assert chat.stdout.strip() == "Hello from fake Kimi"
    # The model saw the message, sent by the gateway of this customer (its session, its model) through the proxy.
    [request] = [r for r in kimi.requests[before:] if said in json.dumps(r)]
    assert request["model"] == "kimi-k2.5"
    # The proxy metered it under this customer: it authenticated the pod's proxy token as this customer's.
    rows = eventually(lambda: _ledger(real_platform, chatty)[rows_before:], timeout=60, what="the ledger row")
    assert rows[0]["prompt_tokens"] > 1000, "the gateway's system prompt went through the proxy"
    token = gateway_secret(real_platform.customers, chatty)["proxy-token"]
    assert token not in chat.stdout + chat.stderr, "the proxy token is not shown"
    progress(f"{chatty}: chat answered; {rows[0]['prompt_tokens']} prompt tokens metered")

    # A second message continues the same conversation (its own session, `SESSION_KEY`): the model sees the first.
    again = _chat(run_dir, chatty, "and again")
    assert again.returncode == 0, again.stderr
    [second] = [r for r in kimi.requests[before:] if "and again" in json.dumps(r)]
    assert said in json.dumps(second["messages"])


def test_chat_says_why_it_cannot_talk(real_platform: RealPlatform, chatty: str, tmp_path: Path) -> None:
    run_dir = _run_dir(tmp_path, real_platform, "real (test)")

    missing = _chat(run_dir, "nobody-here", "hi")
    assert missing.returncode == EXIT_NO_CUSTOMER
    assert "no Customer named 'nobody-here'" in missing.stderr

    # A Customer whose pod can never be created stays Provisioning: chat says what it is doing.
    stuck = real_platform.customers.new_name()
    real_platform.customers.block_pods(stuck)
    real_platform.customers.create(name=stuck)
    real_platform.customers.wait_for(stuck, lambda c: bool(c.get("status", {}).get("conditions")), "a status")
    waiting = _chat(run_dir, stuck, "hi")
    assert waiting.returncode == EXIT_NOT_READY
    assert f"Customer '{stuck}' is not Ready yet (phase Provisioning;" in waiting.stderr, waiting.stderr

    kwok = _run_dir(tmp_path / "kwok", real_platform, "kwok nodes (CLAWHOST_LOCAL_NODE=kwok): pods are simulated")
    on_kwok = _chat(kwok, chatty, "hi")
    assert on_kwok.returncode == EXIT_NO_REAL_GATEWAY
    assert "kwok" in on_kwok.stderr

    (run_dir / "state.json").unlink()
    not_running = _chat(run_dir, chatty, "hi")
    assert not_running.returncode == EXIT_NOT_RUNNING
    assert "not running (start it with `make up`)" in not_running.stderr


def _as_shipped(live: Any, shipped: Any) -> bool:
    """Whether `live` says everything `shipped` says (objects may have more keys: defaults the API server added)."""
    if isinstance(shipped, dict):
        return isinstance(live, dict) and all(_as_shipped(live.get(key), value) for key, value in shipped.items())
    if isinstance(shipped, list):
        return isinstance(live, list) and len(live) == len(shipped) and all(map(_as_shipped, live, shipped))
    return bool(live == shipped)


def _secret_data(platform: RealPlatform, name: str) -> dict[str, str]:
    secret = get_json(platform.cluster, "secret", name, "-n", "platform")
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def test_the_token_proxy_runs_in_the_cluster_as_make_up_deploys_it(real_platform: RealPlatform, chatty: str) -> None:
    deployment = get_json(real_platform.cluster, "deployment", "token-proxy", "-n", "platform")
    [running] = deployment["spec"]["template"]["spec"]["containers"]
    [shipped] = next(d for d in render_token_proxy(None) if d["kind"] == "Deployment")["spec"]["template"]["spec"][
        "containers"
    ]
    # proxy/deploy/'s container but for the upstream: image, args, probes, security, mounts as shipped (the API
    # server adds its defaults, such as a probe's scheme; everything the file says is there unchanged).
    for field in ("image", "args", "ports", "readinessProbe", "livenessProbe", "securityContext", "volumeMounts"):
        assert _as_shipped(running[field], shipped[field]), f"{field}: {running[field]} is not {shipped[field]}"
    env = {v["name"]: v.get("value") for v in running["env"]}
    assert env["CLAWHOST_PROXY_UPSTREAM_BASE_URL"] == real_platform.outside.upstream_url
    assert deployment["status"]["readyReplicas"] == 1
    # Its Secrets as the installer writes them: the upstream key, and the stores on the node's address.
    assert _secret_data(real_platform, "token-proxy-upstream") == {"api-key": UPSTREAM_KEY}
    stores = _secret_data(real_platform, "token-proxy-stores")
    assert stores["redis-url"] == f"redis://{real_platform.node_ip}:{real_platform.outside.redis.port}/0"
    assert stores["postgres-dsn"].startswith(f"postgresql://postgres@{real_platform.node_ip}:")
    # The proxy is the pod's process on the real node, and its Service answers with the customer's token.
    [pod] = get_json(real_platform.cluster, "pods", "-n", "platform", "-l", "app.kubernetes.io/name=token-proxy")[
        "items"
    ]
    assert pod["spec"]["nodeName"] == real_platform.node_cluster.node.name
    token = gateway_secret(real_platform.customers, chatty)["proxy-token"]
    assert real_platform.proxy_status(token) == 200
    assert real_platform.proxy_status("not-a-token") == 401
