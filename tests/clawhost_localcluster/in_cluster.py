"""A service started as its Deployment would start it: in-cluster configuration and a real ServiceAccount token.

`ServiceAccountMount` lays out a directory like the kubelet's `/var/run/secrets/kubernetes.io/serviceaccount`
(`token`, `ca.crt`, `namespace`) with a token the API server mints for the service's ServiceAccount, and
`env()` gives the variables a pod has (`KUBERNETES_SERVICE_HOST/PORT`) plus the one only tests set: where that
directory is. `rotate()` does what the kubelet does before a token expires (writes a new one in place) and then
revokes the old one for real: each token is bound to a Secret of its own (`kubectl create token
--bound-object-kind=Secret`), and deleting that Secret makes the API server refuse the token, as it does for a
pod's token once the pod is gone.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from clawhost_localcluster.environment import Cluster

SERVICE_ACCOUNT_DIR_ENV = "CLAWHOST_SERVICE_ACCOUNT_DIR"  # read by clawhost_api.kube.config


@dataclass
class ServiceAccountMount:
    cluster: Cluster
    service_account: str
    directory: Path
    namespace: str = "platform"
    token: str = ""
    _binding: str = ""
    server: str = field(init=False)
    _ca: bytes = field(init=False)

    def __post_init__(self) -> None:
        cluster = yaml.safe_load(self.cluster.kubeconfig.read_text())["clusters"][0]["cluster"]
        self.server = str(cluster["server"])
        self._ca = base64.b64decode(cluster["certificate-authority-data"])
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "ca.crt").write_bytes(self._ca)
        (self.directory / "namespace").write_text(self.namespace)
        self.mint()

    def env(self) -> dict[str, str]:
        """What the pod's environment says about the API server (the API server's certificate names 127.0.0.1)."""
        address = urllib.parse.urlsplit(self.server)
        return {
            "KUBERNETES_SERVICE_HOST": str(address.hostname),
            "KUBERNETES_SERVICE_PORT": str(address.port),
            SERVICE_ACCOUNT_DIR_ENV: str(self.directory),
        }

    def mint(self) -> str:
        """A new token, bound to a Secret of its own, written where the service reads it (atomically, as the
        kubelet does)."""
        binding = f"{self.service_account}-binding-{uuid.uuid4().hex[:8]}"
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": binding, "namespace": self.namespace}}
        self.cluster.kubectl("apply", "-f", "-", stdin=json.dumps(secret))
        token = self.cluster.kubectl(
            "create",
            "token",
            self.service_account,
            "-n",
            self.namespace,
            "--duration=10m",
            "--bound-object-kind=Secret",
            f"--bound-object-name={binding}",
        ).stdout.strip()
        staged = self.directory / ".token.new"
        staged.write_text(token)
        staged.replace(self.directory / "token")
        self.token, self._binding = token, binding
        return token

    def revoke(self, binding: str) -> None:
        self.cluster.kubectl("delete", "secret", binding, "-n", self.namespace)

    def rotate(self) -> str:
        """Writes a new token, then revokes the old one; returns the old one."""
        old, old_binding = self.token, self._binding
        self.mint()
        self.revoke(old_binding)
        return old

    def accepted(self, token: str) -> bool:
        """Whether the API server takes `token` (a self-review: any authenticated identity may make one)."""
        answer = httpx.post(
            f"{self.server}/apis/authentication.k8s.io/v1/selfsubjectreviews",
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
            headers={"Authorization": f"Bearer {token}"},
            verify=ssl.create_default_context(cadata=self._ca.decode()),
            timeout=10,
        )
        if answer.status_code not in (201, 401):
            answer.raise_for_status()
        return answer.status_code == 201
