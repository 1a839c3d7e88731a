"""The platform on the real node for tests: the token proxy as `make up` runs it there (`in_cluster_proxy`: its
Deployment from proxy/deploy/, the stores and the LLM stand-in outside the cluster where only `platform` may reach
them), the Bot API stand-in on a public-looking HTTPS address, and the operator pointing the real gateways at both
stand-ins.

Where the Bot API stand-in lives (nothing here loosens a customer's NetworkPolicy):
- the Bot API stand-in: https://203.0.113.10 (its own network namespace; `public_telegram`), which a customer's
  pod reaches as it would api.telegram.org.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clawhost_api.customer import namespace_for
from clawhost_api.tiers import get_tier
from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.images import ensure_gateway_image
from clawhost_localcluster.in_cluster_proxy import OutsideServices, start_token_proxy_in_cluster
from clawhost_localcluster.nettest_image import NETTEST_IMAGE, nettest_image
from clawhost_localcluster.node_environment import RealNodeCluster
from clawhost_localcluster.platform import (
    CustomerFactory,
    OperatorProcess,
    get_json,
    install_platform,
    service_account_kubeconfig,
)
from clawhost_localcluster.public_telegram import PublicTelegram, start_public_telegram
from clawhost_localcluster.relay import TcpRelay
from clawhost_localcluster.telegram_bot_api import Bot
from clawhost_operator.children import render_deployment
from clawhost_operator.settings import OperatorSettings

REPO = Path(__file__).resolve().parents[2]


_progress_sinks: list[Callable[[str], None]] = []


def show_progress_with(sink: Callable[[str], None]) -> None:
    """Where progress lines go instead of stderr (a pytest session passes one that gets past its output capture)."""
    _progress_sinks[:] = [sink]


def progress(message: str) -> None:
    """One line of progress: the real-node suite and benchmark take minutes."""
    line = f"[real node {time.strftime('%H:%M:%S')}] {message}"
    if _progress_sinks:
        _progress_sinks[0](line)
    else:
        print(line, file=sys.stderr, flush=True)


@dataclass
class RealPlatform:
    node_cluster: RealNodeCluster
    outside: OutsideServices
    telegram: PublicTelegram
    operator: OperatorProcess
    operator_metrics_relay: TcpRelay  # the operator's metrics on the node's address: a target pods must not reach
    customers: CustomerFactory
    bots: dict[str, Bot] = field(default_factory=dict)  # customer -> its bot at the stand-in
    _netcheck: str | None = None  # a namespace without policies, for pods that show a target is serving

    @property
    def cluster(self) -> Cluster:
        return self.node_cluster.cluster

    @property
    def node_ip(self) -> str:
        return self.node_cluster.node.ip

    @property
    def api_relay_address(self) -> str:
        relay = self.node_cluster.node.api_relay
        assert relay is not None
        return relay.address

    def delete_customers(self) -> None:
        for name in self.customers.created:
            self.cluster.kubectl("delete", "customer", name, "--wait=false", "--ignore-not-found", check=False)

    def _netcheck_namespace(self) -> str:
        if self._netcheck is None:
            self._netcheck = self.node_cluster.fresh_namespace("netcheck")
        return self._netcheck

    def unrestricted_pod(self) -> tuple[str, str]:
        """(namespace, pod) of a pod no policy restricts: what it reaches is serving."""
        namespace = self._netcheck_namespace()
        if get_json(self.cluster, "pod", "control", "-n", namespace) is None:
            self.node_cluster.nettest_pod(namespace, "control")
        return namespace, "control"

    def connects_from(self, pod: tuple[str, str], host: str, port: int) -> bool:
        return self.node_cluster.connects(pod[0], pod[1], f"{host}:{port}")

    def serving_pod(self) -> str:
        """host:port of a pod that answers every connection (in a namespace without policies)."""
        namespace = self._netcheck_namespace()
        pod = get_json(self.cluster, "pod", "server", "-n", namespace)
        if pod is None:
            pod = self.node_cluster.nettest_pod(namespace, "server", ["serve", "8080"])
        return f"{pod['status']['podIP']}:8080"

    def one_shot_connect_pod(self, namespace: str, customer: str, target: str) -> str:
        """A pod made from the operator's gateway pod template (labels, security, its init containers) whose main
        container's first act is one connection attempt to `target`: Succeeded if it got through, Failed if refused
        or timed out. The template's Secret volumes and ServiceAccount are left out (this namespace has neither)."""
        self.node_cluster.import_image(nettest_image())
        deployment = render_deployment(customer, get_tier("starter"), OperatorSettings().gateway_image, 1, "first")
        template = deployment["spec"]["template"]
        spec = template["spec"]
        [gateway] = spec["containers"]
        spec.update(restartPolicy="Never", volumes=[], serviceAccountName="default")
        spec["containers"] = [
            {
                "name": "first-act",
                "image": NETTEST_IMAGE,
                "imagePullPolicy": "Never",
                "args": ["connect", target, "3"],
                "securityContext": gateway["securityContext"],
                "resources": gateway["resources"],
            }
        ]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "first-instant", "namespace": namespace, "labels": template["metadata"]["labels"]},
            "spec": spec,
        }
        self.cluster.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
        return "first-instant"

    def restarts(self, customer: str) -> int:
        statuses = self.pod(customer).get("status", {}).get("containerStatuses") or [{}]
        return int(statuses[0].get("restartCount") or 0)

    def proxy_pod_ip(self) -> str:
        listing = get_json(self.cluster, "pods", "-n", "platform", "-l", "app.kubernetes.io/name=token-proxy")
        return str(listing["items"][0]["status"]["podIP"])

    def proxy_status(self, token: str) -> int:
        """The status of an authenticated call (GET /v1/models) to the in-cluster proxy's Service, from the node."""
        service = get_json(self.cluster, "service", "token-proxy", "-n", "platform")
        request = urllib.request.Request(
            f"http://{service['spec']['clusterIP']}:8080/v1/models", headers={"Authorization": f"Bearer {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the cluster's Service
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    def create_customer(self, user_id: int, tier: str = "starter", name: str | None = None) -> str:
        """A Customer whose bot token is one the Bot API stand-in knows."""
        bot = self.telegram.api.register_bot()
        name = name or self.customers.new_name()
        self.customers.bot_secret(f"{name}-bot", bot.token)
        body = {
            "apiVersion": "clawhost.dev/v1alpha1",
            "kind": "Customer",
            "metadata": {"name": name},
            "spec": {
                "tier": tier,
                "telegram": {"botTokenSecretRef": {"name": f"{name}-bot"}, "allowedUserIds": [user_id]},
                "billing": {"mode": "none"},
            },
        }
        self.cluster.kubectl("apply", "-f", "-", stdin=json.dumps(body))
        self.customers.created.append(name)
        self.bots[name] = bot
        return name

    def pod(self, customer: str) -> dict[str, Any]:
        """The customer's one gateway pod that is not terminating."""
        listing = json.loads(self.cluster.kubectl("get", "pods", "-n", namespace_for(customer), "-o", "json").stdout)
        [pod] = [p for p in listing["items"] if not p["metadata"].get("deletionTimestamp")]
        return dict(pod)

    def node_in_pod(self, customer: str, script: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run `node -e script` inside the customer's gateway container (check=False)."""
        pod = self.pod(customer)["metadata"]["name"]
        return subprocess.run(
            [*self._kubectl(), "exec", "-n", namespace_for(customer), pod, "-c", "gateway", "--", "node", "-e", script],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _kubectl(self) -> list[str]:
        return [str(self.cluster.kubectl_path), "--kubeconfig", str(self.cluster.kubeconfig)]

    def connects_from_gateway(self, customer: str, host: str, port: int, seconds: float = 3) -> bool:
        """Whether a TCP connection from inside the customer's gateway container to host:port is accepted."""
        script = (
            "const s=require('net').connect({host:HOST,port:PORT});"
            "setTimeout(()=>{console.log('timeout');process.exit(2)},MILLIS);"
            "s.on('connect',()=>{console.log('connected');process.exit(0)});"
            "s.on('error',e=>{console.log('error '+e.code);process.exit(1)});"
        )
        script = script.replace("HOST", json.dumps(host)).replace("PORT", str(port))
        script = script.replace("MILLIS", str(int(seconds * 1000)))
        result = self.node_in_pod(customer, script)
        if result.returncode not in (0, 1, 2):
            raise AssertionError(f"could not run the connection attempt in {customer}'s pod: {result.stderr}")
        return result.returncode == 0

    def resolves_from_gateway(self, customer: str, name: str) -> str | None:
        script = "require('dns').lookup(NAME,(e,a)=>{if(e){console.log(e.code);process.exit(1)}console.log(a)})"
        script = script.replace("NAME", json.dumps(name))
        result = self.node_in_pod(customer, script)
        return result.stdout.strip() if result.returncode == 0 else None


@contextmanager
def running_real_platform(
    running: RealNodeCluster, redis_port: int, postgres_port: int, database: str, workdir: Path
) -> Iterator[RealPlatform]:
    """On a started real-node cluster: the images imported, the platform installed, the token proxy in the cluster,
    the outside services and the Bot API stand-in up, the operator running as its ServiceAccount."""
    started = time.monotonic()
    cluster, node = running.cluster, running.node
    progress("assembling and importing the gateway image")
    running.import_image(ensure_gateway_image())
    install_platform(cluster)
    # The platform's manifests also ship the operator's Deployment and the stores; here the operator runs as a
    # process (its log and metrics at hand) and the stores are the session's, relayed on the node's address.
    cluster.kubectl("delete", "deployments,statefulsets,cronjobs,jobs", "--all", "-n", "platform", "--wait=false")
    progress(f"platform installed ({time.monotonic() - started:.0f}s)")
    with ExitStack() as stack:
        # The same wiring as `make up` on the real node (its stand-in upstream).
        outside = start_token_proxy_in_cluster(running, redis_port, postgres_port, database, progress)
        stack.callback(outside.stop)
        workdir.mkdir(parents=True, exist_ok=True)
        telegram = start_public_telegram(workdir / "telegram")
        stack.callback(telegram.stop)
        settings = {
            "CLAWHOST_OPERATOR_TELEGRAM_API_ROOT": telegram.api_root,
            "CLAWHOST_OPERATOR_GATEWAY_EXTRA_CA_FILE": str(telegram.ca_file),
        }
        operator = OperatorProcess(service_account_kubeconfig(cluster, workdir), workdir, settings=settings)
        operator.start()
        stack.callback(operator.stop)
        metrics = TcpRelay("127.0.0.1", operator.metrics_port, host=node.ip)
        metrics.start()
        stack.callback(metrics.stop)
        progress(f"token proxy Ready, operator and Bot API stand-in up ({time.monotonic() - started:.0f}s)")
        platform = RealPlatform(running, outside, telegram, operator, metrics, CustomerFactory(cluster))
        stack.callback(platform.delete_customers)
        yield platform
