"""Where the API server is and how to log in to it: a kubeconfig, or the pod's own ServiceAccount (in-cluster).

A ServiceAccount token is a file the kubelet rewrites before the token expires (about hourly), so it is read
again every `TOKEN_REFRESH_SECONDS` and whenever the API server answers 401. A kubeconfig is parsed here (the
fields a token or certificate login needs); exec plugins and auth providers are refused with a clear error.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import os
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# Only tests set it: where the token and ca.crt are, in place of the kubelet's mount.
SERVICE_ACCOUNT_DIR_ENV = "CLAWHOST_SERVICE_ACCOUNT_DIR"
TOKEN_REFRESH_SECONDS = 10.0


class KubeConfigError(ValueError):
    """No usable configuration: the message says what is missing or unsupported."""


@dataclass
class KubeConfig:
    """One API server and one identity. `bearer()` is safe to call from any thread."""

    server: str  # https://host:port, maybe with a path prefix
    ca_file: Path | None = None
    ca_data: str | None = None  # PEM
    client_cert_file: Path | None = None
    client_key_file: Path | None = None
    client_cert_data: str | None = None  # PEM
    client_key_data: str | None = None  # PEM
    token: str | None = None
    token_file: Path | None = None
    tls_server_name: str | None = None
    insecure: bool = False
    _bearer: tuple[float, str | None] = field(default=(float("-inf"), None), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def bearer(self, fresh: bool = False) -> str | None:
        """The token to send (without the word Bearer), re-read from its file when due or when `fresh`."""
        if self.token_file is None:
            return self.token
        read_at, token = self._bearer
        if not fresh and time.monotonic() - read_at < TOKEN_REFRESH_SECONDS:
            return token
        with self._lock:
            try:
                token = self.token_file.read_text().strip() or None
            except OSError:
                if token is None:
                    raise
                # The kubelet swaps the file atomically, so this is rare: keep the last token, try again soon.
            self._bearer = (time.monotonic(), token)
            return token

    def authorization(self, fresh: bool = False) -> dict[str, str]:
        token = self.bearer(fresh)
        return {"Authorization": f"Bearer {token}"} if token else {}

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file, cadata=self.ca_data)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.client_cert_file is not None:
            context.load_cert_chain(self.client_cert_file, self.client_key_file)
        elif self.client_cert_data is not None:
            # ssl only loads a certificate chain from files: a private temporary one, removed right after.
            with tempfile.TemporaryDirectory() as scratch:
                chain = Path(scratch) / "client.pem"
                chain.touch(mode=0o600)
                chain.write_text(self.client_cert_data + "\n" + (self.client_key_data or ""))
                context.load_cert_chain(chain)
        return context


def in_cluster(environ: dict[str, str] | None = None) -> KubeConfig:
    """The pod's ServiceAccount: KUBERNETES_SERVICE_HOST/PORT, and the token and CA in its mounted directory."""
    env = os.environ if environ is None else environ
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise KubeConfigError("not in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset")
    directory = Path(env.get(SERVICE_ACCOUNT_DIR_ENV) or SERVICE_ACCOUNT_DIR)
    token_file, ca_file = directory / "token", directory / "ca.crt"
    for needed in (token_file, ca_file):
        if not needed.is_file():
            raise KubeConfigError(f"in a cluster, but {needed} is missing (is a ServiceAccount token mounted?)")
    with contextlib.suppress(ValueError):  # a name, not an address
        host = f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    config = KubeConfig(server=f"https://{host}:{port}", ca_file=ca_file, token_file=token_file)
    config.bearer()  # fail now, not at the first request, if it cannot be read
    return config


def _decoded(value: str) -> str:
    return base64.b64decode(value).decode()


def _named(entries: list[dict[str, Any]] | None, name: str, what: str, source: Path) -> dict[str, Any]:
    for entry in entries or []:
        if entry.get("name") == name:
            return dict(entry.get(what) or {})
    raise KubeConfigError(f"{source}: no {what} named {name!r}")


def from_kubeconfig(path: Path, context_name: str | None = None) -> KubeConfig:
    """The current (or the named) context of a kubeconfig file; relative paths are relative to the file."""
    document = yaml.safe_load(path.read_text()) or {}
    name = context_name or document.get("current-context")
    if not name:
        raise KubeConfigError(f"{path}: no current-context")
    context = _named(document.get("contexts"), name, "context", path)
    cluster = _named(document.get("clusters"), str(context.get("cluster")), "cluster", path)
    user = _named(document.get("users"), str(context.get("user")), "user", path) if context.get("user") else {}
    if "exec" in user or "auth-provider" in user:
        raise KubeConfigError(f"{path}: exec and auth-provider logins are not supported; use a token or certificate")
    if not cluster.get("server"):
        raise KubeConfigError(f"{path}: cluster {context.get('cluster')!r} has no server")

    def file(key: str, entry: dict[str, Any]) -> Path | None:
        return (path.parent / str(entry[key])).resolve() if entry.get(key) else None

    def data(key: str, entry: dict[str, Any]) -> str | None:
        return _decoded(str(entry[key])) if entry.get(key) else None

    return KubeConfig(
        server=str(cluster["server"]),
        ca_file=file("certificate-authority", cluster),
        ca_data=data("certificate-authority-data", cluster),
        client_cert_file=file("client-certificate", user),
        client_key_file=file("client-key", user),
        client_cert_data=data("client-certificate-data", user),
        client_key_data=data("client-key-data", user),
        token=str(user["token"]) if user.get("token") else None,
        token_file=file("tokenFile", user),
        tls_server_name=str(cluster["tls-server-name"]) if cluster.get("tls-server-name") else None,
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
    )


def load_config(kubeconfig: Path | None = None) -> KubeConfig:
    """`kubeconfig` if given, else $KUBECONFIG (its first file), else in-cluster, else ~/.kube/config."""
    if kubeconfig is not None:
        return from_kubeconfig(kubeconfig)
    listed = [part for part in os.environ.get("KUBECONFIG", "").split(os.pathsep) if part]
    if listed:
        return from_kubeconfig(Path(listed[0]))
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster()
    home = Path.home() / ".kube" / "config"
    if home.is_file():
        return from_kubeconfig(home)
    raise KubeConfigError("no Kubernetes configuration: set KUBECONFIG, or run in a pod with a ServiceAccount")
