# One K3s node on Hetzner Cloud: disk (disko), boot (BIOS on x86, UEFI on Arm), network (public + the private
# network K3s uses), firewall, secrets (sops-nix), K3s. `node` is this node's entry of nixos/lib/cluster.nix.
{ config, lib, pkgs, modulesPath, inputs, settings, node, ... }:
let
  cluster = import ./lib/cluster.nix { inherit settings; };
  keys = import ./secrets/keys.nix;
  k3s = pkgs.${settings.k3sPackage};
  isServer = node.role == "server";
  # The first server also holds what exists once per cluster: the platform's Secrets, Traefik's settings, the
  # stores' volumes (pinned to it by the label below) and their off-site backups.
  isInit = node.clusterInit;
  private = settings.privateNetwork.interface;
  platformSecrets = keys.kubernetesSecrets (name: config.sops.placeholder.${name});
  # One rendered file per key of each platform Secret (a value may be a whole PEM key, or a URL around a password):
  # files, so no value is ever quoted into YAML or a command line.
  secretFile = secret: key: "clawhost-${secret}-${key}";
  kubectl = "${k3s}/bin/k3s kubectl --kubeconfig /etc/rancher/k3s/k3s.yaml";
  applySecret = secret: data: ''
    ${kubectl} -n platform create secret generic ${secret} \
      ${lib.concatStringsSep " " (lib.mapAttrsToList
        (key: _: "--from-file=${key}=${config.sops.templates.${secretFile secret key}.path}") data)} \
      --dry-run=client -o yaml \
      | ${kubectl} label --local -f - app.kubernetes.io/part-of=clawhost -o yaml \
      | ${kubectl} apply --server-side --field-manager=clawhost-node -f -
  '';
in
{
  imports = [
    (modulesPath + "/profiles/qemu-guest.nix")
    inputs.disko.nixosModules.disko
    inputs.sops-nix.nixosModules.sops
    (import ./disko.nix { })
  ];

  system.stateVersion = "25.11";
  nix.settings.experimental-features = [ "nix-command" "flakes" ];

  # GRUB for both machine kinds: disko points it at the disk holding the EF02 (BIOS boot) partition; the EFI
  # files go to the ESP's removable-media path, which Hetzner's Arm firmware boots without an NVRAM entry.
  boot.loader.grub = {
    enable = true;
    efiSupport = true;
    efiInstallAsRemovable = true;
  };
  # K3s' pod networking and NetworkPolicy enforcement (kube-router) need these at boot.
  boot.kernelModules = [ "br_netfilter" "overlay" ];
  boot.kernel.sysctl = {
    "net.ipv4.ip_forward" = 1;
    "net.ipv6.conf.all.forwarding" = 1;
    "net.bridge.bridge-nf-call-iptables" = 1;
  };

  networking.hostName = node.name;
  networking.useNetworkd = true;
  networking.useDHCP = false;
  systemd.network.networks = {
    # Hetzner hands out the public IPv4 by DHCP; the IPv6 /64 is static, its gateway always fe80::1.
    "10-public" = {
      matchConfig.Name = "enp1s0";
      networkConfig.DHCP = "ipv4";
      address = lib.optional (node ? publicIPv6) "${node.publicIPv6}/64";
      routes = lib.optional (node ? publicIPv6) { Gateway = "fe80::1"; };
    };
    # The private network, by DHCP too (Hetzner serves it); the address must be the one in settings.nix.
    "20-private" = {
      matchConfig.Name = private;
      networkConfig.DHCP = "ipv4";
      dhcpV4Config.UseRoutes = true;
    };
  };

  networking.firewall = {
    enable = true;
    allowedTCPPorts = cluster.publicTCPPorts;
    interfaces.${private} = {
      allowedTCPPorts = cluster.privateTCPPorts;
      allowedUDPPorts = cluster.privateUDPPorts;
    };
    # Pod traffic to the node (DNS answers, probes' replies) arrives on these.
    trustedInterfaces = [ "cni0" "flannel.1" ];
  };

  services.openssh = {
    enable = true;
    settings = { PasswordAuthentication = false; KbdInteractiveAuthentication = false; PermitRootLogin = "prohibit-password"; };
  };
  users.users.root.openssh.authorizedKeys.keys = settings.sshAuthorizedKeys;

  # Secrets: decrypted at activation with the node's SSH host key (its age identity: nixos/README.md, step 4),
  # into /run/secrets (tmpfs). Only placeholders ever reach the Nix store.
  # nixos/secrets/platform.yaml is yours to create (nixos/README.md, step 3); keys.nix lists what it holds.
  sops.defaultSopsFile = ./secrets/platform.yaml;
  sops.age.sshKeyPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
  # Each node decrypts only what it uses: the join token everywhere, the backup bucket's keys on servers (etcd
  # snapshots), the platform's credentials on the first server only.
  sops.secrets = lib.genAttrs
    ([ "k3s-token" ]
      ++ lib.optionals isServer [ "backup-s3-access-key" "backup-s3-secret-key" ]
      ++ lib.optionals isInit (builtins.filter
      (name: !(builtins.elem name [ "k3s-token" "backup-s3-access-key" "backup-s3-secret-key" ]))
      (builtins.attrNames keys.sopsKeys)))
    (_: { });

  sops.templates = lib.optionalAttrs isServer {
    # K3s reads every file in config.yaml.d: etcd snapshots (every 6 h, cluster.nix) are copied to the bucket.
    "k3s-etcd-s3.yaml" = {
      path = "/etc/rancher/k3s/config.yaml.d/etcd-s3.yaml";
      content = builtins.toJSON {
        etcd-s3 = true;
        etcd-s3-endpoint = settings.backups.s3Endpoint;
        etcd-s3-region = settings.backups.s3Region;
        etcd-s3-bucket = settings.backups.s3Bucket;
        etcd-s3-folder = "etcd";
        etcd-s3-access-key = config.sops.placeholder.backup-s3-access-key;
        etcd-s3-secret-key = config.sops.placeholder.backup-s3-secret-key;
      };
    };
  }
  # The platform's Secrets, key by key (nixos/secrets/keys.nix); clawhost-platform-secrets below applies them.
  // lib.optionalAttrs isInit (lib.listToAttrs (lib.concatLists (lib.mapAttrsToList
    (secret: data: lib.mapAttrsToList
      (key: value: lib.nameValuePair (secretFile secret key) {
        content = value;
        restartUnits = [ "clawhost-platform-secrets.service" ];
      })
      data)
    platformSecrets))) // lib.optionalAttrs isInit {
    "restic-s3.env".content = ''
      AWS_ACCESS_KEY_ID=${config.sops.placeholder.backup-s3-access-key}
      AWS_SECRET_ACCESS_KEY=${config.sops.placeholder.backup-s3-secret-key}
    '';
  };

  services.k3s = {
    enable = true;
    package = k3s;
    role = node.role;
    tokenFile = config.sops.secrets.k3s-token.path;
    clusterInit = isInit;
    serverAddr = lib.mkIf (node.serverAddr != null) node.serverAddr;
    extraFlags = cluster.nodeFlags node.name k3s.version
      ++ lib.optional isInit "--node-label=clawhost.dev/stores=true";
    # K3s' own Traefik is the ingress (deploy/10-platform-network-policies.yaml admits it to the control API):
    # Let's Encrypt through its ACME resolver, HTTP redirected to HTTPS, the client's address kept
    # (externalTrafficPolicy Local), so the control API's rate limits see real clients.
    manifests = lib.mkIf isInit {
      traefik-config.content = {
        apiVersion = "helm.cattle.io/v1";
        kind = "HelmChartConfig";
        metadata = { name = "traefik"; namespace = "kube-system"; };
        spec.valuesContent = builtins.toJSON {
          additionalArguments = [
            "--certificatesresolvers.letsencrypt.acme.email=${settings.acmeEmail}"
            "--certificatesresolvers.letsencrypt.acme.storage=/data/acme.json"
            "--certificatesresolvers.letsencrypt.acme.tlschallenge=true"
            "--entryPoints.web.http.redirections.entryPoint.to=websecure"
            "--entryPoints.web.http.redirections.entryPoint.scheme=https"
          ];
          persistence.enabled = true;
          nodeSelector."clawhost.dev/stores" = "true";
          service.spec.externalTrafficPolicy = "Local";
        };
      };
    };
  };

  # Off-site copies of the stores' volumes (K3s' local-path storage on this node): the PostgreSQL dumps that
  # deploy/31-postgresql-backup.yaml writes every hour and Redis' append-only file. The live PostgreSQL data
  # directory is left out (a copy of a running database's files is not a backup; the dumps are).
  services.restic.backups.stores = lib.mkIf isInit {
    initialize = true;
    repository = "s3:https://${settings.backups.s3Endpoint}/${settings.backups.s3Bucket}/stores";
    passwordFile = config.sops.secrets.backup-restic-password.path;
    environmentFile = config.sops.templates."restic-s3.env".path;
    paths = [ "/var/lib/rancher/k3s/storage" ];
    exclude = [ "*_platform_data-postgresql-*" ];
    timerConfig = { OnCalendar = "*:15"; Persistent = true; };
    pruneOpts = [ "--keep-hourly 48" "--keep-daily 30" "--keep-monthly 6" ];
  };

  # Writes the platform's Secrets into `platform` once it exists (the platform's manifests create it: nixos/README.md,
  # step 7), and again whenever a value changes (sops-nix restarts this unit).
  systemd.services.clawhost-platform-secrets = lib.mkIf isInit {
    description = "clawhost: the platform's Kubernetes Secrets from sops";
    wantedBy = [ "multi-user.target" ];
    after = [ "k3s.service" ];
    wants = [ "k3s.service" ];
    serviceConfig = { Type = "oneshot"; RemainAfterExit = true; Restart = "on-failure"; RestartSec = "30s"; };
    script = ''
      ${kubectl} get namespace platform >/dev/null
    '' + lib.concatStrings (lib.mapAttrsToList applySecret platformSecrets);
  };

  environment.systemPackages = [ k3s pkgs.kubectl pkgs.restic ];
}
