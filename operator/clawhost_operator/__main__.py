"""`python -m clawhost_operator`: run the operator cluster-wide (kubeconfig from KUBECONFIG or in-cluster)."""

from __future__ import annotations

import logging
import signal
import threading

from clawhost_api.logs import configure_logging
from clawhost_operator.controller import Operator
from clawhost_operator.settings import OperatorSettings

logger = logging.getLogger("clawhost.operator")


def main() -> None:
    configure_logging()
    operator = Operator.from_settings(OperatorSettings())
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    operator.start()
    stop.wait()
    logger.info("stopping")
    operator.stop()


if __name__ == "__main__":
    main()
