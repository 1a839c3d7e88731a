"""The admin port: probes and Prometheus metrics, apart from the port customers' pods may reach."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from clawhost_proxy.directory import TokenDirectory


def admin_application(directory: TokenDirectory, stale_seconds: float) -> web.Application:
    """`/healthz`, `/readyz` and `/metrics`: for the kubelet and Prometheus, never for tenants.

    Not ready until the token directory is listed, nor once it has not been known current for `stale_seconds`:
    a directory the cluster has not confirmed lately may still honour revoked tokens (fail closed).
    """

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def readyz(_: web.Request) -> web.Response:
        stale = directory.seconds_since_sync() > stale_seconds
        ready = directory.synced.is_set() and not stale
        return web.json_response({"ready": ready, "stale": stale}, status=200 if ready else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
