# The platform image: operator, token proxy, control API and onboarding service (the command picks one:
# `python -m clawhost_operator`, ...). What it holds is images/platform.json, the description the local assembly
# reads too; the Python dependencies are exactly uv.lock's (uv2nix, wheels as uv installs them), so no list of
# packages here can drift from the lock.
{ pkgs, n2c, uv2nix, pyproject-nix, pyproject-build-systems, registry, workspaceRoot, imageTag ? null }:
let
  inherit (pkgs) lib;
  description = builtins.fromJSON (builtins.readFile ./platform.json);
  python = pkgs."python${lib.replaceStrings [ "." ] [ "" ] description.pins.python}";

  workspace = uv2nix.lib.workspace.loadWorkspace { inherit workspaceRoot; };
  pythonSet = (pkgs.callPackage pyproject-nix.build.packages { inherit python; }).overrideScope
    (lib.composeManyExtensions [
      pyproject-build-systems.overlays.wheel
      (workspace.mkPyprojectOverlay { sourcePreference = "wheel"; })
    ]);
  # The project's locked runtime dependencies (and the dependency groups the description names), not the project
  # itself: its packages are copied to /app from `description.sources`, as the local assembly does.
  project = pythonSet.${builtins.head (builtins.attrNames workspace.deps.default)};
  dependencies = lib.foldl' (spec: group: spec // project.passthru.dependency-groups.${group})
    project.passthru.dependencies
    description.pins.dependencyGroups;
  venv = pythonSet.mkVirtualEnv "clawhost-platform-env" dependencies;

  sources = pkgs.runCommand "clawhost-sources" { } (''
    mkdir -p $out/app
  '' + lib.concatStrings (lib.mapAttrsToList (package: folder: ''
    cp -r ${workspaceRoot + "/${folder}"} $out/app/${package}
  '') description.sources));

  imageConfig = import ./config.nix {
    inherit description;
    imageName = "${registry}/${description.name}";
    imageTag = if imageTag == null then description.tag else imageTag;
  };
  rootFiles = import ./root-files.nix { inherit pkgs description imageConfig; };
in
n2c.buildImage {
  inherit (imageConfig) name tag config;
  # The virtualenv at / (its pyvenv.cfg beside /bin), so /bin/python3 starts with the locked packages.
  copyToRoot = [ venv sources pkgs.cacert rootFiles.root ];
  inherit (rootFiles) perms;
}
