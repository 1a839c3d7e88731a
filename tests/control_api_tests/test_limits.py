"""Sign-in rate limits, the bounded argon2 pool and request-body limits, against the control API as a real process."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from clawhost_control_api.core.errors import BusyError
from clawhost_control_api.core.passwords import HASH_MEMORY_BYTES, PasswordHashing
from clawhost_localcluster import stripe_events as se
from clawhost_localcluster.control_api_process import ControlApiProcess, StartApi

pytestmark = pytest.mark.services

PASSWORD = "correct horse battery"
DEPLOYMENT = Path(__file__).resolve().parents[2] / "control_api" / "deploy" / "20-deployment.yaml"
WEBHOOK_SECRET = "whsec_test_limits"


def _limit(count: int, seconds: int = 600) -> str:
    return json.dumps({"count": count, "seconds": seconds})


def _signup(client: httpx.Client, email: str, **headers: str) -> httpx.Response:
    return client.post("/auth/signup", json={"email": email, "password": PASSWORD}, headers=headers)


def _login(client: httpx.Client, email: str, password: str = PASSWORD, ip: str | None = None) -> httpx.Response:
    headers = {"X-Forwarded-For": ip} if ip else {}
    return client.post("/auth/login", json={"email": email, "password": password}, headers=headers)


def _assert_429(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/json"
    assert 0 < int(response.headers["retry-after"]) <= 600
    assert "too many" in response.json()["detail"]


def test_login_is_limited_per_ip_and_per_account(start_api: StartApi) -> None:
    api = start_api(
        login_per_ip=_limit(5), login_per_account=_limit(3), trusted_proxies='["127.0.0.1/32"]', hashing_queue="64"
    )
    with httpx.Client(base_url=api.url, timeout=60) as client:
        victim = f"v{uuid.uuid4().hex[:8]}@example.com"
        assert _signup(client, victim).status_code == 201
        # One account from many addresses (behind the ingress): the account's limit holds.
        answers = [_login(client, victim, "wrong password!", ip=f"203.0.113.{i}").status_code for i in range(5)]
        assert answers == [401, 401, 401, 429, 429]
        _assert_429(_login(client, victim, ip="203.0.113.77"))  # even with the right password, until the window ends
        # Many accounts from one address: the address's limit holds.
        spray = [_login(client, f"x{i}@example.com", ip="198.51.100.9").status_code for i in range(7)]
        assert spray == [401] * 5 + [429] * 2
        # A client cannot pick its address: only the trusted peer's last hop counts, left of it is ignored.
        spoofed = [
            client.post(
                "/auth/login",
                json={"email": f"y{i}@example.com", "password": PASSWORD},
                headers={"X-Forwarded-For": f"10.9.9.{i}, 198.51.100.9"},
            ).status_code
            for i in range(2)
        ]
        assert spoofed == [429, 429]


def test_forwarded_for_is_ignored_from_an_untrusted_peer(start_api: StartApi) -> None:
    api = start_api(login_per_ip=_limit(3), login_per_account=_limit(100))
    with httpx.Client(base_url=api.url, timeout=60) as client:
        answers = [_login(client, f"z{i}@example.com", ip=f"203.0.113.{i}").status_code for i in range(5)]
    assert answers == [401, 401, 401, 429, 429]


def test_signup_and_refresh_are_limited(start_api: StartApi) -> None:
    api = start_api(
        signup_per_ip=_limit(3), signup_per_account=_limit(2), refresh_per_ip=_limit(100), refresh_per_account=_limit(2)
    )
    with httpx.Client(base_url=api.url, timeout=60) as client:
        email = f"s{uuid.uuid4().hex[:8]}@example.com"
        assert [_signup(client, email).status_code for _ in range(3)] == [201, 409, 429]
        _assert_429(_signup(client, f"other{uuid.uuid4().hex[:6]}@example.com"))
        tokens = _login(client, email).json()
        first = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert first.status_code == 200
        second = client.post("/auth/refresh", json={"refresh_token": first.json()["refresh_token"]})
        assert second.status_code == 200
        _assert_429(client.post("/auth/refresh", json={"refresh_token": second.json()["refresh_token"]}))


def _sample_peak_rss(api: ControlApiProcess, stop: threading.Event, peak: list[int]) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], api.memory_kib("VmRSS"))
        stop.wait(0.01)


def _deploy_memory_limit_kib() -> int:
    deployment = yaml.safe_load(DEPLOYMENT.read_text())
    limit = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
    assert limit.endswith("Mi"), limit
    return int(limit.removesuffix("Mi")) * 1024


async def _flood(url: str, email: str, count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=httpx.Limits(max_connections=count)) as client:
        return await asyncio.gather(
            *(
                client.post("/auth/login", json={"email": email, "password": f"wrong {i} password"})
                for i in range(count)
            )
        )


def test_a_flood_of_logins_stays_within_the_memory_limit(
    start_api: StartApi, capsys: pytest.CaptureFixture[str]
) -> None:
    concurrency, queue, flood = 2, 16, 50
    roomy = _limit(10_000)
    api = start_api(
        hashing_concurrency=str(concurrency),
        hashing_queue=str(queue),
        login_per_ip=roomy,
        login_per_account=roomy,
    )
    email = f"f{uuid.uuid4().hex[:8]}@example.com"
    with httpx.Client(base_url=api.url, timeout=60) as client:
        assert _signup(client, email).status_code == 201
        assert _login(client, email).status_code == 200  # warm: one hash done, its memory returned
    baseline = api.memory_kib("VmRSS")
    stop, peak = threading.Event(), [baseline]
    sampler = threading.Thread(target=_sample_peak_rss, args=(api, stop, peak), daemon=True)
    sampler.start()
    try:
        answers = asyncio.run(_flood(api.url, email, flood))
    finally:
        stop.set()
        sampler.join()
    high_water = api.memory_kib("VmHWM")
    codes = sorted(r.status_code for r in answers)
    assert api.process.running, api.process.log_tail()
    assert set(codes) <= {401, 503}, codes
    assert codes.count(401) >= concurrency + queue, "everything admitted to the pool is answered"
    busy = [r for r in answers if r.status_code == 503]
    assert all(r.headers["content-type"] == "application/json" and "retry-after" in r.headers for r in busy)
    limit = _deploy_memory_limit_kib()
    with capsys.disabled():
        print(
            f"\n[login flood] {flood} concurrent logins, pool {concurrency}+{queue}: {codes.count(401)} x 401,"
            f" {codes.count(503)} x 503; RSS before {baseline / 1024:.0f} MiB, peak sampled {peak[0] / 1024:.0f} MiB,"
            f" VmHWM {high_water / 1024:.0f} MiB; deploy limit {limit / 1024:.0f} MiB"
        )
    assert high_water < limit
    # Growth is bounded by the hashes that may run at once (plus one hash's worth of slack), not by the flood.
    assert peak[0] - baseline < (concurrency + 1) * HASH_MEMORY_BYTES // 1024
    with httpx.Client(base_url=api.url, timeout=60) as client:
        assert _login(client, email).status_code == 200, "still serving after the flood"


def _webhook_headers(payload: bytes) -> dict[str, str]:
    return {"Stripe-Signature": se.sign(payload, WEBHOOK_SECRET), "Content-Type": "application/json"}


def _chunked_post(port: int, path: str, chunks: int, chunk: bytes, headers: dict[str, str]) -> tuple[int, Any, int]:
    """POST a chunked body over a raw socket; (status, JSON body, bytes sent before the server answered)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode())
        try:
            for _ in range(chunks):
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the whole body was sent
        response = b""
        while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            response += data
    head_text, _, body = response.partition(b"\r\n\r\n")
    status = int(head_text.split()[1])
    return status, json.loads(body), sent


def test_request_bodies_are_limited_before_they_are_read(start_api: StartApi) -> None:
    api = start_api(stripe_webhook_secret=WEBHOOK_SECRET)
    with httpx.Client(base_url=api.url, timeout=60) as client:
        huge_login = {"email": "a@example.com", "password": "x" * 20_000}
        refused = client.post("/auth/login", json=huge_login)
        assert refused.status_code == 413
        assert refused.headers["content-type"] == "application/json"
        assert refused.json() == {"detail": "request body larger than 16384 bytes"}
        # The webhook: a correctly signed event padded past 64 KiB is refused before its signature is checked.
        event = se.checkout_completed(1_780_000_000, "cbig", "cus_big", "sub_big", "pro")
        event["data"]["object"]["padding"] = "p" * (64 * 1024)
        payload = se.as_payload(event)
        big = client.post("/webhooks/stripe", content=payload, headers=_webhook_headers(payload))
        assert big.status_code == 413
        assert big.json() == {"detail": "request body larger than 65536 bytes"}
        # Under the limit the same route answers as before (bad signature: 400, not 413).
        assert (
            client.post("/webhooks/stripe", content=b"{}", headers={"Stripe-Signature": "t=1,v1=00"}).status_code == 400
        )
    # A chunked body has no Content-Length to judge: it is counted as it arrives (8 MiB offered).
    status, body, sent = _chunked_post(
        api.port,
        "/webhooks/stripe",
        1024,
        b"x" * 8192,
        {"Stripe-Signature": "t=1,v1=00", "Content-Type": "application/json"},
    )
    assert (status, body) == (413, {"detail": "request body larger than 65536 bytes"})
    status, body, _ = _chunked_post(api.port, "/auth/signup", 64, b"y" * 8192, {"Content-Type": "application/json"})
    assert (status, body) == (413, {"detail": "request body larger than 16384 bytes"})
    assert api.process.running
    with httpx.Client(timeout=10) as client:
        scraped = client.get(api.metrics_url).text
    assert 'clawhost_control_api_requests_total{method="POST",route="/webhooks/stripe",status="413"} 2.0' in scraped
    print(f"[chunked webhook] {sent} of {1024 * 8192} bytes written before the 413")


async def test_the_hashing_pool_refuses_beyond_its_queue_at_once() -> None:
    hashing = PasswordHashing(concurrency=1, queue=2)
    try:
        waiting = [asyncio.create_task(hashing.hash(PASSWORD)) for _ in range(3)]
        await asyncio.sleep(0)  # let the three reach the pool: one hashing, two queued
        assert hashing.admitted == 3
        with pytest.raises(BusyError) as refused:
            await hashing.verify(None, PASSWORD)
        assert refused.value.status_code == 503
        assert refused.value.headers == {"Retry-After": "1"}
        hashes = await asyncio.gather(*waiting)
        assert all(h.startswith("$argon2id$") for h in hashes)
        assert hashing.admitted == 0
        assert await hashing.verify(hashes[0], PASSWORD)
    finally:
        hashing.close()
