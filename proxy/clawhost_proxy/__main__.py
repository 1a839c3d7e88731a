"""`python -m clawhost_proxy`: serve the token proxy (settings from CLAWHOST_PROXY_* env vars)."""

from __future__ import annotations

import asyncio
import logging
import signal

import uvloop
from aiohttp import web

from clawhost_api.kube import Informer, KubeHttp, load_config
from clawhost_api.logs import configure_logging
from clawhost_proxy.admin import admin_application
from clawhost_proxy.app import Proxy
from clawhost_proxy.directory import CUSTOMERS, TokenDirectory
from clawhost_proxy.ledger import LedgerFlusher
from clawhost_proxy.limits import TokenLimiter
from clawhost_proxy.resp import PipelinedRedis
from clawhost_proxy.settings import ProxySettings

logger = logging.getLogger("clawhost.proxy")


def build(settings: ProxySettings, directory: TokenDirectory) -> Proxy:
    """The proxy's application wired to Redis (limits, ledger buffer) and, when configured, PostgreSQL."""
    # The hot path's two scripts per request share one pipelined connection (see resp.py).
    limiter = TokenLimiter(
        PipelinedRedis(settings.redis_url, timeout=settings.redis_timeout_seconds), settings.ledger_stream
    )
    flusher = None
    if settings.postgres_dsn is not None:
        flusher = LedgerFlusher(
            # Its own connection: a blocking XREADGROUP never delays the request path's commands.
            PipelinedRedis(settings.redis_url, timeout=10),
            settings.postgres_dsn.get_secret_value(),
            stream=settings.ledger_stream,
            group=settings.ledger_group,
            consumer=settings.consumer_name(),
            batch_size=settings.ledger_batch_size,
            linger_seconds=settings.ledger_linger_seconds,
            claim_idle_seconds=settings.ledger_claim_idle_seconds,
        )
    else:
        logger.warning("no CLAWHOST_PROXY_POSTGRES_DSN: ledger rows stay buffered in Redis")
    return Proxy(settings, directory, limiter, flusher)


async def serve(settings: ProxySettings, directory: TokenDirectory) -> None:
    runner = web.AppRunner(build(settings, directory).application(), access_log=None)
    admin = web.AppRunner(admin_application(directory, settings.directory_stale_seconds), access_log=None)
    await runner.setup()
    await admin.setup()
    await web.TCPSite(runner, settings.host, settings.port, backlog=1024).start()
    await web.TCPSite(admin, settings.host, settings.admin_port).start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    logger.info("serving", extra={"host": settings.host, "port": settings.port, "admin_port": settings.admin_port})
    try:
        await stopping.wait()
    finally:
        await runner.cleanup()
        await admin.cleanup()


def main() -> None:
    configure_logging()
    settings = ProxySettings()
    directory = TokenDirectory()
    http = KubeHttp(load_config(settings.kubeconfig), user_agent="clawhost-proxy")
    # A watch ends (and is opened again) at least every directory_watch_seconds: its opening is how the
    # directory knows it is current when no Customer changes, so that stays well under the staleness limit.
    informer = Informer(http, CUSTOMERS, directory, name="customers", watch_seconds=settings.directory_watch_seconds)
    directory.clock = informer
    informer.start()
    try:
        uvloop.run(serve(settings, directory))
    finally:
        informer.stop()


if __name__ == "__main__":
    main()
