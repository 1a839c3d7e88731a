"""Run the control API: `python -m clawhost_control_api`."""

from __future__ import annotations

import uvicorn

from clawhost_control_api.core.config import get_settings
from clawhost_control_api.main import create_app


def main() -> None:
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


if __name__ == "__main__":
    main()
