"""Real OpenClaw gateways on the real node: Ready under the restricted profile, one turn over Telegram's protocol
through the in-cluster token proxy, isolation by real connection attempts, restarts, out of memory, token
rotation, suspend and resume, and destroy.

Two customers share the module (a gateway takes about a minute and 1.2 GB to start): alice talks, bob is the
other tenant alice must not reach; bob is destroyed last. Every test leaves alice Ready.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid
from typing import Any

import psycopg
import pytest
import redis

from clawhost_api.customer import namespace_for
from clawhost_api.usage import usage_counter_key, usage_period
from clawhost_localcluster.platform import gateway_secret, get_json
from clawhost_localcluster.public_telegram import ADDRESS as TELEGRAM_ADDRESS
from clawhost_localcluster.real_platform import RealPlatform, progress
from clawhost_localcluster.waiting import eventually
from clawhost_operator.children import render_network_policy

# Each test's clock includes the session's real-node start, the images' import and two gateways starting (the
# first test pays for all of them: up to ~12 minutes on this machine under load).
pytestmark = [pytest.mark.cluster, pytest.mark.node, pytest.mark.timeout(2400)]

ALICE_USER, BOB_USER, STRANGER = 424242, 515151, 999999
READY_TIMEOUT = 600  # a gateway takes ~20 s on an idle 2-core machine, over a minute on a busy one
TURN_TIMEOUT = 300


def _wait_ready(platform: RealPlatform, name: str, what: str = "Ready") -> dict[str, Any]:
    started = time.monotonic()
    customer = platform.customers.wait_ready(name, timeout=READY_TIMEOUT)
    progress(f"{name}: {what} after {time.monotonic() - started:.0f}s")
    return customer


@pytest.fixture(scope="module")
def tenants(real_platform: RealPlatform) -> dict[str, str]:
    """alice and bob, both Ready (created together: their gateways start side by side)."""
    alice = real_platform.create_customer(ALICE_USER, name=f"alice-{uuid.uuid4().hex[:6]}")
    bob = real_platform.create_customer(BOB_USER, name=f"bob-{uuid.uuid4().hex[:6]}")
    progress(f"created {alice} and {bob}; waiting for their real gateways")
    _wait_ready(real_platform, alice)
    _wait_ready(real_platform, bob)
    return {"alice": alice, "bob": bob}


def _condition(platform: RealPlatform, name: str) -> dict[str, Any]:
    condition = platform.customers.condition(name)
    assert condition is not None
    return condition


def _ledger(platform: RealPlatform, customer: str) -> list[dict[str, Any]]:
    """The customer's ledger rows (none before the proxy wrote its first: it makes the table then)."""
    dsn = platform.outside.postgres_dsn
    with psycopg.connect(dsn) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        try:
            return cursor.execute("SELECT * FROM token_ledger WHERE customer = %s", (customer,)).fetchall()
        except psycopg.errors.UndefinedTable:
            return []


def _turn(platform: RealPlatform, customer: str, text: str) -> str:
    """One DM from the customer's own user, answered by the gateway over the Bot API; the answer's text."""
    api, bot = platform.telegram.api, platform.bots[customer]
    sent_before = max((m.message_id for m in api.sent_messages(bot.token)), default=0)
    api.send_dm(bot.token, ALICE_USER if customer.startswith("alice") else BOB_USER, text)
    chat = ALICE_USER if customer.startswith("alice") else BOB_USER
    return api.wait_for_message(bot.token, chat, timeout=TURN_TIMEOUT, after=sent_before).text


def test_a_real_gateway_is_ready_hardened_and_within_its_memory(
    real_platform: RealPlatform, tenants: dict[str, str]
) -> None:
    alice = tenants["alice"]
    namespace = get_json(real_platform.cluster, "namespace", namespace_for(alice))
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    pod = real_platform.pod(alice)
    spec = pod["spec"]
    [container] = spec["containers"]
    assert spec["automountServiceAccountToken"] is False
    assert not [v for v in spec["volumes"] if "projected" in v], "no ServiceAccount token volume"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["limits"]["memory"] == "2Gi"
    facts = real_platform.node_in_pod(
        alice,
        "const fs=require('fs');let ro='writable';try{fs.writeFileSync('/probe','x')}catch(e){ro=e.code}"
        "const cg='/sys/fs/cgroup/memory/';const read=f=>{try{return +fs.readFileSync(cg+f,'utf8')}catch{return null}};"
        "console.log(JSON.stringify({uid:process.getuid(),root:ro,"
        "token:fs.existsSync('/var/run/secrets/kubernetes.io/serviceaccount/token'),"
        "used:read('memory.usage_in_bytes'),limit:read('memory.limit_in_bytes')}))",
    )
    assert facts.returncode == 0, facts.stderr
    seen = json.loads(facts.stdout)
    assert seen["uid"] == 10001
    assert seen["root"] == "EROFS", "the root filesystem is read-only"
    assert seen["token"] is False
    assert seen["limit"] == 2 * 1024**3
    assert seen["used"] < seen["limit"]
    progress(f"{alice}: container memory {seen['used'] / 2**20:.0f} MiB of its {seen['limit'] / 2**20:.0f} MiB limit")
    gate = real_platform.cluster.kubectl(
        "logs", pod["metadata"]["name"], "-n", namespace_for(alice), "-c", "wait-for-isolation"
    )
    assert "egress policy in force" in gate.stdout, "the gateway started only once its policy was enforced"
    ready = real_platform.node_in_pod(
        alice, "fetch('http://127.0.0.1:18789/readyz').then(r=>r.json()).then(j=>console.log(JSON.stringify(j)))"
    )
    assert json.loads(ready.stdout)["ready"] is True, "the real gateway passes its own /readyz"


def test_a_dm_is_answered_through_the_proxy_and_metered_and_a_strangers_reaches_no_model(
    real_platform: RealPlatform, tenants: dict[str, str]
) -> None:
    alice = tenants["alice"]
    kimi, api, bot = real_platform.outside.kimi, real_platform.telegram.api, real_platform.bots[alice]
    requests_before = len(kimi.requests)
    rows_before = len(_ledger(real_platform, alice))
    # The stranger's DM first: updates are handled in order, so once alice's is answered the stranger's was seen.
    api.send_dm(bot.token, STRANGER, "let me in", first_name="Mallory")
    answer = _turn(real_platform, alice, "hello agent")
    assert answer == "Hello from fake Kimi"
    assert api.sent_messages(bot.token, STRANGER) == [], "the stranger got no answer"
    [request] = kimi.requests[requests_before:]  # one model call: alice's; none for the stranger
    assert request["stream"] is True
    assert request["model"] == "kimi-k2.5"
    assert "let me in" not in json.dumps(request)
    rows = eventually(lambda: _ledger(real_platform, alice)[rows_before:], timeout=60, what="the ledger row")
    assert rows[0]["prompt_tokens"] > 1000, "the gateway's system prompt and tools went through the proxy"
    counter = usage_counter_key(alice, usage_period(None))
    with redis.Redis(port=real_platform.outside.redis.target_port) as store:
        assert int(store.get(counter) or 0) >= rows[0]["prompt_tokens"], "the counter GET /usage reads"
    progress(f"{alice}: one turn, {rows[0]['prompt_tokens']} prompt + {rows[0]['completion_tokens']} completion tokens")


def test_a_gateway_reaches_only_dns_the_proxy_and_public_https(
    real_platform: RealPlatform, tenants: dict[str, str]
) -> None:
    alice, bob = tenants["alice"], tenants["bob"]
    outside, node_ip = real_platform.outside, real_platform.node_ip
    bob_ip = real_platform.pod(bob)["status"]["podIP"]
    api_relay_port = int(real_platform.api_relay_address.rsplit(":", 1)[1])
    refused = {
        "bob's gateway": (bob_ip, 18789),
        "Redis": (node_ip, outside.redis.port),
        "PostgreSQL": (node_ip, outside.postgres.port),
        "the model stand-in (only through the proxy)": (node_ip, outside.kimi.port),
        "the operator's metrics": (node_ip, real_platform.operator_metrics_relay.port),
        "the API server's Service": ("10.0.0.1", 443),
        "the API server on the node": (node_ip, api_relay_port),
        "the kubelet": (node_ip, real_platform.node_cluster.node.kubelet_port),
        "the token proxy's admin port": (real_platform.proxy_pod_ip(), 9090),
        "cloud metadata": ("169.254.169.254", 80),
    }
    reached = {what: target for what, target in refused.items() if real_platform.connects_from_gateway(alice, *target)}
    assert reached == {}, f"{alice}'s gateway reached {reached}"
    # The same targets answer an unrestricted pod, so what refused alice was her policy, not an absent server; bob's
    # gateway and the proxy's admin port admit no pod at all (their own policies), so the node itself checks those.
    control = real_platform.unrestricted_pod()
    for what, (host, port) in refused.items():
        if what == "cloud metadata":  # nothing listens there on this machine
            continue
        if what in ("bob's gateway", "the token proxy's admin port"):
            with socket.create_connection((host, port), timeout=5):
                pass
        else:
            assert real_platform.connects_from(control, host, port), f"{what} ({host}:{port}) is not serving"
    assert real_platform.resolves_from_gateway(alice, "token-proxy.platform.svc.cluster.local") is not None
    assert real_platform.connects_from_gateway(alice, "token-proxy.platform.svc.cluster.local", 8080)
    assert real_platform.connects_from_gateway(alice, TELEGRAM_ADDRESS, 443), "public HTTPS (the Bot API)"


def test_a_new_gateway_pod_is_isolated_from_its_first_instant(real_platform: RealPlatform) -> None:
    """A pod labelled as a gateway, under the operator's policy, whose very first act is a connection attempt."""
    suffix = uuid.uuid4().hex[:6]
    customer = f"first-{suffix}"
    namespace = namespace_for(customer)
    real_platform.cluster.kubectl("create", "namespace", namespace)
    try:
        real_platform.cluster.kubectl("apply", "-f", "-", stdin=json.dumps(render_network_policy(customer, "platform")))
        target = real_platform.serving_pod()
        pod = real_platform.one_shot_connect_pod(namespace, customer, target)
        phase = eventually(
            lambda: (
                (get_json(real_platform.cluster, "pod", pod, "-n", namespace) or {}).get("status", {}).get("phase")
                if (get_json(real_platform.cluster, "pod", pod, "-n", namespace) or {}).get("status", {}).get("phase")
                in ("Succeeded", "Failed")
                else None
            ),
            timeout=120,
            what="the one-shot connection attempt to finish",
        )
        log = real_platform.cluster.kubectl("logs", pod, "-n", namespace, check=False).stdout
        assert phase == "Failed", f"the first connection attempt got through: {log}"
    finally:
        real_platform.cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_a_killed_gateway_is_restarted_and_the_customer_says_so(
    real_platform: RealPlatform, tenants: dict[str, str]
) -> None:
    alice = tenants["alice"]
    restarts_before = real_platform.restarts(alice)
    killed = real_platform.node_in_pod(
        alice,
        "const fs=require('fs');for(const p of fs.readdirSync('/proc')){if(!/^\\d+$/.test(p))continue;"
        "let c='';try{c=fs.readFileSync('/proc/'+p+'/cmdline','utf8')}catch{continue}"
        "if(c.startsWith('openclaw-gateway')){process.kill(+p,'SIGKILL');console.log('killed '+p)}}",
    )
    assert "killed" in killed.stdout, killed.stderr
    real_platform.customers.wait_for(
        alice,
        lambda c: (
            real_platform.restarts(alice) > restarts_before
            and any(
                x["type"] == "Ready" and x["status"] == "True" and "restarted" in x["message"]
                for x in c["status"]["conditions"]
            )
        ),
        "Ready again, saying it was restarted",
        timeout=READY_TIMEOUT,
    )
    message = _condition(real_platform, alice)["message"]
    assert "exit code 137" in message, message
    progress(f"{alice}: killed, restarted and Ready again: {message}")


def test_a_gateway_over_its_memory_limit_is_explained_on_the_customer(
    real_platform: RealPlatform, tenants: dict[str, str]
) -> None:
    alice = tenants["alice"]
    # The gateway volunteers for the OOM killer (a process may raise its own uid's score), then small processes in
    # the container take memory until its cgroup is full: the largest score is then the gateway's, as when its own
    # heap outgrows the limit.
    real_platform.node_in_pod(
        alice,
        "const fs=require('fs');for(const p of fs.readdirSync('/proc')){if(!/^\\d+$/.test(p))continue;"
        "let c='';try{c=fs.readFileSync('/proc/'+p+'/cmdline','utf8')}catch{continue}"
        "if(c.startsWith('openclaw-gateway'))fs.writeFileSync('/proc/'+p+'/oom_score_adj','1000')}"
        "const {spawn}=require('child_process');"
        "const hold='const b=Buffer.alloc(160*1024*1024,1);setInterval(()=>b,1e3)';"
        "for(let i=0;i<12;i++){spawn(process.execPath,['-e',hold],{stdio:'ignore'})}setTimeout(()=>{},170000)",
        timeout=180,
    )
    customer = real_platform.customers.wait_for(
        alice,
        lambda c: any("OOMKilled" in x["message"] for x in c["status"]["conditions"] if x["type"] == "Ready"),
        "the Ready condition to name OOMKilled",
        timeout=READY_TIMEOUT,
    )
    ready = next(x for x in customer["status"]["conditions"] if x["type"] == "Ready")
    progress(f"{alice}: over its memory limit: {ready['reason']}: {ready['message']}")
    eventually(
        lambda: [
            e
            for e in real_platform.customers.events(alice)
            if e["reason"] == "GatewayRestarted" and "ran out of memory" in e["message"]
        ],
        timeout=60,
        what="a GatewayRestarted Warning Event saying it ran out of memory",
    )
    _wait_ready(real_platform, alice, "Ready again after running out of memory")


def test_a_rotated_proxy_token_refuses_the_old_and_the_gateway_works_with_the_new(
    real_platform: RealPlatform, tenants: dict[str, str]
) -> None:
    alice = tenants["alice"]
    old_token = gateway_secret(real_platform.customers, alice)["proxy-token"]
    assert real_platform.proxy_status(old_token) == 200
    first = real_platform.customers.get(alice)["status"]["proxyToken"]["hash"]
    real_platform.cluster.kubectl(
        "annotate", "--overwrite", "customer", alice, f"clawhost.dev/rotate-proxy-token={uuid.uuid4().hex[:8]}"
    )
    real_platform.customers.wait_for(
        alice, lambda c: c["status"]["proxyToken"]["hash"] not in (None, first), "a new token hash"
    )
    eventually(lambda: real_platform.proxy_status(old_token) == 401, timeout=30, what="the old token refused")
    _wait_ready(real_platform, alice, "Ready with the new token")
    assert _turn(real_platform, alice, "still there?") == "Hello from fake Kimi"


def test_suspend_removes_the_pod_and_resume_brings_the_gateway_back(
    real_platform: RealPlatform, tenants: dict[str, str]
) -> None:
    alice = tenants["alice"]

    def patch(value: bool) -> None:
        spec = json.dumps({"spec": {"suspend": value}})
        real_platform.cluster.kubectl("patch", "customer", alice, "--type=merge", "-p", spec)

    patch(True)
    real_platform.customers.wait_for(alice, lambda c: c["status"]["phase"] == "Suspended", "Suspended", timeout=120)
    eventually(
        lambda: get_json(real_platform.cluster, "pods", "-n", namespace_for(alice))["items"] == [],
        timeout=120,
        what="the gateway pod gone",
    )
    patch(False)
    _wait_ready(real_platform, alice, "resumed")


def test_destroy_removes_the_namespace_and_its_firewall_state(
    real_platform: RealPlatform, tenants: dict[str, str]
) -> None:
    bob = tenants["bob"]
    pod_ip = real_platform.pod(bob)["status"]["podIP"]
    assert pod_ip in _firewall_state(), "kube-router holds the pod's address while it runs"
    real_platform.cluster.kubectl("delete", "customer", bob, "--timeout=300s")
    eventually(
        lambda: get_json(real_platform.cluster, "namespace", namespace_for(bob)) is None,
        timeout=300,
        what="the namespace gone",
    )
    eventually(lambda: pod_ip not in _firewall_state(), timeout=120, what="no rule or set naming the pod's address")


def _firewall_state() -> str:
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    sets = subprocess.run(["ipset", "list"], capture_output=True, text=True, check=True).stdout
    return rules + sets
