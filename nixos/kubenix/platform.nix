# kubenix module: the platform's manifests (manifests.nix lists the files, the same ones make test applies),
# with the settings applied by render.nix. Multi-document YAML is split here (kubenix's own `kubernetes.imports`
# reads one document per file); each object keeps its YAML as written, kubenix only adds its labels.
{ kubenix, root, settings, imageTag, lib, pkgs, ... }:
let
  files = import ./manifests.nix { inherit root; };
  documents = file: builtins.fromJSON (builtins.readFile (pkgs.runCommand "manifest.json" { } ''
    ${pkgs.yq}/bin/yq --slurp --compact-output 'map(select(. != null))' ${root + "/${file}"} > $out
  ''));
  objects = import ./render.nix {
    inherit settings imageTag;
    objects = lib.concatMap documents files;
  };
  # Where kubenix keeps an object: group (core for the v1 API), version, kind, name.
  place = object:
    let
      parts = lib.splitString "/" object.apiVersion;
      group = if lib.length parts == 1 then "core" else lib.head parts;
    in
    { resources.${group}.${lib.last parts}.${object.kind}.${object.metadata.name} = object; };
in
{
  imports = [ kubenix.modules.k8s ];
  kubernetes.version = lib.replaceStrings [ "_" ] [ "." ] (lib.removePrefix "k3s_" settings.k3sPackage);
  kubernetes.api = lib.mkMerge (map place objects);
}
