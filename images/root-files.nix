# The files and directories of an image description as a derivation to copy to the image's root, and the
# nix2container `perms` that give each directory its mode and owner in the layer.
{ pkgs, description, imageConfig }:
let
  inherit (pkgs) lib;
  root = pkgs.runCommand "${baseNameOf description.name}-root-files" { } (''
    mkdir -p $out
  '' + lib.concatMapStrings (dir: ''
    mkdir -p "$out${dir.path}"
  '') imageConfig.directories + lib.concatMapStrings (file: ''
    mkdir -p "$(dirname "$out${file.path}")"
    cp ${pkgs.writeText (baseNameOf file.path) file.text} "$out${file.path}"
    chmod ${file.mode} "$out${file.path}"
  '') description.files);
in
{
  inherit root;
  perms = map
    (dir: {
      path = root;
      regex = "^${lib.escapeRegex "${root}${dir.path}"}$";
      inherit (dir) mode uid gid;
    })
    imageConfig.directories;
}
