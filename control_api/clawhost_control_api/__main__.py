"""Run the control API: `python -m clawhost_control_api`."""

from __future__ import annotations

import uvicorn

from clawhost_api.logs import configure_logging, configure_uvicorn_logging
from clawhost_control_api.core.config import get_settings
from clawhost_control_api.main import create_app


def main() -> None:
    configure_logging()
    configure_uvicorn_logging()
    settings = get_settings()
    # log_config=None: uvicorn keeps the JSON logging set up above instead of installing its own format.
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info", log_config=None)


if __name__ == "__main__":
    main()
