"""The control API application factory."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from clawhost_control_api.api.body_limit import BodyLimit
from clawhost_control_api.api.rate_limits import RateLimiter
from clawhost_control_api.api.routes import (
    agent,
    agent_delete,
    agent_events,
    auth,
    billing,
    local_checkout,
    onboarding_socket,
    usage,
    webhooks,
)
from clawhost_control_api.api.routes.webhooks import STRIPE_WEBHOOK_PATH
from clawhost_control_api.api.state import AppState
from clawhost_control_api.core.config import Settings, get_settings
from clawhost_control_api.core.errors import ApiError
from clawhost_control_api.core.passwords import PasswordHashing
from clawhost_control_api.core.security import KeyPair, TokenIssuer
from clawhost_control_api.db.migrations import migrate
from clawhost_control_api.kube.cache import CustomerCache
from clawhost_control_api.kube.client import KubeClient
from clawhost_control_api.metrics import Metrics, MetricsServer, RequestMetrics
from clawhost_control_api.web import dashboard_page, pages
from clawhost_control_api.web.api_docs import docs_router
from clawhost_control_api.web.browser_session import serves_https
from clawhost_control_api.web.security_headers import SecurityHeaders
from clawhost_control_api.web.static_files import VersionedStaticFiles
from clawhost_control_api.web.templating import STATIC, STATIC_PREFIX


def create_app(settings: Settings | None = None) -> FastAPI:
    config = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        migrate(config.database_url.get_secret_value())
        keys = KeyPair.from_files(config.jwt_private_key_file, config.jwt_public_key_file, config.jwt_key_id)
        issuer = TokenIssuer(
            keys,
            config.jwt_issuer,
            config.jwt_audience,
            timedelta(seconds=config.access_token_ttl_seconds),
            timedelta(seconds=config.refresh_token_ttl_seconds),
        )
        pool = AsyncConnectionPool(config.database_url.get_secret_value(), max_size=config.db_pool_max, open=False)
        await pool.open(wait=True)
        in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        kube = KubeClient.connect(config.kubeconfig) if config.kubeconfig or in_cluster else None
        redis = Redis.from_url(config.redis_url)
        cache = CustomerCache(kube) if kube is not None else None
        if cache is not None:
            await cache.start()
        passwords = PasswordHashing(config.hashing_concurrency, config.hashing_queue)
        metrics_server = (
            MetricsServer.start(metrics, config.host, config.metrics_port) if config.metrics_port is not None else None
        )
        app.state.metrics_port = metrics_server.port if metrics_server else None
        app.state.clawhost = AppState(
            settings=config,
            pool=pool,
            issuer=issuer,
            kube=kube,
            cache=cache,
            redis=redis,
            passwords=passwords,
            limiter=RateLimiter(redis, config, metrics),
            metrics=metrics,
        )
        try:
            yield
        finally:
            if metrics_server is not None:
                metrics_server.stop()
            passwords.close()
            if cache is not None:
                await cache.stop()
            if kube is not None:
                kube.close()
            await redis.aclose()
            await pool.close()

    metrics = Metrics()
    title = "clawhost control API"
    app = FastAPI(title=title, version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    # The last added runs first: every request is counted, the ones refused for their size included, and every
    # answer carries the security headers.
    app.add_middleware(
        BodyLimit, default=config.max_body_bytes, per_path={STRIPE_WEBHOOK_PATH: config.webhook_max_body_bytes}
    )
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.add_middleware(SecurityHeaders, https=serves_https(config))
    app.include_router(docs_router(app.openapi_url or "/openapi.json", title))
    app.include_router(pages.router)
    app.include_router(pages.token_router)
    app.include_router(dashboard_page.router)
    app.mount(STATIC_PREFIX, VersionedStaticFiles(directory=STATIC), name="static")
    app.include_router(auth.router)
    app.include_router(webhooks.router)
    app.include_router(agent.router)
    app.include_router(agent_events.router)
    app.include_router(agent_delete.router)
    app.include_router(usage.router)
    app.include_router(billing.router)
    app.include_router(local_checkout.router)
    app.include_router(onboarding_socket.router)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        # Echo where and why, never the submitted value (it may be a password or a bot token).
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in error.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(ApiError)
    async def answer(_: Request, error: ApiError) -> JSONResponse:
        return JSONResponse({"detail": error.detail}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, __: Exception) -> JSONResponse:
        # Never leak a stack trace or internal detail to the client.
        return JSONResponse({"detail": "internal error"}, status_code=500)

    return app
