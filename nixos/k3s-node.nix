# One K3s node: NetworkPolicy enforced (k3s' embedded controller), secrets encrypted at rest,
# the join token from a file that Colmena deploys (never in the Nix store).
{ config, lib, pkgs, ... }:
let
  cfg = config.clawhost.k3s;
in
{
  options.clawhost.k3s = {
    role = lib.mkOption { type = lib.types.enum [ "server" "agent" ]; };
    serverAddr = lib.mkOption { type = lib.types.nullOr lib.types.str; default = null; };
  };

  config = {
    boot.loader.grub.device = "/dev/sda";
    fileSystems."/" = { device = "/dev/sda1"; fsType = "ext4"; };
    system.stateVersion = "25.05";

    networking.firewall = {
      enable = true;
      allowedTCPPorts = [ 22 ] ++ lib.optionals (cfg.role == "server") [ 6443 ];
      trustedInterfaces = [ "cni0" "flannel.1" ];
    };
    services.openssh = { enable = true; settings.PasswordAuthentication = false; };

    deployment.keys."k3s-token" = {
      keyCommand = [ "pass" "clawhost/k3s-token" ];
      destDir = "/run/keys";
    };

    services.k3s = {
      enable = true;
      role = cfg.role;
      tokenFile = "/run/keys/k3s-token";
      serverAddr = lib.mkIf (cfg.serverAddr != null) cfg.serverAddr;
      extraFlags = lib.concatStringsSep " " (lib.optionals (cfg.role == "server") [
        "--secrets-encryption"
        "--disable=traefik"
        "--kube-apiserver-arg=enable-admission-plugins=NodeRestriction,PodSecurity,ResourceQuota,LimitRanger,MutatingAdmissionPolicy"
        # operator/deploy/25-customer-finalizer-policy.yaml (MutatingAdmissionPolicy: beta until Kubernetes 1.36)
        "--kube-apiserver-arg=feature-gates=MutatingAdmissionPolicy=true"
        "--kube-apiserver-arg=runtime-config=admissionregistration.k8s.io/v1beta1=true"
      ]);
    };
    environment.systemPackages = [ pkgs.k3s pkgs.kubectl ];
  };
}
