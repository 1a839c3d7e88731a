# The cluster's shape from nixos/settings.nix, checked, and each node's K3s flags. Pure Nix (no nixpkgs), so
# `make test` evaluates it with nix-instantiate: tests/deploy_tests/test_nix_evaluation.py.
{ settings }:
let
  inherit (builtins) attrNames filter length head sort compareVersions all elem;

  names = sort (a: b: a < b) (attrNames settings.nodes);
  serverNames = filter (name: settings.nodes.${name}.role == "server") names;
  agentNames = filter (name: settings.nodes.${name}.role == "agent") names;
  # The first server (by name) starts etcd (--cluster-init); every other node joins it.
  initName = head serverNames;
  joinAddress = "https://${settings.nodes.${initName}.privateIPv4}:6443";

  check = condition: message: if condition then true else throw "nixos/settings.nix: ${message}";
  valid =
    check (all (name: elem settings.nodes.${name}.role [ "server" "agent" ]) names)
      "every node's role is \"server\" or \"agent\""
    && check (length serverNames == 1 || length serverNames == 3)
      "a cluster has exactly 1 server (and any number of agents) or exactly 3 servers, not ${toString (length serverNames)}: two etcd members stop when either fails, so a second server makes the control plane less available, not more"
    && check (elem settings.system [ "x86_64-linux" "aarch64-linux" ])
      "system is x86_64-linux (Hetzner CX/CPX/CCX) or aarch64-linux (Hetzner CAX)";

  # MutatingAdmissionPolicy (operator/deploy/25-customer-finalizer-policy.yaml) is beta, and off by default, in
  # Kubernetes 1.34 and 1.35; GA and on from 1.36, where these flags are not needed.
  admissionPolicyFlags = k3sVersion:
    if compareVersions k3sVersion "1.36" < 0 then [
      "--kube-apiserver-arg=feature-gates=MutatingAdmissionPolicy=true"
      "--kube-apiserver-arg=runtime-config=admissionregistration.k8s.io/v1beta1=true"
    ] else [ ];

  nodeFlags = name: k3sVersion:
    let
      node = settings.nodes.${name};
      common = [
        "--node-ip=${node.privateIPv4}"
        "--node-external-ip=${node.publicIPv4}"
        "--flannel-iface=${settings.privateNetwork.interface}"
      ];
      server = [
        "--advertise-address=${node.privateIPv4}"
        "--tls-san=${node.privateIPv4}"
        "--secrets-encryption"
        # The ingress (deploy/40-ingress.yaml) is K3s' own Traefik: kept, and configured by nixos/node.nix.
        # K3s' NetworkPolicy controller (kube-router's) is kept too: --disable-network-policy is never passed.
        "--etcd-snapshot-schedule-cron=0 */6 * * *"
        "--etcd-snapshot-retention=28"
      ] ++ admissionPolicyFlags k3sVersion;
    in
    common ++ (if node.role == "server" then server else [ ]);
in
assert valid;
{
  nodes = builtins.listToAttrs (map
    (name: {
      inherit name;
      value = settings.nodes.${name} // {
        inherit name;
        inherit (settings) system;
        # Every node but the first server joins the cluster through it.
        serverAddr = if name == initName then null else joinAddress;
        clusterInit = name == initName;
      };
    })
    names);
  servers = serverNames;
  agents = agentNames;
  inherit initName joinAddress nodeFlags admissionPolicyFlags;
  # Ports on the private network only: the API server, the kubelet, flannel's VXLAN, and etcd between servers.
  privateTCPPorts = [ 6443 10250 ] ++ (if length serverNames == 3 then [ 2379 2380 ] else [ ]);
  privateUDPPorts = [ 8472 ];
  # Public: SSH and the ingress (K3s' service load balancer publishes Traefik's 80 and 443 on every node).
  publicTCPPorts = [ 22 80 443 ];
}
