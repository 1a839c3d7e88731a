"""`python -m clawhost_operator`: run the operator cluster-wide (kubeconfig from KUBECONFIG or in-cluster)."""

from __future__ import annotations

import json
import logging
import sys

import kopf

from clawhost_operator import handlers


class JsonFormatter(logging.Formatter):
    """One JSON object per line; only fields we put there (names, counts, statuses), never secret values."""

    _skip = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update({k: v for k, v in record.__dict__.items() if k not in self._skip and not k.startswith("_")})
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def main() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    logging.getLogger("kopf").setLevel(logging.WARNING)
    settings = handlers.SETTINGS
    kopf.run(
        standalone=True,
        clusterwide=True,
        liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
    )


if __name__ == "__main__":
    main()
