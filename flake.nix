{
  description = "clawhost: always-on OpenClaw agents on Telegram, one isolated pod per customer on K3s";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixpkgs-unstable";
    nix2container = {
      url = "github:nlewo/nix2container";
      inputs.nixpkgs.follows = "nixpkgs";
    };
    kubenix = {
      url = "github:hall/kubenix";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs = { self, nixpkgs, nix2container, kubenix, ... }:
    let
      system = "x86_64-linux";
      pkgs = nixpkgs.legacyPackages.${system};
      n2c = nix2container.packages.${system}.nix2container;
    in
    {
      packages.${system} = {
        # The per-customer OpenClaw gateway (pinned OpenClaw, Node 24, non-root, read-only root fs).
        gateway-image = import ./images/gateway.nix { inherit pkgs n2c; };
        # One image for the Python services (operator, token proxy, control API).
        platform-image = import ./images/platform.nix { inherit pkgs n2c; src = self; };
        # Platform manifests (CRD, operator, proxy, control API) rendered by kubenix.
        manifests = (kubenix.evalModules.${system} {
          module = import ./nixos/kubenix/platform.nix;
          specialArgs = { root = self; };
        }).config.kubernetes.resultYAML;
      };

      # Colmena hive: `colmena apply` deploys the K3s nodes on Hetzner.
      colmena = import ./nixos/hive.nix { inherit nixpkgs; };

      devShells.${system}.default = pkgs.mkShell {
        packages = with pkgs; [ python311 uv go kubectl colmena gnumake redis postgresql ];
      };
    };
}
