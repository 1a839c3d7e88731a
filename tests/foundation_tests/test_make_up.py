"""`make up`'s engine: starts the platform in the background, is idempotent, installs the CRDs, and `down` cleans up."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin

from clawhost_localcluster.waiting import eventually

pytestmark = pytest.mark.cluster
REPO = Path(__file__).resolve().parents[2]


def _cli(run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # kwok nodes: these tests are about the platform's processes; the real node has tests of its own (node_tests).
    env = dict(os.environ, CLAWHOST_RUN_DIR=str(run_dir), CLAWHOST_LOCAL_NODE="kwok")
    return subprocess.run(
        [sys.executable, "-m", "clawhost_localcluster", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_up_twice_then_down(cluster: object, tmp_path: Path) -> None:
    # `cluster` is requested so the binaries exist before `up` runs.
    run_dir = tmp_path / "run"
    try:
        first = _cli(run_dir, "up")
        assert first.returncode == 0, first.stderr
        assert "clawhost local platform is up" in first.stdout
        # The background start's progress is shown while `up` waits, before the summary.
        assert first.stdout.index("[up] operator running") < first.stdout.index("clawhost local platform is up")
        kubeconfig = run_dir / "data" / "cluster" / "kubeconfig"
        assert f"export KUBECONFIG={kubeconfig}" in first.stdout

        second = _cli(run_dir, "up")
        assert second.returncode == 0
        assert "already running" in second.stdout

        kubectl_path = next(
            line.split()[-1] for line in first.stdout.splitlines() if line.strip().startswith("kubectl ")
        )
        crd = subprocess.run(
            [kubectl_path, "--kubeconfig", str(kubeconfig), "get", "crd", "customers.clawhost.dev", "-o", "name"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert crd.stdout.strip() == "customresourcedefinition.apiextensions.k8s.io/customers.clawhost.dev"
        assert "operator     metrics http://127.0.0.1:" in first.stdout

        # The README's example works against `make up`: the running operator brings it to Ready.
        def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [kubectl_path, "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True, check=False
            )

        assert kubectl("apply", "-f", str(REPO / "crds" / "examples" / "customer.yaml")).returncode == 0
        ready = kubectl("wait", "--for=condition=Ready", "customer/alice", "--timeout=90s")
        assert ready.returncode == 0, ready.stderr
        assert _cli(run_dir, "status").returncode == 0
        assert "a process on this machine" in next(
            line for line in first.stdout.splitlines() if line.strip().startswith("token proxy")
        )
        # No gateway really runs on kwok nodes: `chat` says so instead of waiting for an answer.
        chat_on_kwok = _cli(run_dir, "chat", "alice", "hello")
        assert chat_on_kwok.returncode == 6, chat_on_kwok.stderr
        assert "kwok" in chat_on_kwok.stderr

        # The control API `up` started: a user signs up, asks for an agent, and reads what the operator made of it.
        api_url = next(line.split()[2] for line in first.stdout.splitlines() if line.strip().startswith("control API"))
        credentials = {"email": "ada@example.com", "password": "a long enough passphrase"}
        assert httpx.post(f"{api_url}/auth/signup", json=credentials, timeout=30).status_code == 201
        login = httpx.post(f"{api_url}/auth/login", json=credentials, timeout=30)
        assert login.status_code == 200, login.text
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        agent = {"tier": "starter", "bot_token": "123456:" + "x" * 35, "allowed_user_ids": [42]}
        created = httpx.post(f"{api_url}/agent", json=agent, headers=auth, timeout=30)
        assert created.status_code == 201, created.text

        def awaiting_payment() -> bool:
            view = httpx.get(f"{api_url}/agent", headers=auth, timeout=10).json()
            return bool(view.get("phase") == "AwaitingPayment" and view.get("reason") == "AwaitingPayment")

        # Stripe-billed and not paid yet: the operator reports it, the API's watch-fed cache shows it.
        eventually(awaiting_payment, timeout=60, what="the new agent to await payment")

        # The token proxy `up` started knows alice's operator-issued token and answers through its upstream.
        proxy_url = next(
            line.split()[2] for line in first.stdout.splitlines() if line.strip().startswith("token proxy")
        )
        token = base64.b64decode(
            kubectl(
                "get", "secret", "gateway-inputs", "-n", "customer-alice", "-o", "jsonpath={.data.proxy-token}"
            ).stdout
        ).decode()
        chat = {"model": "kimi-k2.5", "messages": [{"role": "user", "content": "hi"}]}

        def answered() -> bool:
            reply = httpx.post(
                f"{proxy_url}/chat/completions", json=chat, headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            return bool(reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"])

        # The proxy learns the token's hash from the Customer watch: allow it the moment to arrive.
        eventually(answered, timeout=30, what="the proxy to answer alice")
        assert httpx.post(f"{proxy_url}/chat/completions", json=chat, timeout=10).status_code == 401

        # The onboarding service `up` started: a conversation opens on its internal WebSocket with the credential
        # the control API was given, and nothing opens without it.
        onboarding_url = next(
            line.split()[1] for line in first.stdout.splitlines() if line.strip().startswith("onboarding ")
        )
        internal = (run_dir / "data" / "onboarding-internal-token").read_text()
        with connect(onboarding_url, additional_headers={"Authorization": f"Bearer {internal}"}) as websocket:
            websocket.send(json.dumps({"type": "hello", "session_id": None, "language": "de", "client_ip": "::1"}))
            session = json.loads(websocket.recv(timeout=30))
        assert (session["type"], session["state"]) == ("session", "GATHERING_USE_CASE")
        assert session["transcript"][0]["text"].startswith("Hallo!")
        with pytest.raises(InvalidStatus), connect(onboarding_url):
            pass
        # And as a browser reaches it: the control API's /ws/onboarding relays to that service.
        chat_url = api_url.replace("http://", "ws://") + "/ws/onboarding"
        with connect(chat_url, origin=Origin(api_url)) as websocket:
            websocket.send(json.dumps({"type": "hello", "session_id": None, "language": "fr-FR"}))
            relayed = json.loads(websocket.recv(timeout=30))
        assert (relayed["type"], relayed["state"]) == ("session", "GATHERING_USE_CASE"), relayed
        assert relayed["transcript"][0]["text"].startswith("Bonjour")
    finally:
        down = _cli(run_dir, "down")
    assert down.returncode == 0
    assert "stopped" in down.stdout
    assert not (run_dir / "data").exists()
    after = _cli(run_dir, "status")
    assert after.returncode == 3
    assert "not running" in after.stdout


def _operator_pids(run_dir: Path) -> list[int]:
    """The operator processes `up` started for this run directory (found by command line and environment)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if b"clawhost_operator" not in (entry / "cmdline").read_bytes().split(b"\0"):
                continue
            if f"CLAWHOST_RUN_DIR={run_dir}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_a_killed_service_is_restarted_and_the_platform_keeps_working(cluster: object, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    try:
        up = _cli(run_dir, "up")
        assert up.returncode == 0, up.stderr
        kubeconfig = run_dir / "data" / "cluster" / "kubeconfig"
        kubectl_path = next(line.split()[-1] for line in up.stdout.splitlines() if line.strip().startswith("kubectl "))

        def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [kubectl_path, "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True, check=False
            )

        (first,) = _operator_pids(run_dir)
        os.kill(first, signal.SIGKILL)

        def replaced() -> int | None:
            pids = [pid for pid in _operator_pids(run_dir) if pid != first]
            return pids[0] if pids else None

        second = eventually(replaced, timeout=60, what="the operator to be started again")
        log = (run_dir / "supervisor.log").read_text()
        assert "operator exited (code -9); restarting in " in log
        assert f"operator restarted (pid {second}, restart 1)" in log
        assert _cli(run_dir, "status").returncode == 0  # the platform is still up

        # The new operator reconciles: a Customer created after the kill turns Ready.
        assert kubectl("apply", "-f", str(REPO / "crds" / "examples" / "customer.yaml")).returncode == 0
        ready = kubectl("wait", "--for=condition=Ready", "customer/alice", "--timeout=120s")
        assert ready.returncode == 0, ready.stderr
    finally:
        down = _cli(run_dir, "down")
    assert down.returncode == 0
    assert _operator_pids(run_dir) == []


def test_down_after_a_killed_run_removes_its_data(tmp_path: Path) -> None:
    """A supervisor killed with SIGKILL leaves its files (its processes die with its process group): down removes
    them, so nothing of that run stays on the machine."""
    run_dir = tmp_path / "run"
    (run_dir / "data" / "cluster").mkdir(parents=True)
    (run_dir / "data" / "cluster" / "kubeconfig").write_text("left behind")
    (run_dir / "state.json").write_text("{}")
    (run_dir / "supervisor.pid").write_text("999999999")  # no such process
    down = _cli(run_dir, "down")
    assert down.returncode == 0, down.stderr
    assert "removed the data a killed run left" in down.stdout
    assert sorted(p.name for p in run_dir.iterdir()) == []
