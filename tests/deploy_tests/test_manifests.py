"""The platform's manifests as kubenix renders them (nixos/kubenix/manifests.nix lists the files, render.nix applies
the settings), checked for what the settings change, then applied to the real API server: a server-side dry run of
every object with strict field validation (a misspelt field or a missing namespace fails), then for real."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.nix_eval import REPO, nix_eval

SETTINGS = "(import ./nixos/settings.nix)"
IMAGE_TAG = "0123abc"


def manifest_files() -> list[str]:
    files: list[str] = nix_eval("import ./nixos/kubenix/manifests.nix { root = ./.; }")
    return files


def objects_in(files: list[str]) -> list[dict[str, Any]]:
    return [doc for name in files for doc in yaml.safe_load_all((REPO / name).read_text()) if doc]


def render(objects: list[dict[str, Any]], tmp_path: Path, settings: str = SETTINGS) -> list[dict[str, Any]]:
    source = tmp_path / "objects.json"
    source.write_text(json.dumps(objects))
    rendered: list[dict[str, Any]] = nix_eval(
        f"import ./nixos/kubenix/render.nix {{ objects = builtins.fromJSON (builtins.readFile {source}); "
        f'settings = {settings}; imageTag = "{IMAGE_TAG}"; }}'
    )
    return rendered


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return render(objects_in(manifest_files()), tmp_path_factory.mktemp("render"))


def containers(objects: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(object, container) for every container of every workload."""
    for obj in objects:
        spec = obj.get("spec", {})
        template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template")
        if obj["kind"] in ("Deployment", "StatefulSet", "CronJob") and template:
            for container in template["spec"]["containers"]:
                yield obj, container


def test_every_deploy_folder_is_rendered() -> None:
    files = manifest_files()
    assert files[0] == "crds/customer.crd.yaml"
    on_disk = {
        str(p.relative_to(REPO))
        for p in REPO.glob("**/deploy/*.yaml")
        if not {".venv", ".run"} & set(p.relative_to(REPO).parts)
    }
    assert on_disk <= set(files), f"manifests kubenix would leave out: {on_disk - set(files)}"


def test_kubenix_keys_are_unique(rendered: list[dict[str, Any]]) -> None:
    """kubenix keeps objects by API version, kind and name (not namespace): two objects with the same key would merge
    into one."""
    keys = Counter((o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in rendered)
    assert [key for key, count in keys.items() if count > 1] == []


def test_the_settings_reach_the_manifests(rendered: list[dict[str, Any]]) -> None:
    settings = nix_eval(SETTINGS)
    text = json.dumps(rendered)
    assert "clawhost.example.com" in json.dumps(objects_in(manifest_files())), "the YAML names the example domain"
    if settings["domain"] != "clawhost.example.com":
        assert "clawhost.example.com" not in text
    platform = json.loads((REPO / "images" / "platform.json").read_text())
    gateway = json.loads((REPO / "images" / "gateway.json").read_text())
    ours = [(obj, c) for obj, c in containers(rendered) if "clawhost" in c["image"]]
    assert ours, "the platform's own workloads"
    for obj, container in ours:
        assert container["image"] == f"{settings['registry']}/{platform['name']}:{IMAGE_TAG}", obj["metadata"]["name"]
    env = {e["name"]: e.get("value") for _, c in containers(rendered) for e in c.get("env", [])}
    assert env["CLAWHOST_OPERATOR_GATEWAY_IMAGE"] == f"{settings['registry']}/{gateway['name']}:{gateway['tag']}"
    assert json.loads(env["CLAWHOST_API_STRIPE_PRICE_IDS"]) == settings["stripePriceIds"]
    ingress = next(o for o in rendered if o["kind"] == "Ingress")
    assert [rule["host"] for rule in ingress["spec"]["rules"]] == [settings["domain"]]
    assert ingress["spec"]["tls"] == [{"hosts": [settings["domain"]]}]


def test_another_domain_and_k3s_1_36(tmp_path: Path) -> None:
    settings = f'({SETTINGS} // {{ domain = "agents.example.org"; k3sPackage = "k3s_1_36"; }})'
    objects = render(objects_in(manifest_files()), tmp_path, settings)
    assert "clawhost.example.com" not in json.dumps(objects)
    ingress = next(o for o in objects if o["kind"] == "Ingress")
    assert ingress["spec"]["rules"][0]["host"] == "agents.example.org"
    policies = [o for o in objects if o["kind"].startswith("MutatingAdmissionPolicy")]
    assert policies
    assert {o["apiVersion"] for o in policies} == {"admissionregistration.k8s.io/v1"}, "GA from 1.36"
    older = render(objects_in(manifest_files()), tmp_path)
    assert {o["apiVersion"] for o in older if o["kind"].startswith("MutatingAdmissionPolicy")} == {
        "admissionregistration.k8s.io/v1beta1"
    }


def _secret_references(objects: list[dict[str, Any]]) -> set[tuple[str, str | None]]:
    """(Secret, key) pairs the platform's workloads read; key None for a whole Secret (envFrom, a volume)."""
    refs: set[tuple[str, str | None]] = set()
    for obj in objects:
        if obj["metadata"].get("namespace") != "platform":
            continue
        spec = obj.get("spec", {})
        template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template")
        if obj["kind"] not in ("Deployment", "StatefulSet", "CronJob") or not template:
            continue
        for volume in template["spec"].get("volumes", []):
            if "secret" in volume:
                items = volume["secret"].get("items")
                name = volume["secret"]["secretName"]
                refs |= {(name, item["key"]) for item in items} if items else {(name, None)}
        for container in template["spec"]["containers"]:
            for source in container.get("envFrom", []):
                refs.add((source["secretRef"]["name"], None))
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.add((ref["name"], ref["key"]))
    return refs


def platform_secrets() -> dict[str, dict[str, str]]:
    secrets: dict[str, dict[str, str]] = nix_eval(
        '(import ./nixos/secrets/keys.nix).kubernetesSecrets (name: "test-value-of-" + name)'
    )
    return secrets


def test_the_secrets_made_on_the_nodes_are_the_ones_the_workloads_read(rendered: list[dict[str, Any]]) -> None:
    made = platform_secrets()
    read = _secret_references(rendered)
    assert {name for name, _ in read} == set(made), (
        "every Secret made is read, and every Secret read is made: nixos/secrets/keys.nix lists them"
    )
    missing = [(name, key) for name, key in read if key is not None and key not in made[name]]
    assert missing == [], "keys read but not made by nixos/secrets/keys.nix"
    # Secrets used whole: every key they hold is one the service expects.
    control_api = next(c for _, c in containers(rendered) if c["name"] == "api")
    assert set(made["clawhost-control-api"]) == {
        "CLAWHOST_API_DATABASE_URL",
        "CLAWHOST_API_REDIS_URL",
        "CLAWHOST_API_STRIPE_API_KEY",
        "CLAWHOST_API_STRIPE_WEBHOOK_SECRET",
    }
    mounts = {m["mountPath"] for m in control_api["volumeMounts"]}
    env = {e["name"]: e.get("value") for e in control_api["env"]}
    assert {Path(env[f"CLAWHOST_API_JWT_{k}_KEY_FILE"]).name for k in ("PRIVATE", "PUBLIC")} == set(
        made["clawhost-control-api-jwt"]
    )
    assert {str(Path(env["CLAWHOST_API_JWT_PRIVATE_KEY_FILE"]).parent)} <= mounts


def _secret_list(secrets: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The platform's Secrets as nixos/node.nix writes them (one Secret per name, its keys as files)."""
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": name,
                    "namespace": "platform",
                    "labels": {"app.kubernetes.io/part-of": "clawhost"},
                },
                "type": "Opaque",
                "stringData": data,
            }
            for name, data in secrets.items()
        ],
    }


def _apply(cluster: Cluster, objects: list[dict[str, Any]], *flags: str) -> None:
    cluster.kubectl(
        "apply",
        "--validate=strict",
        *flags,
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}),
    )


@pytest.mark.cluster
def test_every_rendered_manifest_applies_to_the_real_api_server(
    platform_installed: Cluster, rendered: list[dict[str, Any]]
) -> None:
    cluster = platform_installed
    secrets = _secret_list(platform_secrets())
    # Everything, as the API server would take it: schemas, strict field validation, admission, namespaces.
    # (--force-conflicts: the platform fixture applied some of them client-side; a dry run takes no ownership.)
    _apply(cluster, [*rendered, *secrets["items"]], "--server-side", "--force-conflicts", "--dry-run=server")
    # And for real, what the platform fixture has not already installed (its CRD, namespaces and policies stay as
    # the README installs them): Secrets, stores, Services, budgets, the ingress, the workloads (kwok runs pods).
    installed_kinds = {"CustomResourceDefinition", "Namespace"}
    _apply(cluster, [o for o in rendered if o["kind"] not in installed_kinds] + secrets["items"])
    ingress = json.loads(cluster.kubectl("get", "ingress", "clawhost", "-n", "platform", "-o", "json").stdout)
    settings = nix_eval(SETTINGS)
    assert ingress["spec"]["rules"][0]["host"] == settings["domain"]
    backends = {p["path"]: p["backend"]["service"]["name"] for p in ingress["spec"]["rules"][0]["http"]["paths"]}
    assert backends == {"/webhooks/stripe": "clawhost-control-api", "/": "clawhost-control-api"}
    for name in ("redis", "postgresql"):
        workload = json.loads(cluster.kubectl("get", "statefulset", name, "-n", "platform", "-o", "json").stdout)
        assert workload["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == name, (
            "the label the platform's NetworkPolicies select"
        )
    budgets = json.loads(cluster.kubectl("get", "pdb", "-n", "platform", "-o", "json").stdout)["items"]
    assert {b["metadata"]["name"] for b in budgets} >= {"token-proxy", "clawhost-control-api"}


@pytest.mark.cluster
def test_a_misspelt_field_is_refused(platform_installed: Cluster, rendered: list[dict[str, Any]]) -> None:
    """The dry run above can fail: a field the schema does not know is an error, not a silently dropped line."""
    deployment = json.loads(json.dumps(next(o for o in rendered if o["kind"] == "Deployment")))
    deployment["spec"]["replica"] = deployment["spec"].pop("replicas")
    result = platform_installed.kubectl(
        "apply",
        "--validate=strict",
        "--server-side",
        "--dry-run=server",
        "--field-manager=deploy-test",
        "-f",
        "-",
        stdin=json.dumps(deployment),
        check=False,
    )
    assert result.returncode != 0
    assert ".spec.replica: field not declared in schema" in result.stderr


@pytest.mark.cluster
def test_a_missing_namespace_is_refused(platform_installed: Cluster, rendered: list[dict[str, Any]]) -> None:
    service = json.loads(json.dumps(next(o for o in rendered if o["kind"] == "Service")))
    service["metadata"]["namespace"] = "platfrom"
    result = platform_installed.kubectl(
        "apply", "--server-side", "--dry-run=server", "-f", "-", stdin=json.dumps(service), check=False
    )
    assert result.returncode != 0
    assert 'namespaces "platfrom" not found' in result.stderr
