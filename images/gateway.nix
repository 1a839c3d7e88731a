# The customer gateway image: OpenClaw on Node 24, non-root, read-only root (the operator mounts the rendered
# openclaw.json and gives /state and /tmp as volumes). What it holds is images/gateway.json, the description the
# local real-node assembly (tests/clawhost_localcluster) reads too; this file only says how Nix builds it.
{ pkgs, n2c, registry, imageTag ? null }:
let
  inherit (pkgs) lib;
  description = builtins.fromJSON (builtins.readFile ./gateway.json);
  npmRoot = ./. + "/${description.npmProject}";
  packageLock = builtins.fromJSON (builtins.readFile (npmRoot + "/package-lock.json"));
  openclawEntry = packageLock.packages."node_modules/openclaw";

  # Node from nixpkgs, of the description's major version; it must meet OpenClaw's own engines range.
  nodejs = pkgs."nodejs_${toString description.pins.node.major}";
  engineFloor = builtins.head (builtins.match ">=([0-9.]+).*" openclawEntry.engines.node);
  # importNpmLock's own hooks are built with nixpkgs' default nodejs (its npmConfigHook ignores the package's): these
  # are the same hooks built with ours, so `npm rebuild` compiles native modules for the Node that runs them.
  # (`importNpmLock.npmConfigHook.override` would re-call import-npm-lock itself, which takes no nodejs.)
  npmHooks = pkgs.callPackages (pkgs.path + "/pkgs/build-support/node/import-npm-lock/hooks") { inherit nodejs; };
  inherit (npmHooks) npmConfigHook;

  openclaw = pkgs.stdenv.mkDerivation {
    pname = "openclaw-gateway";
    version = description.pins.openclaw;
    src = npmRoot;
    # Every package from package-lock.json, fetched by its own integrity hash: no npmDepsHash to keep in step.
    npmDeps = pkgs.importNpmLock { inherit npmRoot; };
    nativeBuildInputs = [ nodejs nodejs.python npmConfigHook ];
    dontBuild = true;
    installPhase = ''
      runHook preInstall
      mkdir -p $out/lib $out/bin
      cp -r node_modules $out/lib/node_modules
      ln -s $out/lib/node_modules/.bin/openclaw $out/bin/openclaw
      runHook postInstall
    '';
  };

  imageConfig = import ./config.nix {
    inherit description;
    imageName = "${registry}/${description.name}";
    imageTag = if imageTag == null then description.tag else imageTag;
  };
  rootFiles = import ./root-files.nix { inherit pkgs description imageConfig; };
in
assert lib.assertMsg (openclawEntry.version == description.pins.openclaw)
  "images/${description.npmProject}/package-lock.json locks openclaw ${openclawEntry.version}, images/gateway.json pins ${description.pins.openclaw}";
assert lib.assertMsg (lib.versionAtLeast nodejs.version engineFloor)
  "nixpkgs' ${nodejs.name} is older than OpenClaw's floor ${engineFloor}: nix flake update nixpkgs";
n2c.buildImage {
  inherit (imageConfig) name tag config;
  copyToRoot = [
    (pkgs.buildEnv {
      name = "gateway-root";
      paths = [ nodejs openclaw pkgs.cacert pkgs.tini ];
      pathsToLink = [ "/bin" "/lib" "/etc" ];
    })
    rootFiles.root
  ];
  inherit (rootFiles) perms;
}
