"""Pure renderers: one Customer (+ tier, settings, secrets) → the desired child objects, as plain dicts."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from typing import Any

from clawhost_api.customer import API_VERSION, KIND, LABEL_CUSTOMER, LABEL_MANAGED_BY, namespace_for
from clawhost_api.tiers import Tier
from clawhost_operator.openclaw_config import GATEWAY_PORT

MANAGER = "clawhost-operator"
GATEWAY_NAME = "gateway"
SECRET_NAME = "gateway-inputs"
QUOTA_NAME = "gateway-quota"
POLICY_NAME = "gateway-egress"
SERVICE_ACCOUNT_NAME = "gateway"
ANNOTATION_CONFIG_HASH = "clawhost.dev/config-hash"
ANNOTATION_ROTATION = "clawhost.dev/proxy-token-rotation"
GATEWAY_UID = 10001
PRIVATE_V4 = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10", "127.0.0.0/8"]
NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052's well-known prefix: 64:ff9b::a.b.c.d is IPv4 a.b.c.d


def _nat64(v4: str) -> str:
    network = ipaddress.IPv4Network(v4)
    embedded = int(NAT64_PREFIX.network_address) + int(network.network_address)
    return str(ipaddress.IPv6Network((embedded, NAT64_PREFIX.prefixlen + network.prefixlen)))


# Public IPv6 is named, not derived as ::/0 minus a list: an IPv6 form of an IPv4 address must never let a private
# IPv4 address through. Global unicast (2000::/3) holds no IPv4-mapped (::ffff:0:0/96; the API server even reads
# that CIDR as IPv4 and refuses it as an exception of ::/0), IPv4-compatible (::/96), loopback, unique-local or
# link-local address; its two ranges that embed an IPv4 address (Teredo 2001::/32, 6to4 2002::/16) are left out.
# The cluster's NAT64, if it has one, translates the well-known prefix to IPv4: allowed, but for the images of the
# private IPv4 ranges.
PUBLIC_V6 = [
    {"cidr": "2000::/3", "except": ["2001::/32", "2002::/16"]},
    {"cidr": str(NAT64_PREFIX), "except": [_nat64(v4) for v4 in PRIVATE_V4]},
]

Obj = dict[str, Any]

# Secret keys, and the env var each lands in.
KEY_BOT_TOKEN = "telegram-bot-token"
KEY_PROXY_TOKEN = "proxy-token"
KEY_GATEWAY_TOKEN = "gateway-token"
KEY_CONFIG = "openclaw.json"
KEY_EXTRA_CA = "extra-ca.pem"  # only where the platform sets a CA for the gateway to trust (a test's Bot API stand-in)
CONFIG_DIR = "/etc/openclaw"


def canonical_cpu(value: str) -> str:
    """The API server's canonical form ("1000m" → "1"), so a re-read object compares equal."""
    if value.endswith("m") and int(value[:-1]) % 1000 == 0:
        return str(int(value[:-1]) // 1000)
    return value


def labels_for(customer: str) -> dict[str, str]:
    return {LABEL_CUSTOMER: customer, LABEL_MANAGED_BY: MANAGER}


def _meta(name: str, customer: str, namespace: str | None = None) -> Obj:
    meta: Obj = {"name": name, "labels": labels_for(customer)}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def render_namespace(customer: str, customer_uid: str) -> Obj:
    meta = _meta(namespace_for(customer), customer)
    meta["labels"].update(
        {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
            "pod-security.kubernetes.io/warn": "restricted",
            "pod-security.kubernetes.io/audit": "restricted",
        }
    )
    meta["ownerReferences"] = [
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": customer,
            "uid": customer_uid,
            "controller": True,
            "blockOwnerDeletion": False,
        }
    ]
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def secret_data(
    bot_token: str, proxy_token: str, gateway_token: str, config_json: str, extra_ca_pem: str | None = None
) -> dict[str, str]:
    data = {
        KEY_BOT_TOKEN: bot_token,
        KEY_PROXY_TOKEN: proxy_token,
        KEY_GATEWAY_TOKEN: gateway_token,
        KEY_CONFIG: config_json,
    }
    if extra_ca_pem:
        data[KEY_EXTRA_CA] = extra_ca_pem
    return data


def config_hash(data: dict[str, str]) -> str:
    """Hash of everything the gateway reads: a change (and only a change) restarts the pod."""
    digest = hashlib.sha256()
    for key in sorted(data):
        digest.update(key.encode() + b"\0" + data[key].encode() + b"\0")
    return digest.hexdigest()[:32]


def render_secret(customer: str, data: dict[str, str], rotation: str) -> Obj:
    meta = _meta(SECRET_NAME, customer, namespace_for(customer))
    meta["annotations"] = {ANNOTATION_ROTATION: rotation}
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque", "data": encoded}


def render_quota(customer: str, tier: Tier) -> Obj:
    # Exactly one gateway pod fits: the Deployment uses the Recreate strategy, so no surge pod is needed.
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": _meta(QUOTA_NAME, customer, namespace_for(customer)),
        "spec": {
            "hard": {
                "pods": "1",
                "requests.cpu": canonical_cpu(tier.cpu_request),
                "limits.cpu": canonical_cpu(tier.cpu_limit),
                "requests.memory": tier.memory_request,
                "limits.memory": tier.memory_limit,
                "services": "0",
                "persistentvolumeclaims": "0",
            }
        },
    }


def render_service_account(customer: str) -> Obj:
    """The gateway's own identity: no RBAC, no token mounted.

    Its own rather than the namespace's "default": a pod may only be created once its ServiceAccount exists,
    and "default" comes from the controller-manager's ServiceAccount controller some time after the
    namespace. Under a burst of new namespaces that lag made the ReplicaSet controller's pod creations fail
    and back off exponentially (hundreds of FailedCreate events at 1,000 new customers).
    """
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(SERVICE_ACCOUNT_NAME, customer, namespace_for(customer)),
        "automountServiceAccountToken": False,
    }


def render_network_policy(customer: str, proxy_namespace: str) -> Obj:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(POLICY_NAME, customer, namespace_for(customer)),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": [
                {  # cluster DNS
                    "to": [
                        {
                            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                        }
                    ],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                },
                {  # the token proxy, the pod's only way to an LLM
                    "to": [
                        {
                            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": proxy_namespace}},
                            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "token-proxy"}},
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": 8080}],
                },
                {  # HTTPS to public addresses only (api.telegram.org cannot be named in a NetworkPolicy)
                    "to": [
                        {"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE_V4}},
                        *({"ipBlock": block} for block in PUBLIC_V6),
                    ],
                    "ports": [{"protocol": "TCP", "port": 443}],
                },
            ],
        },
    }


def _probe(path: str, period: int, failures: int, timeout: int) -> Obj:
    """An httpGet probe: the kubelet asks, no process starts in the pod (an exec probe running `node -e` cost
    ~60 ms of CPU and a 62 MB process each time, measured with OpenClaw's Node 24). The gateway's UI answers
    unknown paths with 200, so a status-only probe is only sound for a release that serves these routes: the
    pinned OPENCLAW_VERSION does (503 until ready), and the real-node tests run it."""
    return {
        "httpGet": {"path": path, "port": GATEWAY_PORT, "scheme": "HTTP"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": timeout,
    }


ISOLATION_GATE_NAME = "wait-for-isolation"
# A NetworkPolicy enforcer programs a new pod's rules some time after the pod has its address (kube-router, K3s'
# embedded one: measured here, a pod's first connection got through). So the gateway starts only once its egress
# policy is seen in force: the API server's Service (KUBERNETES_SERVICE_HOST, always set, always listening) is
# reachable until then and refused after. Up to 120 s; then the init container fails and the kubelet retries.
_ISOLATION_GATE = (
    "const net=require('net');const host=process.env.KUBERNETES_SERVICE_HOST;"
    "const port=+(process.env.KUBERNETES_SERVICE_PORT||443);const deadline=Date.now()+120000;"
    "if(!host){process.exit(0)}"
    "(function attempt(){const s=net.connect({host,port});s.setTimeout(1000);"
    "const isolated=()=>{s.destroy();console.log('egress policy in force');process.exit(0)};"
    "s.on('connect',()=>{s.destroy();if(Date.now()>deadline){console.error('egress policy not in force');"
    "process.exit(1)}setTimeout(attempt,200)});s.on('timeout',isolated);s.on('error',isolated)})()"
)


def _secret_env(name: str, key: str) -> Obj:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": key}}}


def render_deployment(
    customer: str, tier: Tier, image: str, replicas: int, inputs_hash: str, extra_ca: bool = False
) -> Obj:
    """`extra_ca`: the Secret holds a CA certificate the gateway trusts beside the public ones (NODE_EXTRA_CA_CERTS)."""
    selector = {"app.kubernetes.io/name": "openclaw-gateway", LABEL_CUSTOMER: customer}
    container: Obj = {
        "name": GATEWAY_NAME,
        "image": image,
        "args": ["gateway", "run"],
        "ports": [{"name": "gateway", "containerPort": GATEWAY_PORT, "protocol": "TCP"}],
        "env": [
            {"name": "OPENCLAW_CONFIG_PATH", "value": f"{CONFIG_DIR}/{KEY_CONFIG}"},
            {"name": "OPENCLAW_STATE_DIR", "value": "/state"},
            {"name": "TMPDIR", "value": "/tmp"},
            {"name": "HOME", "value": "/state"},
            {"name": "NODE_OPTIONS", "value": f"--max-old-space-size={tier.node_heap_mb}"},
            _secret_env("TELEGRAM_BOT_TOKEN", KEY_BOT_TOKEN),
            _secret_env("KIMI_API_KEY", KEY_PROXY_TOKEN),
            _secret_env("OPENCLAW_GATEWAY_TOKEN", KEY_GATEWAY_TOKEN),
            *([{"name": "NODE_EXTRA_CA_CERTS", "value": f"{CONFIG_DIR}/{KEY_EXTRA_CA}"}] if extra_ca else []),
        ],
        "resources": {
            "requests": {"cpu": canonical_cpu(tier.cpu_request), "memory": tier.memory_request},
            "limits": {"cpu": canonical_cpu(tier.cpu_limit), "memory": tier.memory_limit},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": GATEWAY_UID,
            "runAsGroup": GATEWAY_UID,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "state", "mountPath": "/state"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        # Live after ~18-21 s on an idle 2-core machine, up to ~290 s on a saturated one (load 20, measured on the
        # real node): the startup probe allows 600 s (OpenClaw's own manifest: 300) before liveness takes over.
        # Startup and liveness ask /healthz (the process serves), readiness /readyz (channels connected too): a
        # Telegram outage or a revoked bot token makes the pod NotReady, not restarted in a loop.
        "startupProbe": _probe("/healthz", period=3, failures=200, timeout=3),
        "livenessProbe": _probe("/healthz", period=20, failures=3, timeout=5),
        "readinessProbe": _probe("/readyz", period=10, failures=3, timeout=5),
    }
    gate: Obj = {
        "name": ISOLATION_GATE_NAME,
        "image": image,
        "command": ["node", "-e", _ISOLATION_GATE],
        "resources": {
            "requests": {"cpu": "10m", "memory": "64Mi"},
            "limits": {"cpu": canonical_cpu(tier.cpu_limit), "memory": "128Mi"},
        },
        "securityContext": container["securityContext"],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(GATEWAY_NAME, customer, namespace_for(customer)),
        "spec": {
            "replicas": replicas,
            "strategy": {"type": "Recreate"},
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": {**selector, **labels_for(customer)},
                    "annotations": {ANNOTATION_CONFIG_HASH: inputs_hash},
                },
                "spec": {
                    "serviceAccountName": SERVICE_ACCOUNT_NAME,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": GATEWAY_UID,
                        "runAsGroup": GATEWAY_UID,
                        "fsGroup": GATEWAY_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "initContainers": [gate],
                    "containers": [container],
                    "volumes": [
                        {
                            "name": "config",
                            "secret": {
                                "secretName": SECRET_NAME,
                                "items": [
                                    {"key": key, "path": key}
                                    for key in (KEY_CONFIG, *([KEY_EXTRA_CA] if extra_ca else []))
                                ],
                            },
                        },
                        {"name": "state", "emptyDir": {"sizeLimit": "1Gi"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
                    ],
                    "terminationGracePeriodSeconds": 20,
                },
            },
        },
    }
