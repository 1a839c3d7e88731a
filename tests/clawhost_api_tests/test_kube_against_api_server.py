"""The shared Kubernetes layer against the real API server: the certificate's name, refusals as KubeError."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import yaml

from clawhost_api.kube import KubeError, KubeHttp, load_config
from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.relay import TcpRelay, relay_to_api_server

pytestmark = pytest.mark.cluster
APPLY = "application/apply-patch+yaml"


@pytest.fixture
def unnamed_address(cluster: Cluster) -> Iterator[TcpRelay]:
    """The API server at 127.0.0.2, an address its certificate does not name."""
    relay = relay_to_api_server(cluster.kubeconfig, host="127.0.0.2")
    yield relay
    relay.stop()


def _kubeconfig(cluster: Cluster, directory: Path, server: str, server_name: str | None) -> Path:
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = server
    if server_name is not None:
        config["clusters"][0]["cluster"]["tls-server-name"] = server_name
    path = directory / f"kubeconfig-{server_name}"
    path.write_text(yaml.safe_dump(config))
    return path


def test_tls_server_name_is_the_name_the_certificate_is_checked_against(
    cluster: Cluster, unnamed_address: TcpRelay, tmp_path: Path
) -> None:
    server = f"https://{unnamed_address.address}"
    unnamed = KubeHttp(load_config(_kubeconfig(cluster, tmp_path, server, None)))
    with pytest.raises(KubeError) as refused:
        unnamed.get("/version")
    assert refused.value.unreachable
    assert "certificate" in refused.value.message.lower()

    named = KubeHttp(load_config(_kubeconfig(cluster, tmp_path, server, "kubernetes.default.svc")))
    assert "gitVersion" in named.get("/version")

    wrong = KubeHttp(load_config(_kubeconfig(cluster, tmp_path, server, "elsewhere.example")))
    with pytest.raises(KubeError):
        wrong.get("/version")


def test_a_refusal_is_a_kube_error_with_the_api_servers_reason(cluster: Cluster) -> None:
    http = KubeHttp(load_config(cluster.kubeconfig))
    with pytest.raises(KubeError) as missing:
        http.get("/api/v1/namespaces/no-such-namespace-here")
    assert (missing.value.status, missing.value.reason) == (404, "NotFound")
    assert "no-such-namespace-here" in missing.value.message


def test_a_kept_alive_connection_the_server_closed_is_replaced_not_a_failure(
    cluster: Cluster, api_relay: TcpRelay, tmp_path: Path
) -> None:
    """The API server closes a connection idle for 90 s (a loaded test run waits that long between two writes).

    The next request goes over a new connection. A write once failed as unreachable (the control API's 503): it is
    sent in two parts, and TLS reports the second, refused by the closed connection, as an EOF, not a reset.
    """
    http = KubeHttp(load_config(_kubeconfig(cluster, tmp_path, f"https://{api_relay.address}", None)))
    name = f"kept-alive-{uuid.uuid4().hex[:8]}"
    path = f"/api/v1/namespaces/default/configmaps/{name}"
    http.get("/version")
    http.get("/version")
    assert api_relay.accepted == 1, "requests one after another share one kept-alive connection"
    try:
        for round_ in (1, 2):
            api_relay.close_connections()
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"round": str(round_)}}
            applied = orjson.loads(http.call("PATCH", path, body, APPLY, [("fieldManager", "test"), ("force", "true")]))
            assert applied["data"] == {"round": str(round_)}
            assert api_relay.accepted == 1 + round_, "each closed connection was replaced by one new connection"
        http.get("/version")
        assert api_relay.accepted == 3, "and the new one is kept alive"
    finally:
        with contextlib.suppress(KubeError):  # not there when the first write failed
            http.call("DELETE", path)
