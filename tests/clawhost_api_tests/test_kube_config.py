"""The shared Kubernetes access layer without a cluster: configuration, the bearer header, failures as KubeError."""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from clawhost_api.kube import KubeError, KubeHttp
from clawhost_api.kube import config as kube_config
from clawhost_api.kube.config import KubeConfigError, from_kubeconfig, in_cluster, load_config
from clawhost_localcluster.processes import free_port

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2ln"


def _service_account_dir(root: Path, token: str = JWT) -> Path:
    directory = root / "serviceaccount"
    directory.mkdir()
    (directory / "token").write_text(token + "\n")
    (directory / "ca.crt").write_text(PEM)
    return directory


def _pod_env(directory: Path, host: str = "10.0.0.1", port: str = "443") -> dict[str, str]:
    return {
        "KUBERNETES_SERVICE_HOST": host,
        "KUBERNETES_SERVICE_PORT": port,
        kube_config.SERVICE_ACCOUNT_DIR_ENV: str(directory),
    }


def test_in_cluster_sends_exactly_bearer_and_the_token(tmp_path: Path) -> None:
    directory = _service_account_dir(tmp_path)
    env = _pod_env(directory)
    config = in_cluster(env)
    assert config.server == "https://10.0.0.1:443"
    assert config.ca_file == directory / "ca.crt"
    assert config.authorization() == {"Authorization": f"Bearer {JWT}"}


def test_in_cluster_ipv6_host_is_bracketed(tmp_path: Path) -> None:
    env = _pod_env(_service_account_dir(tmp_path), host="fd00::1")
    assert in_cluster(env).server == "https://[fd00::1]:443"


def test_in_cluster_without_a_token_says_what_is_missing(tmp_path: Path) -> None:
    env = _pod_env(tmp_path)
    with pytest.raises(KubeConfigError, match="token is missing"):
        in_cluster(env)


def test_a_rotated_token_file_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = _service_account_dir(tmp_path)
    env = _pod_env(directory)
    config = in_cluster(env)
    (directory / "token").write_text("second")
    assert config.bearer() == JWT  # within the refresh interval: the token read a moment ago
    assert config.bearer(fresh=True) == "second"  # what a 401 asks for
    (directory / "token").write_text("third")
    monkeypatch.setattr(kube_config, "TOKEN_REFRESH_SECONDS", 0.0)
    assert config.bearer() == "third"


def _kubeconfig(path: Path, cluster: dict[str, object], user: dict[str, object]) -> Path:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(yaml.safe_dump(document))
    return path


def test_kubeconfig_fields(tmp_path: Path) -> None:
    encoded = base64.b64encode(PEM.encode()).decode()
    path = _kubeconfig(
        tmp_path / "config",
        {"server": "https://127.0.0.1:6443", "certificate-authority-data": encoded, "tls-server-name": "kubernetes"},
        {"tokenFile": "token", "client-certificate": "certs/client.crt", "client-key": "certs/client.key"},
    )
    (tmp_path / "token").write_text(JWT)
    config = from_kubeconfig(path)
    assert config.server == "https://127.0.0.1:6443"
    assert config.ca_data == PEM
    assert config.tls_server_name == "kubernetes"
    assert config.client_cert_file == tmp_path / "certs" / "client.crt"  # relative to the kubeconfig
    assert config.authorization() == {"Authorization": f"Bearer {JWT}"}
    assert not config.insecure


def test_kubeconfig_exec_login_is_refused_clearly(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path / "config", {"server": "https://x"}, {"exec": {"command": "aws"}})
    with pytest.raises(KubeConfigError, match="exec and auth-provider logins are not supported"):
        load_config(path)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


def test_no_answer_is_a_kube_error_with_status_0(silent_server: int) -> None:
    refused = KubeHttp(kube_config.KubeConfig(server=f"https://127.0.0.1:{free_port()}", token=JWT))
    with pytest.raises(KubeError) as error:
        refused.request("GET", "/api")
    assert error.value.status == 0
    assert error.value.unreachable
    assert JWT not in str(error.value)

    silent = KubeHttp(kube_config.KubeConfig(server=f"https://127.0.0.1:{silent_server}", token=JWT), timeout=0.5)
    with pytest.raises(KubeError) as timed_out:
        silent.call("GET", "/api")
    assert timed_out.value.unreachable
    with pytest.raises(KubeError):
        silent.watch("/api/v1/namespaces", [("watch", "true")], read_timeout=0.5)
