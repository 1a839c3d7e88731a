"""The control API's calls for Customers and bot-token Secrets: GET, create and server-side apply.

They go over the shared lean client (`clawhost_api.kube`) on worker threads (`asyncio.to_thread`), so an event
loop never waits on a socket. Every failure, the API server's refusal or no answer at all, is a `KubeError`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from clawhost_api.customer import API_VERSION, BOT_TOKEN_NAMESPACE, GROUP, KIND, PLURAL, VERSION
from clawhost_api.kube import KubeError, KubeHttp, load_config
from clawhost_api.kube.config import in_cluster

BILLING_MANAGER = "clawhost-billing"
API_MANAGER = "clawhost-api"
DASHBOARD_MANAGER = "clawhost-dashboard"
_APPLY = "application/apply-patch+yaml"
CUSTOMERS = f"/apis/{GROUP}/{VERSION}/{PLURAL}"

__all__ = ["API_MANAGER", "BILLING_MANAGER", "CUSTOMERS", "DASHBOARD_MANAGER", "KubeClient", "KubeError"]


TOKEN_UNCHANGED = "clawhost: the bot token is unchanged"  # noqa: S105 - a policy message, not a secret


class KubeClient:
    def __init__(self, http: KubeHttp) -> None:
        self.http = http

    @classmethod
    def connect(cls, kubeconfig: Path | None) -> KubeClient:
        """`kubeconfig`, or the pod's own ServiceAccount when it is None."""
        config = load_config(kubeconfig) if kubeconfig is not None else in_cluster()
        return cls(KubeHttp(config, user_agent="clawhost-control-api"))

    def close(self) -> None:
        """Close the connections the worker threads kept alive (they outlive any one request)."""
        self.http.close()

    async def _call(
        self, method: str, path: str, body: object | None = None, content_type: str = "application/json", **query: str
    ) -> dict[str, Any]:
        data = await asyncio.to_thread(self.http.call, method, path, body, content_type, list(query.items()) or None)
        answer: dict[str, Any] = orjson.loads(data)
        return answer

    async def get_customer(self, name: str) -> dict[str, Any]:
        return await self._call("GET", f"{CUSTOMERS}/{name}")

    async def list_customers(self) -> dict[str, Any]:
        return await self._call("GET", CUSTOMERS)

    async def create_customer(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call("POST", CUSTOMERS, body, fieldManager=API_MANAGER)

    async def apply_customer(
        self, name: str, fields: dict[str, Any], manager: str, subresource: str = ""
    ) -> dict[str, Any]:
        """Server-side apply of `fields` (spec or status parts) with `manager`; other managers' fields stay."""
        body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, **fields}
        path = f"{CUSTOMERS}/{name}/{subresource}" if subresource else f"{CUSTOMERS}/{name}"
        return await self._call("PATCH", path, body, _APPLY, fieldManager=manager, force="true")

    async def delete_customer(self, name: str) -> None:
        """Delete a Customer; its finalizer (set at admission) makes the operator remove the namespace first."""
        await self._call("DELETE", f"{CUSTOMERS}/{name}")

    async def delete_bot_token_secret(self, name: str) -> None:
        """Delete a bot-token Secret. The answer is a Status, never the Secret (the RBAC test checks that)."""
        await self._call("DELETE", f"/api/v1/namespaces/{BOT_TOKEN_NAMESPACE}/secrets/{name}")

    async def apply_bot_token_secret(self, name: str, key: str, token: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": BOT_TOKEN_NAMESPACE},
            "type": "Opaque",
            "stringData": {key: token},
        }
        path = f"/api/v1/namespaces/{BOT_TOKEN_NAMESPACE}/secrets/{name}"
        try:
            await self._call("PATCH", path, body, _APPLY, fieldManager=API_MANAGER, force="true")
        except KubeError as error:
            # control_api/deploy/15-bot-token-policy.yaml refuses an update that keeps a stored value (so a PATCH
            # can never read a token back): refused as unchanged, the token we sent is the one stored.
            if error.status != 422 or TOKEN_UNCHANGED not in error.message:
                raise
