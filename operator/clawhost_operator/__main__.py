"""`python -m clawhost_operator`: run the operator cluster-wide (kubeconfig from KUBECONFIG or in-cluster)."""

from __future__ import annotations

import kopf

from clawhost_api.logs import configure_logging
from clawhost_operator import handlers


def main() -> None:
    configure_logging(quiet=["kopf"])
    settings = handlers.SETTINGS
    kopf.run(
        standalone=True,
        clusterwide=True,
        liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
    )


if __name__ == "__main__":
    main()
