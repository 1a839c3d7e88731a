# An image description (images/<image>.json, the one the local assembly reads too) as nix2container's image
# config and the permissions of its directories. Pure Nix: make test evaluates it against each description.
{ description, imageName, imageTag }:
let
  inherit (builtins) listToAttrs map attrNames filter;
  user = description.user;
in
{
  name = imageName;
  tag = imageTag;
  config = {
    entrypoint = description.entrypoint;
    cmd = description.cmd;
    user = "${toString user.uid}:${toString user.gid}";
    workingDir = description.workingDir;
    env = map (name: "${name}=${description.env.${name}}") (attrNames description.env);
    exposedPorts = listToAttrs (map (port: { name = port; value = { }; }) description.exposedPorts);
  };
  # The directories the image creates, with the mode and owner nix2container's `perms` give them in the layer
  # (the Nix store holds them root-owned and read-only): /tmp 1777, a state directory owned by the user.
  directories = map
    (dir: {
      inherit (dir) path mode;
      uid = if dir.owner == "user" then user.uid else 0;
      gid = if dir.owner == "user" then user.gid else 0;
    })
    description.directories;
  writableDirectories = map (dir: dir.path) (filter (dir: dir.writable) description.directories);
}
