"""The real node's networking beyond CNI: kube-proxy (iptables mode; this kernel has no IPVS), kube-router's
NetworkPolicy controller alone (ipset + iptables; kube-network-policies would need the nft `queue` expression this
kernel lacks), and CoreDNS as a pod in kube-system behind the `kube-dns` Service at the kubelet's cluster DNS IP.

CoreDNS runs as a pod, not as a host process, because the customers' NetworkPolicies allow DNS only to pods labelled
`k8s-app=kube-dns` in kube-system, exactly as in a real cluster. A pod cannot reach the API server on the host's
loopback, so the node relays the node's address to it (`api_relay`); the certificate is checked for the name
`kubernetes`, which the serving certificate carries.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from clawhost_localcluster.controlplane import ControlPlane
from clawhost_localcluster.oci import Image, ImageArchive, ImageConfig, Layer, write_image
from clawhost_localcluster.pause_image import image_cache
from clawhost_localcluster.processes import free_port
from clawhost_localcluster.relay import TcpRelay
from clawhost_localcluster.versions import COREDNS_VERSION

COREDNS_IMAGE = f"clawhost/coredns:{COREDNS_VERSION.removeprefix('v')}"
API_SERVER_NAME = "kubernetes"  # a name the API server's certificate carries, for clients that dial an address


def coredns_image(binary: Path) -> ImageArchive:
    layer = Layer().add_file("/coredns", binary, mode=0o755).add_directory("/tmp", mode=0o1777)
    config = ImageConfig(entrypoint=["/coredns"], cmd=["-conf", "/etc/coredns/Corefile"])
    return write_image(Image(COREDNS_IMAGE, [layer], config), image_cache())


def kube_proxy_config(path: Path, kubeconfig: Path, node_name: str, pod_cidr: str) -> None:
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "clusterCIDR": pod_cidr,
        "hostnameOverride": node_name,
        "healthzBindAddress": f"127.0.0.1:{free_port()}",
        "metricsBindAddress": f"127.0.0.1:{free_port()}",
        # Leave the machine's conntrack limits and timeouts alone (0 means "do not set").
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        # NodePorts on 127.0.0.1 would need route_localnet=1 machine-wide; nothing here uses them.
        "iptables": {"localhostNodePorts": False, "syncPeriod": "30s", "minSyncPeriod": "0s"},
    }
    path.write_text(json.dumps(config, indent=2))


def kube_router_argv(binary: Path, kubeconfig: Path, node_name: str) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        f"--hostname-override={node_name}",
        "--run-firewall=true",
        "--run-router=false",
        "--run-service-proxy=false",
        "--enable-cni=false",
        "--enable-ipv6=false",
        f"--health-port={free_port()}",
        "--metrics-port=0",
        "--iptables-sync-period=1m",
        "--v=1",
    ]


def corefile(domain: str) -> str:
    return f"""\
.:53 {{
    errors
    health :8080
    ready :8181
    kubernetes {domain} in-addr.arpa ip6.arpa {{
        kubeconfig /etc/coredns-api/kubeconfig clawhost
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    forward . /etc/resolv.conf
    cache 5
    loop
}}
"""


@dataclass(frozen=True)
class DnsManifests:
    """Everything CoreDNS needs in kube-system, as one List for `kubectl apply`."""

    node_name: str
    dns_ip: str
    domain: str
    image: str
    kubeconfig: dict[str, object]

    def render(self) -> dict[str, object]:
        labels = {"k8s-app": "kube-dns"}
        rules = [
            {
                "apiGroups": [""],
                "resources": ["endpoints", "services", "pods", "namespaces"],
                "verbs": ["list", "watch"],
            },
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
        ]
        ns = "kube-system"
        return {
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", "namespace": ns}},
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRole",
                    "metadata": {"name": "clawhost:coredns"},
                    "rules": rules,
                },
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {"name": "clawhost:coredns"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": "clawhost:coredns",
                    },
                    "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": ns}],
                },
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "coredns", "namespace": ns},
                    "data": {"Corefile": corefile(self.domain)},
                },
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": "coredns-api", "namespace": ns},
                    "stringData": {"kubeconfig": json.dumps(self.kubeconfig)},
                },
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": "coredns", "namespace": ns, "labels": labels},
                    "spec": {
                        "replicas": 1,
                        "selector": {"matchLabels": labels},
                        "template": {
                            "metadata": {"labels": labels},
                            "spec": {
                                "dnsPolicy": "Default",
                                "automountServiceAccountToken": False,
                                "nodeSelector": {"kubernetes.io/hostname": self.node_name},
                                "containers": [
                                    {
                                        "name": "coredns",
                                        "image": self.image,
                                        "imagePullPolicy": "Never",
                                        "ports": [
                                            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                            {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                                        ],
                                        "readinessProbe": {
                                            "httpGet": {"path": "/ready", "port": 8181},
                                            "periodSeconds": 2,
                                        },
                                        "livenessProbe": {
                                            "httpGet": {"path": "/health", "port": 8080},
                                            "periodSeconds": 10,
                                        },
                                        "resources": {
                                            "requests": {"cpu": "50m", "memory": "32Mi"},
                                            "limits": {"memory": "128Mi"},
                                        },
                                        "volumeMounts": [
                                            {"name": "config", "mountPath": "/etc/coredns", "readOnly": True},
                                            {"name": "api", "mountPath": "/etc/coredns-api", "readOnly": True},
                                        ],
                                    }
                                ],
                                "volumes": [
                                    {"name": "config", "configMap": {"name": "coredns"}},
                                    {"name": "api", "secret": {"secretName": "coredns-api"}},
                                ],
                            },
                        },
                    },
                },
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": "kube-dns", "namespace": ns, "labels": labels},
                    "spec": {
                        "clusterIP": self.dns_ip,
                        "selector": labels,
                        "ports": [
                            {"name": "dns", "port": 53, "targetPort": 53, "protocol": "UDP"},
                            {"name": "dns-tcp", "port": 53, "targetPort": 53, "protocol": "TCP"},
                        ],
                    },
                },
            ],
        }


def start_api_relay(control_plane: ControlPlane, node_ip: str) -> TcpRelay:
    """The API server, reachable from pods at the node's address (it listens on loopback only)."""
    target = control_plane.server.removeprefix("https://")
    host, port = target.rsplit(":", 1)
    relay = TcpRelay(host, int(port), host=node_ip)
    relay.start()
    return relay


def pod_kubeconfig(
    control_plane: ControlPlane, relay: TcpRelay, namespace: str, account: str, path: Path
) -> dict[str, object]:
    """A kubeconfig for a pod: a real token of `namespace/account`, the relay's address, the API server's name."""
    token = control_plane.kubectl("create", "token", account, "-n", namespace, "--duration=8760h").stdout.strip()
    config: dict[str, object] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "clawhost",
                "cluster": {
                    "server": f"https://{relay.address}",
                    "tls-server-name": API_SERVER_NAME,
                    "certificate-authority-data": _b64(control_plane.pki.ca_cert),
                },
            }
        ],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "clawhost", "context": {"cluster": "clawhost", "user": account}}],
        "current-context": "clawhost",
    }
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return config


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()
