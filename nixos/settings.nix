# Everything an operator of clawhost fills in, in one place (nixos/README.md, "What you fill in"). Addresses and
# names only: credentials never go here (they are in nixos/secrets/platform.yaml, encrypted with sops; the list of
# what it must hold is nixos/secrets/keys.nix). The values below are documentation addresses (RFC 5737) and
# example names: replace every one.
{
  # Images: `nix run .#platform-image.copyToRegistry` pushes <registry>/clawhost/platform:<git revision>, and the
  # rendered manifests pull that. The nodes need pull access (a public registry, or credentials in K3s'
  # registries.yaml: secrets `registry-username` / `registry-password`).
  registry = "ghcr.io/example-org";

  # The public site, the dashboard, the API and the Stripe webhook (https://<domain>/webhooks/stripe).
  domain = "clawhost.example.com";
  # Stripe's recurring price of each tier (Stripe dashboard, Product catalogue: price_...).
  stripePriceIds = { starter = "price_starter_example"; pro = "price_pro_example"; team = "price_team_example"; };
  # Let's Encrypt account for the site's certificate (Traefik's ACME resolver, TLS-ALPN challenge on 443).
  acmeEmail = "ops@example.com";

  # Who may SSH to the nodes as root (nixos-anywhere installs with it, Colmena deploys with it).
  sshAuthorizedKeys = [ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExample ops@example" ];

  # One architecture per cluster: Hetzner's x86 (CX/CPX/CCX, booted by BIOS) or Arm (CAX, booted by UEFI) machines.
  # The images are built for it (building aarch64 images on an x86 machine needs an aarch64 builder).
  system = "x86_64-linux";

  # The Hetzner Cloud private network the nodes share (`hcloud network create --ip-range 10.0.0.0/16`): K3s talks
  # over it only, and the firewall opens the cluster's ports on it only.
  privateNetwork = { cidr = "10.0.0.0/16"; interface = "enp7s0"; };

  # The nodes: exactly one server (agents join it), or exactly three servers (etcd needs a majority: two servers
  # would stop when either fails). Each needs its public IPv4 (SSH, HTTP/S), the private address Hetzner gave it
  # on the network above, and optionally its public IPv6 /64's first address.
  nodes = {
    k3s-1 = { role = "server"; publicIPv4 = "203.0.113.10"; privateIPv4 = "10.0.0.2"; publicIPv6 = "2001:db8:1::1"; };
    k3s-2 = { role = "agent"; publicIPv4 = "203.0.113.11"; privateIPv4 = "10.0.0.3"; };
  };

  # The K3s release (a nixpkgs attribute: k3s_1_35, k3s_1_36, ...). Kubernetes minor versions skew: upgrade one
  # minor at a time (nixos/README.md, "Upgrades").
  k3sPackage = "k3s_1_35";

  # Off-site copies: K3s' etcd snapshots and the PostgreSQL dumps go to this S3-compatible bucket (Hetzner Object
  # Storage). Its keys are secrets (`backup-s3-access-key`, `backup-s3-secret-key`).
  backups = {
    s3Endpoint = "fsn1.your-objectstorage.com";
    s3Region = "fsn1";
    s3Bucket = "example-clawhost-backups";
  };
}
