# The Python services (operator, token proxy, control API) in one image; the command picks one:
#   python -m clawhost_operator | python -m clawhost_proxy | python -m clawhost_control_api
{ pkgs, n2c, src }:
let
  python = pkgs.python311;
  # The runtime dependencies of pyproject.toml, no more (a test keeps the two lists equal).
  env = python.withPackages (ps: with ps; [
    fastapi uvicorn aiohttp redis psycopg psycopg-pool stripe
    pydantic pydantic-settings pyyaml prometheus-client cryptography argon2-cffi pyjwt httpx orjson uvloop
  ]);
  app = pkgs.runCommand "clawhost-src" { } ''
    mkdir -p $out/app
    for d in crds/clawhost_api operator/clawhost_operator proxy/clawhost_proxy \
             control_api/clawhost_control_api onboarding/clawhost_onboarding; do
      cp -r ${src}/$d $out/app/
    done
  '';
in
n2c.buildImage {
  name = "clawhost/platform";
  tag = "latest";
  copyToRoot = [ env app pkgs.cacert ];
  config = {
    user = "10001:10001";
    workingDir = "/app";
    env = [ "PYTHONPATH=/app" "PYTHONUNBUFFERED=1" "SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt" ];
    entrypoint = [ "${env}/bin/python" "-m" ];
  };
}
