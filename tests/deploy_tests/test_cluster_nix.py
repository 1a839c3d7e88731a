"""The pure parts of the Nix side, evaluated: the node list and its rules, each node's K3s flags, the disk layout,
the secrets' list, the hive, and each image's config from its description."""

from __future__ import annotations

import json
from typing import Any

import pytest

from clawhost_localcluster.nix_eval import REPO, NixError, nix_eval, nix_string

SETTINGS = "(import ./nixos/settings.nix)"


def _cluster(settings: str = SETTINGS) -> str:
    return f"(import ./nixos/lib/cluster.nix {{ settings = {settings}; }})"


def _shape(settings: str = SETTINGS) -> str:
    """The cluster's values without its functions (JSON has none)."""
    cluster = _cluster(settings)
    return f"{{ inherit ({cluster}) nodes servers agents privateTCPPorts privateUDPPorts publicTCPPorts; }}"


def _with_nodes(nodes: dict[str, Any]) -> str:
    return f"({SETTINGS} // {{ nodes = {nix_string(nodes)}; }})"


def _node(role: str, number: int) -> dict[str, str]:
    return {"role": role, "publicIPv4": f"203.0.113.{number}", "privateIPv4": f"10.0.0.{number}"}


def test_the_shipped_settings_make_one_server_and_an_agent_that_joins_it() -> None:
    cluster = nix_eval(_shape())
    assert cluster["servers"] == ["k3s-1"]
    assert cluster["agents"] == ["k3s-2"]
    assert cluster["nodes"]["k3s-1"]["clusterInit"] is True
    assert cluster["nodes"]["k3s-2"]["serverAddr"] == "https://10.0.0.2:6443"


def test_three_servers_form_one_etcd_cluster() -> None:
    nodes = {f"s{n}": _node("server", n) for n in (1, 2, 3)} | {"a4": _node("agent", 4)}
    cluster = nix_eval(_shape(_with_nodes(nodes)))
    assert [name for name, node in sorted(cluster["nodes"].items()) if node["clusterInit"]] == ["s1"]
    assert {node["serverAddr"] for name, node in cluster["nodes"].items() if name != "s1"} == {"https://10.0.0.1:6443"}
    assert {2379, 2380} <= set(cluster["privateTCPPorts"]), "etcd's ports open between three servers"


@pytest.mark.parametrize("servers", [0, 2, 4])
def test_any_other_number_of_servers_is_refused(servers: int) -> None:
    nodes = {f"s{n}": _node("server", n) for n in range(1, servers + 1)} | {"a9": _node("agent", 9)}
    with pytest.raises(NixError, match=f"exactly 1 server .* or exactly 3 servers, not {servers}"):
        nix_eval(_shape(_with_nodes(nodes)))


def test_admission_policy_flags_only_on_servers_and_only_before_1_36() -> None:
    cluster = _cluster()
    gate = "--kube-apiserver-arg=feature-gates=MutatingAdmissionPolicy=true"
    runtime = "--kube-apiserver-arg=runtime-config=admissionregistration.k8s.io/v1beta1=true"
    server_135 = nix_eval(f'{cluster}.nodeFlags "k3s-1" "1.35.4+k3s1"')
    assert gate in server_135
    assert runtime in server_135
    assert not any("kube-apiserver-arg" in f for f in nix_eval(f'{cluster}.nodeFlags "k3s-1" "1.36.0+k3s1"'))
    agent = nix_eval(f'{cluster}.nodeFlags "k3s-2" "1.35.4+k3s1"')
    assert not any("kube-apiserver-arg" in f or f == "--secrets-encryption" for f in agent)
    for flags in (server_135, agent):
        assert "--flannel-iface=enp7s0" in flags, "pod traffic on the private network"
        assert not any("disable-network-policy" in f or "disable=traefik" in f for f in flags)


def test_the_disk_layout_boots_by_bios_and_by_uefi() -> None:
    layout = nix_eval('(import ./nixos/disko.nix { device = "/dev/sda"; })')
    disk = layout["disko"]["devices"]["disk"]["main"]
    assert disk["device"] == "/dev/sda"
    partitions = disk["content"]["partitions"]
    assert disk["content"]["type"] == "gpt"
    assert partitions["bios"]["type"] == "EF02", "GRUB's core image for Hetzner's BIOS-booted x86 machines"
    assert partitions["esp"]["type"] == "EF00"
    assert partitions["esp"]["content"]["mountpoint"] == "/boot", "the ESP Hetzner's UEFI-booted Arm machines read"
    assert partitions["root"]["content"]["mountpoint"] == "/"
    assert partitions["bios"]["priority"] < partitions["esp"]["priority"]


def test_every_platform_secret_comes_from_a_listed_sops_key() -> None:
    keys = "(import ./nixos/secrets/keys.nix)"
    listed = set(nix_eval(f"builtins.attrNames {keys}.sopsKeys"))
    secrets = nix_eval(f'{keys}.kubernetesSecrets (name: "<<" + name + ">>")')
    used = {ref for data in secrets.values() for value in data.values() for ref in _refs(value)}
    assert used <= listed, f"placeholders without a sops key: {used - listed}"
    node_only = {"k3s-token", "backup-s3-access-key", "backup-s3-secret-key", "backup-restic-password"}
    assert listed - used == node_only, "every other sops key becomes part of a platform Secret"


def _refs(value: str) -> list[str]:
    return [part.split(">>")[0] for part in value.split("<<")[1:]]


def test_the_hive_deploys_every_node_by_its_public_address() -> None:
    hive = "(import ./nixos/hive.nix { nixpkgs = null; inputs = { }; settings = import ./nixos/settings.nix; })"
    names = nix_eval(f'builtins.attrNames (builtins.removeAttrs {hive} [ "meta" ])')
    assert names == ["k3s-1", "k3s-2"]
    deployment = nix_eval(
        f'builtins.mapAttrs (name: node: (node {{ }}).deployment) (builtins.removeAttrs {hive} [ "meta" ])'
    )
    assert deployment["k3s-1"]["targetHost"] == "203.0.113.10"
    assert deployment["k3s-1"]["tags"] == ["server"]
    assert deployment["k3s-2"]["tags"] == ["agent"]


@pytest.mark.parametrize("image", ["gateway", "platform"])
def test_each_image_config_is_its_description(image: str) -> None:
    description = json.loads((REPO / "images" / f"{image}.json").read_text())
    config = nix_eval(
        f"import ./images/config.nix {{ description = builtins.fromJSON (builtins.readFile ./images/{image}.json); "
        f'imageName = "registry.example/{description["name"]}"; imageTag = "abc"; }}'
    )
    assert config["name"] == f"registry.example/{description['name']}"
    oci = config["config"]
    assert oci["user"] == f"{description['user']['uid']}:{description['user']['gid']}"
    assert description["user"]["uid"] != 0
    assert (oci["entrypoint"], oci["cmd"], oci["workingDir"]) == (
        description["entrypoint"],
        description["cmd"],
        description["workingDir"],
    )
    assert dict(entry.split("=", 1) for entry in oci["env"]) == description["env"]
    assert set(oci["exposedPorts"]) == set(description["exposedPorts"])
    tmp = next(d for d in config["directories"] if d["path"] == "/tmp")
    assert (tmp["mode"], tmp["uid"]) == ("1777", 0), "a writable /tmp through nix2container's perms"
    owned = [d for d in description["directories"] if d["owner"] == "user"]
    for directory in owned:
        evaluated = next(d for d in config["directories"] if d["path"] == directory["path"])
        assert (evaluated["uid"], evaluated["gid"]) == (description["user"]["uid"], description["user"]["gid"])
