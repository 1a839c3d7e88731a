"""`python -m clawhost_onboarding`: serve the onboarding service (settings from CLAWHOST_ONBOARDING_* env vars)."""

from __future__ import annotations

import logging

import uvicorn

from clawhost_api.logs import configure_logging, configure_uvicorn_logging
from clawhost_onboarding.app import create_app
from clawhost_onboarding.settings import SettingsError, load_settings

logger = logging.getLogger("clawhost.onboarding")
# Libraries that would log a request line with its URL: the Bot API's URLs carry the user's bot token.
QUIET = ("httpx", "httpcore", "openai", "langchain", "langchain_core", "langchain_openai")


def main() -> None:
    configure_logging(quiet=QUIET)
    configure_uvicorn_logging()
    try:
        settings = load_settings()
    except SettingsError as error:
        logger.error("%s", error)  # names each bad variable, never its value
        raise SystemExit(2) from None
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        log_config=None,
        proxy_headers=False,
        ws_max_size=64 * 1024,
    )


if __name__ == "__main__":
    main()
