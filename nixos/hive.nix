# Colmena hive: K3s on NixOS, on Hetzner Cloud. `colmena apply --on @server` and so on.
{ nixpkgs }:
let
  k3sNode = { role, serverAddr ? null }: { pkgs, ... }: {
    imports = [ ./k3s-node.nix ];
    clawhost.k3s = { inherit role serverAddr; };
  };
in
{
  meta = {
    nixpkgs = import nixpkgs { system = "x86_64-linux"; };
    description = "clawhost K3s cluster";
  };

  defaults = { ... }: {
    deployment.targetUser = "root";
    deployment.buildOnTarget = false;
  };

  "k3s-1" = { ... }: {
    imports = [ (k3sNode { role = "server"; }) ];
    deployment.targetHost = "k3s-1.clawhost.internal";
    deployment.tags = [ "server" ];
  };

  "k3s-2" = { ... }: {
    imports = [ (k3sNode { role = "agent"; serverAddr = "https://k3s-1.clawhost.internal:6443"; }) ];
    deployment.targetHost = "k3s-2.clawhost.internal";
    deployment.tags = [ "agent" ];
  };
}
