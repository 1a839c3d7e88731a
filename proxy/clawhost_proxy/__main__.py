"""`python -m clawhost_proxy`: serve the token proxy (settings from CLAWHOST_PROXY_* env vars)."""

from __future__ import annotations

import logging
import threading

import kubernetes
import redis.asyncio as aioredis
from aiohttp import web

from clawhost_proxy.app import Proxy
from clawhost_proxy.directory import TokenDirectory, watch_customers
from clawhost_proxy.limits import TokenLimiter
from clawhost_proxy.settings import ProxySettings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = ProxySettings()
    if settings.kubeconfig is not None:
        kubernetes.config.load_kube_config(config_file=str(settings.kubeconfig))  # type: ignore[no-untyped-call]
    else:
        kubernetes.config.load_config()  # type: ignore[no-untyped-call]
    directory = TokenDirectory()
    stop = threading.Event()
    threading.Thread(
        target=watch_customers,
        args=(directory, kubernetes.client.ApiClient(), stop),
        name="customer-watch",
        daemon=True,
    ).start()
    # Requests wait (up to 5 s) for a pooled connection instead of failing under bursts.
    pool = aioredis.BlockingConnectionPool.from_url(settings.redis_url, max_connections=64, timeout=5)
    limiter = TokenLimiter(aioredis.Redis(connection_pool=pool))
    try:
        web.run_app(
            Proxy(settings, directory, limiter).application(),
            host=settings.host,
            port=settings.port,
            access_log=None,
            print=None,
        )
    finally:
        stop.set()


if __name__ == "__main__":
    main()
