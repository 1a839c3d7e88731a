"""The site under test: a control API started as `make up` starts it, and what browser tests need to know of it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clawhost_localcluster.control_api_process import ControlApiProcess
from clawhost_localcluster.environment import Cluster

REPO = Path(__file__).resolve().parents[2]
CONTROL_API_DEPLOY = REPO / "control_api" / "deploy"

# Every browser of a test run signs in from 127.0.0.1, so the per-IP sign-in limits (a person's defaults: 10
# sign-ups an hour) are raised; the per-account limits stay as shipped, and the rate-limit test meets one of them.
_MANY = json.dumps({"count": 10000, "seconds": 60})
SITE_TEST_LIMITS = {
    "CLAWHOST_API_LOGIN_PER_IP": _MANY,
    "CLAWHOST_API_SIGNUP_PER_IP": _MANY,
    "CLAWHOST_API_REFRESH_PER_IP": _MANY,
}


@dataclass(frozen=True)
class SiteServer:
    api: ControlApiProcess
    database_url: str
    cluster: Cluster

    @property
    def url(self) -> str:
        return self.api.url


StartSite = Callable[..., SiteServer]  # keyword arguments: CLAWHOST_API_* settings, e.g. access_token_ttl_seconds="3"


def apply_control_api_rbac(cluster: Cluster) -> None:
    """The control API's ServiceAccount, RBAC and bot-token admission policy, as `make up` applies them."""
    for manifest in sorted(CONTROL_API_DEPLOY.glob("*.yaml")):
        if "deployment" not in manifest.name:
            cluster.kubectl("apply", "-f", str(manifest))
