"""A small async client for Customers and bot-token Secrets: GET/LIST/WATCH and server-side apply."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from clawhost_api.customer import API_VERSION, BOT_TOKEN_NAMESPACE, GROUP, KIND, PLURAL, VERSION

BILLING_MANAGER = "clawhost-billing"
API_MANAGER = "clawhost-api"
DASHBOARD_MANAGER = "clawhost-dashboard"
_APPLY = "application/apply-patch+yaml"
_CUSTOMERS = f"/apis/{GROUP}/{VERSION}/{PLURAL}"


class KubeError(Exception):
    def __init__(self, status: int, reason: str, message: str = "") -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason
        self.message = message  # the API server's explanation (field paths and rules, never Secret data)


@dataclass
class KubeClient:
    http: httpx.AsyncClient

    @classmethod
    def connect(cls, kubeconfig: Path | None) -> KubeClient:
        cfg = k8s_client.Configuration()
        if kubeconfig is None:
            k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        else:
            k8s_config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)  # type: ignore[no-untyped-call]
        context = (
            ssl.create_default_context(cafile=cfg.ssl_ca_cert) if cfg.ssl_ca_cert else ssl.create_default_context()
        )
        if cfg.cert_file and cfg.key_file:
            context.load_cert_chain(cfg.cert_file, cfg.key_file)
        headers = {}
        token = cfg.api_key.get("authorization") or cfg.api_key.get("BearerToken")
        if token:
            headers["Authorization"] = token if token.startswith("Bearer ") else f"Bearer {token}"
        limits = httpx.Limits(max_connections=20, max_keepalive_connections=20)
        http = httpx.AsyncClient(base_url=cfg.host, verify=context, headers=headers, limits=limits, timeout=30)
        return cls(http)

    async def close(self) -> None:
        await self.http.aclose()

    async def _json(self, response: httpx.Response) -> dict[str, Any]:
        if response.status_code >= 400:
            try:
                problem = response.json()
                reason, message = str(problem.get("reason", "")), str(problem.get("message", ""))
            except (ValueError, AttributeError):
                reason, message = "", ""
            raise KubeError(response.status_code, reason or response.reason_phrase, message)
        body: dict[str, Any] = response.json()
        return body

    async def get_customer(self, name: str) -> dict[str, Any]:
        return await self._json(await self.http.get(f"{_CUSTOMERS}/{name}"))

    async def list_customers(self) -> dict[str, Any]:
        return await self._json(await self.http.get(_CUSTOMERS))

    async def create_customer(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._json(await self.http.post(_CUSTOMERS, json=body, params={"fieldManager": API_MANAGER}))

    async def apply_customer(
        self, name: str, fields: dict[str, Any], manager: str, subresource: str = ""
    ) -> dict[str, Any]:
        """Server-side apply of `fields` (spec or status parts) with `manager`; other managers' fields stay."""
        body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, **fields}
        path = f"{_CUSTOMERS}/{name}/{subresource}" if subresource else f"{_CUSTOMERS}/{name}"
        response = await self.http.patch(
            path,
            content=json.dumps(body),
            headers={"Content-Type": _APPLY},
            params={"fieldManager": manager, "force": "true"},
        )
        return await self._json(response)

    async def apply_bot_token_secret(self, name: str, key: str, token: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": BOT_TOKEN_NAMESPACE},
            "type": "Opaque",
            "stringData": {key: token},
        }
        response = await self.http.patch(
            f"/api/v1/namespaces/{BOT_TOKEN_NAMESPACE}/secrets/{name}",
            content=json.dumps(body),
            headers={"Content-Type": _APPLY},
            params={"fieldManager": API_MANAGER, "force": "true"},
        )
        await self._json(response)

    async def watch_customers(self, resource_version: str) -> AsyncIterator[dict[str, Any]]:
        params = {"watch": "true", "resourceVersion": resource_version, "allowWatchBookmarks": "true"}
        async with self.http.stream("GET", _CUSTOMERS, params=params, timeout=None) as response:
            if response.status_code >= 400:
                raise KubeError(response.status_code, "watch failed")
            async for line in response.aiter_lines():
                if line:
                    yield json.loads(line)
