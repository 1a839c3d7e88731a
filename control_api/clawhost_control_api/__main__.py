"""Run the control API: `python -m clawhost_control_api`."""

from __future__ import annotations

import logging

import uvicorn

from clawhost_api.logs import configure_logging, configure_uvicorn_logging
from clawhost_control_api.core.config import get_settings
from clawhost_control_api.core.errors import SettingsError
from clawhost_control_api.main import create_app

log = logging.getLogger("clawhost_control_api")


def main() -> None:
    configure_logging()
    configure_uvicorn_logging()
    try:
        settings = get_settings()
    except SettingsError as error:
        log.error("%s", error)  # one line naming each bad variable, never its value
        raise SystemExit(2) from None
    # log_config=None: uvicorn keeps the JSON logging set up above instead of installing its own format.
    # proxy_headers off: the client address is derived in one place (api/client_ip.py) from the
    # trusted proxies setting, not also by uvicorn from its own FORWARDED_ALLOW_IPS.
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        log_config=None,
        proxy_headers=False,
        # The chat's own limit answers with an error frame; this one, well above it, drops what is far beyond.
        ws_max_size=4 * settings.onboarding_max_frame_bytes,
    )


if __name__ == "__main__":
    main()
