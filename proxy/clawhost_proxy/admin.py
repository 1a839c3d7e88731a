"""The admin port: probes and Prometheus metrics, apart from the port customers' pods may reach."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from clawhost_proxy.directory import TokenDirectory


def admin_application(directory: TokenDirectory) -> web.Application:
    """`/healthz`, `/readyz` and `/metrics`: for the kubelet and Prometheus, never for tenants."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def readyz(_: web.Request) -> web.Response:
        ready = directory.synced.is_set()
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
