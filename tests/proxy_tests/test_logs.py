"""The proxy's log, as its process writes it: JSON lines, the request line carrying its fields, no token."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from clawhost_localcluster.proxy_process import ProxyCustomer, RunningProxy
from clawhost_localcluster.waiting import eventually

pytestmark = pytest.mark.cluster


def test_every_line_is_json_and_the_request_line_carries_its_fields(
    proxy: RunningProxy, customer: ProxyCustomer
) -> None:
    request_id = f"log-{uuid.uuid4().hex[:12]}"
    answer = httpx.post(
        f"{proxy.url}/chat/completions",
        headers={"Authorization": f"Bearer {customer.token}", "X-Request-Id": request_id},
        json={"model": "kimi-k2.5", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text

    def request_line() -> dict[str, Any] | None:
        return next((r for r in proxy.process.json_log() if r.get("request_id") == request_id), None)

    line = eventually(request_line, what="the request's log line")
    assert line["message"] == "request"
    assert line["logger"] == "clawhost.proxy"
    assert (line["customer"], line["model"], line["status"]) == (customer.name, "kimi-k2.5", 200)
    assert line["prompt_tokens"] > 0
    assert line["completion_tokens"] > 0
    assert isinstance(line["latency_ms"], int)
    serving = [r for r in proxy.process.json_log() if r["message"] == "serving"]
    assert serving
    assert serving[0]["port"] == proxy.port
    assert customer.token not in proxy.process.log_path.read_text(errors="replace")
