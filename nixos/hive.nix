# Colmena hive: every node of nixos/settings.nix with the modules nixos-anywhere installed it from (nixos/node.nix).
# `colmena apply` deploys them all, `colmena apply --on @server` the servers, `--on k3s-2` one node.
{ nixpkgs, inputs, settings }:
let
  cluster = import ./lib/cluster.nix { inherit settings; };
  nodeConfig = node: { ... }: {
    imports = [ ./node.nix ];
    _module.args.node = node;
    deployment = {
      targetHost = node.publicIPv4;
      targetUser = "root";
      tags = [ node.role ];
      # Arm clusters build on their own nodes (a deploying workstation is usually x86 and cannot build aarch64).
      buildOnTarget = settings.system == "aarch64-linux";
    };
  };
in
{
  meta = {
    nixpkgs = import nixpkgs { inherit (settings) system; };
    specialArgs = { inherit inputs settings; };
    description = "clawhost K3s cluster";
  };
} // builtins.mapAttrs (_: nodeConfig) cluster.nodes
