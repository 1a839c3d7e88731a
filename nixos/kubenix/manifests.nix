# The manifest files that make the platform, in the order they are applied (each expects the ones before):
# the Customer CRD, then what is the platform's as a whole (namespaces, its NetworkPolicies, the stores, the
# ingress), then each component's deploy/ folder. The tests apply exactly these files (tests/deploy_tests), and
# kubenix renders them (platform.nix). Paths are relative to the repository; pure Nix.
{ root }:
let
  inherit (builtins) attrNames filter pathExists readDir sort match;
  yamlIn = dir:
    let path = root + "/${dir}";
    in if pathExists path then
      map (name: "${dir}/${name}")
        (sort (a: b: a < b) (filter (name: match ".*\\.yaml" name != null) (attrNames (readDir path))))
    else [ ];
in
[ "crds/customer.crd.yaml" ]
++ yamlIn "deploy"
++ yamlIn "operator/deploy"
++ yamlIn "control_api/deploy"
++ yamlIn "proxy/deploy"
++ yamlIn "onboarding/deploy"
