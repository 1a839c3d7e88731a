{
  description = "clawhost: always-on OpenClaw agents on Telegram, one isolated pod per customer on K3s";

  inputs = {
    # nixos-unstable: the channel whose revisions passed the NixOS tests (the nodes run NixOS).
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    nix2container = {
      url = "github:nlewo/nix2container";
      inputs.nixpkgs.follows = "nixpkgs";
    };
    kubenix = {
      url = "github:hall/kubenix";
      inputs.nixpkgs.follows = "nixpkgs";
    };
    # The platform image's Python environment, built from uv.lock (wheels, as uv installs them).
    pyproject-nix = {
      url = "github:pyproject-nix/pyproject.nix";
      inputs.nixpkgs.follows = "nixpkgs";
    };
    uv2nix = {
      url = "github:pyproject-nix/uv2nix";
      inputs.pyproject-nix.follows = "pyproject-nix";
      inputs.nixpkgs.follows = "nixpkgs";
    };
    pyproject-build-systems = {
      url = "github:pyproject-nix/build-system-pkgs";
      inputs.pyproject-nix.follows = "pyproject-nix";
      inputs.uv2nix.follows = "uv2nix";
      inputs.nixpkgs.follows = "nixpkgs";
    };
    # The nodes: partitioned by disko (nixos-anywhere installs through it), secrets decrypted on the node by sops-nix.
    disko = {
      url = "github:nix-community/disko";
      inputs.nixpkgs.follows = "nixpkgs";
    };
    sops-nix = {
      url = "github:Mic92/sops-nix";
      inputs.nixpkgs.follows = "nixpkgs";
    };
    # Colmena evaluates flakes through the `colmenaHive` output its own lib makes (the bare `colmena` output needs
    # --legacy-flake-eval); run the CLI from this same input so the two agree: `nix run .#colmena -- apply`.
    colmena = {
      url = "github:zhaofengli/colmena";
      inputs.nixpkgs.follows = "nixpkgs";
      inputs.stable.follows = "nixpkgs";
      inputs.nix-github-actions.follows = "";
    };
  };

  outputs =
    inputs@{ self, nixpkgs, nix2container, kubenix, pyproject-nix, uv2nix, pyproject-build-systems, ... }:
    let
      inherit (nixpkgs) lib;
      # Everything an operator of the platform fills in (addresses, registry, domain): nixos/settings.nix.
      settings = import ./nixos/settings.nix;
      cluster = import ./nixos/lib/cluster.nix { inherit settings; };
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forSystems = f: lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});
      imageTag = self.shortRev or "dirty";
    in
    {
      packages = forSystems (system: pkgs:
        let
          n2c = nix2container.packages.${system}.nix2container;
        in
        {
          # `nix run .#gateway-image.copyToRegistry` / `.#platform-image.copyToRegistry` push to settings.registry.
          gateway-image = import ./images/gateway.nix { inherit pkgs n2c; inherit (settings) registry; };
          platform-image = import ./images/platform.nix {
            inherit pkgs n2c uv2nix pyproject-nix pyproject-build-systems imageTag;
            inherit (settings) registry;
            workspaceRoot = ./.;
          };
          # The platform's manifests (CRD, namespaces, policies, services, stores, ingress) for `kubectl apply`.
          manifests = (kubenix.evalModules.${system} {
            module = import ./nixos/kubenix/platform.nix;
            specialArgs = { root = ./.; inherit settings imageTag; };
          }).config.kubernetes.resultYAML;
          colmena = inputs.colmena.packages.${system}.colmena;
        });

      # nixos-anywhere installs each node from these: `nixos-anywhere --flake .#k3s-1 root@<address>`.
      nixosConfigurations = lib.mapAttrs
        (name: node: lib.nixosSystem {
          inherit (node) system;
          specialArgs = { inherit inputs settings node; };
          modules = [ ./nixos/node.nix ];
        })
        cluster.nodes;

      # Colmena hive (`colmena apply`): the same modules, for every later change.
      colmena = import ./nixos/hive.nix { inherit nixpkgs inputs settings; };
      colmenaHive = inputs.colmena.lib.makeHive self.colmena;

      devShells = forSystems (system: pkgs: {
        default = pkgs.mkShell {
          packages = with pkgs; [
            python311 uv go kubectl nixos-anywhere sops age ssh-to-age hcloud gnumake redis postgresql
          ] ++ [ inputs.colmena.packages.${system}.colmena ];
        };
      });
    };
}
