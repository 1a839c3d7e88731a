# The customer gateway image: OpenClaw (pinned) on Node 24, running as uid 10001.
# The operator mounts the rendered openclaw.json read-only and gives the state dir and /tmp as
# writable volumes, so the root filesystem can stay read-only.
{ pkgs, n2c }:
let
  # The one pin of OpenClaw on the image side: npm installs exactly this. The operator's renderer names the
  # same version (OPENCLAW_VERSION in operator/clawhost_operator/openclaw_config.py; a test keeps them equal),
  # because config keys change between releases: bump both together.
  openclawVersion = (builtins.fromJSON (builtins.readFile ./openclaw/package.json)).dependencies.openclaw;
  nodejs = pkgs.nodejs_24;
  openclaw = pkgs.buildNpmPackage {
    pname = "openclaw";
    version = openclawVersion;
    src = ./openclaw; # package.json (+ the package-lock.json npm writes) pinning openclaw
    inherit nodejs;
    npmDepsHash = pkgs.lib.fakeHash; # replaced by the hash `nix build` reports on first build
    dontNpmBuild = true;
  };
in
n2c.buildImage {
  name = "clawhost/openclaw-gateway";
  tag = openclawVersion;
  copyToRoot = pkgs.buildEnv {
    name = "gateway-root";
    paths = [ nodejs openclaw pkgs.cacert pkgs.tini ];
    pathsToLink = [ "/bin" "/lib" "/etc" ];
  };
  config = {
    entrypoint = [ "/bin/tini" "--" ];
    cmd = [ "/bin/openclaw" "gateway" "run" ];
    user = "10001:10001";
    env = [
      "OPENCLAW_CONFIG_PATH=/etc/openclaw/openclaw.json"
      "OPENCLAW_STATE_DIR=/state"
      "TMPDIR=/tmp"
      "SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt"
    ];
    exposedPorts = { "18789/tcp" = { }; };
  };
}
