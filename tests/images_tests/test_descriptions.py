"""The image descriptions (images/*.json) agree with what runs them: the operator's gateway Deployment, the npm
project and its lock, the platform's manifests; and Nix reads them as the local assembly does."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from clawhost_api.tiers import get_tier
from clawhost_localcluster.image_description import (
    IMAGES_DIR,
    REPO,
    DescriptionError,
    load_gateway,
    load_platform,
)
from clawhost_operator.children import GATEWAY_UID, render_deployment
from clawhost_operator.openclaw_config import GATEWAY_PORT, OPENCLAW_VERSION
from clawhost_operator.settings import OperatorSettings


def _gateway_container() -> dict[str, Any]:
    tier = get_tier("starter")
    deployment = render_deployment("alice", tier, OperatorSettings().gateway_image, 1, "hash")
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def test_the_gateway_image_is_the_one_the_operator_runs() -> None:
    gateway = load_gateway()
    assert gateway.reference == OperatorSettings().gateway_image
    assert gateway.tag == gateway.pins.openclaw == OPENCLAW_VERSION
    assert (gateway.user.uid, gateway.user.gid) == (GATEWAY_UID, GATEWAY_UID)
    assert f"{GATEWAY_PORT}/tcp" in gateway.exposed_ports


def test_the_deployments_args_run_the_gateway_through_the_entrypoint() -> None:
    """The pod gives `args` only, which replace the image's cmd: the entrypoint itself must start OpenClaw
    (under the init), or the pod would run `tini -- gateway run`."""
    gateway = load_gateway()
    container = _gateway_container()
    assert "command" not in container
    assert gateway.entrypoint[-1] == "/bin/openclaw"
    assert gateway.entrypoint[:2] == ["/bin/tini", "--"]
    assert container["args"] == gateway.cmd


def test_the_gateway_env_agrees_with_the_deployment_and_its_probes_reach_the_gateway_port() -> None:
    gateway = load_gateway()
    container = _gateway_container()
    pod_env = {item["name"]: item["value"] for item in container["env"] if "value" in item}
    shared = sorted(set(pod_env) & set(gateway.env))
    assert shared, "the pod and the image set no variable in common"
    assert {name: pod_env[name] for name in shared} == {name: gateway.env[name] for name in shared}
    # The kubelet's httpGet probes ask the port the image exposes; nothing in the image runs for them.
    ports = {port["containerPort"] for port in container["ports"]}
    assert {f"{port}/tcp" for port in ports} == set(gateway.exposed_ports)
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] in ports, probe
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    writable = {directory.path for directory in gateway.directories if directory.writable}
    assert writable == {path for path, mount in mounts.items() if not mount.get("readOnly")}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_npm_project_and_its_lock_pin_the_described_openclaw() -> None:
    gateway = load_gateway()
    project = IMAGES_DIR / gateway.npm_project
    package = json.loads((project / "package.json").read_text())
    lock = json.loads((project / "package-lock.json").read_text())
    assert package["dependencies"] == {"openclaw": gateway.pins.openclaw}
    assert lock["packages"][""]["dependencies"] == package["dependencies"]
    assert lock["packages"]["node_modules/openclaw"]["version"] == gateway.pins.openclaw
    # Nix's importNpmLock fetches every package by its `resolved` URL and checks its integrity; a bundled one
    # (`inBundle`) comes inside its parent's tarball.
    packages = {name: entry for name, entry in lock["packages"].items() if name and not entry.get("inBundle")}
    assert [name for name, entry in packages.items() if not entry.get("resolved") or not entry.get("integrity")] == []


def test_the_described_node_meets_openclaws_engines_range() -> None:
    gateway = load_gateway()
    lock = json.loads((IMAGES_DIR / gateway.npm_project / "package-lock.json").read_text())
    engines = lock["packages"]["node_modules/openclaw"]["engines"]["node"]
    assert engines.startswith(">=24.16.0 <25"), engines  # the range the pin below is checked against
    version = tuple(int(part) for part in gateway.pins.node.version.split("."))
    assert (24, 16, 0) <= version < (25, 0, 0)
    assert version[0] == gateway.pins.node.major


def test_the_platform_image_is_the_one_the_manifests_run() -> None:
    platform = load_platform()
    manifests = [REPO / "operator" / "deploy" / "30-deployment.yaml", REPO / "proxy" / "deploy" / "deployment.yaml"]
    for manifest in manifests:
        assert f"image: {platform.reference}" in manifest.read_text(), manifest
    for package, folder in platform.sources.items():
        assert (REPO / folder / "__init__.py").is_file(), package
    assert set(platform.services.values()) <= set(platform.sources)
    assert platform.user.uid != 0
    assert [d.path for d in platform.directories if d.writable] == ["/tmp"]


@pytest.mark.parametrize("name", ["gateway", "platform"])
def test_nix_reads_each_description_as_python_does(name: str) -> None:
    path = IMAGES_DIR / f"{name}.json"
    evaluated = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "--expr", f"builtins.fromJSON (builtins.readFile {path})"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(evaluated.stdout) == json.loads(path.read_text())


def test_a_description_with_an_unknown_field_is_refused_by_name(tmp_path: Path) -> None:
    document = json.loads((IMAGES_DIR / "gateway.json").read_text())
    document["entrypiont"] = document.pop("entrypoint")
    broken = tmp_path / "gateway.json"
    broken.write_text(json.dumps(document))
    with pytest.raises(DescriptionError, match="entrypiont"):
        load_gateway(broken)


# Fields that tell readers what an image holds (`contents`) or which module each service runs (`services`, used by
# the tests and the manifests); neither builder needs them to build.
INFORMATIVE_FIELDS = {"contents", "services"}


@pytest.mark.parametrize("name", ["gateway", "platform"])
def test_the_nix_build_reads_every_field_of_the_description(name: str) -> None:
    """A field the local assembly honours but Nix ignores would let the two images drift apart."""
    nix = "\n".join(path.read_text() for path in sorted(IMAGES_DIR.glob("*.nix")))
    assert f"./{name}.json" in (IMAGES_DIR / f"{name}.nix").read_text()
    fields = set(json.loads((IMAGES_DIR / f"{name}.json").read_text())) - INFORMATIVE_FIELDS
    unread = sorted(field for field in fields if f"description.{field}" not in nix)
    assert unread == []
