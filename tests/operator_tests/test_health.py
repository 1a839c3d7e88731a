"""The operator's liveness endpoint answers what its check says, and nothing but /healthz."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from clawhost_localcluster.processes import free_port
from clawhost_operator.health import serve_health


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.parametrize(("alive", "status"), [(True, 200), (False, 500)])
def test_healthz_answers_the_check(alive: bool, status: int) -> None:
    port = free_port()
    server = serve_health(port, lambda: (alive, {"customer": 3}), host="127.0.0.1")
    try:
        code, body = _get(port, "/healthz")
        assert code == status
        assert json.loads(body) == {"customer": 3}
        assert _get(port, "/metrics")[0] == 404
    finally:
        server.shutdown()
