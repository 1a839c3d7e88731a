"""The platform's namespaces are defined once, and installing every deploy folder keeps their Pod Security labels."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from clawhost_localcluster.environment import Cluster

REPO = Path(__file__).resolve().parents[2]
# In the order the README installs them.
DEPLOY_DIRS = [
    REPO / "deploy",
    REPO / "operator" / "deploy",
    REPO / "control_api" / "deploy",
    REPO / "proxy" / "deploy",
    REPO / "onboarding" / "deploy",
]
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def test_every_namespace_is_defined_once() -> None:
    defined = Counter(
        document["metadata"]["name"]
        for manifest in sorted(REPO.glob("**/deploy/*.yaml"))
        if ".venv" not in manifest.parts
        for document in yaml.safe_load_all(manifest.read_text())
        if document and document.get("kind") == "Namespace"
    )
    assert defined == {"platform": 1, "clawhost-secrets": 1}


@pytest.mark.cluster
def test_applying_every_deploy_folder_keeps_the_restricted_level(platform_installed: Cluster) -> None:
    # The installation as the README gives it: client-side apply, folder by folder (Deployments as server dry runs:
    # their images and Secrets are not here, and their pods are not what this is about).
    for directory in DEPLOY_DIRS:
        for manifest in sorted(directory.glob("*.yaml")):
            dry = ["--dry-run=server"] if "deployment" in manifest.name else []
            platform_installed.kubectl("apply", *dry, "-f", str(manifest))
    for namespace in ("platform", "clawhost-secrets"):
        labels = json.loads(platform_installed.kubectl("get", "namespace", namespace, "-o", "json").stdout)["metadata"][
            "labels"
        ]
        assert RESTRICTED.items() <= labels.items(), (namespace, labels)
