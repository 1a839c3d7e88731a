# Platform manifests for kubenix: the CRD and each component's own deploy/ files, imported as-is
# so the YAML the tests apply is the YAML that ships.
{ kubenix, root, lib, ... }:
let
  manifestDirs = [ "deploy" "operator/deploy" "proxy/deploy" "control_api/deploy" ];
  yamlIn = dir:
    let path = root + "/${dir}";
    in lib.optionals (builtins.pathExists path)
      (map (name: path + "/${name}")
        (builtins.filter (lib.hasSuffix ".yaml") (builtins.attrNames (builtins.readDir path))));
in
{
  imports = [ kubenix.modules.k8s ];
  kubernetes.imports = [ (root + "/crds/customer.crd.yaml") ] ++ lib.concatMap yamlIn manifestDirs;
}
