# What the settings change in the platform's manifests, as a pure function of the objects the YAML files hold:
# the images (the registry and the revision built: `nix run .#platform-image.copyToRegistry` pushes that tag),
# the public domain, Stripe's price ids, and the admission policy API version of the K3s release. make test
# renders the files with it and applies the result to a real API server (tests/deploy_tests).
{ objects, settings, imageTag }:
let
  inherit (builtins) isAttrs isList isString map mapAttrs replaceStrings compareVersions elemAt match toJSON hasAttr;

  k3sVersion =
    let parts = match "k3s_([0-9]+)_([0-9]+)" settings.k3sPackage;
    in "${elemAt parts 0}.${elemAt parts 1}";
  gatewayDescription = builtins.fromJSON (builtins.readFile ../../images/gateway.json);
  platformDescription = builtins.fromJSON (builtins.readFile ../../images/platform.json);

  exampleDomain = "clawhost.example.com";
  platformImage = "${platformDescription.name}:${platformDescription.tag}";
  images = {
    ${platformImage} = "${settings.registry}/${platformDescription.name}:${imageTag}";
  };
  # Environment variables set from the settings, whichever container reads them.
  environment = {
    CLAWHOST_API_STRIPE_PRICE_IDS = toJSON settings.stripePriceIds;
  };
  # And added to one container: the gateway image the operator gives customers' pods, from the registry.
  additions = {
    operator = [{
      name = "CLAWHOST_OPERATOR_GATEWAY_IMAGE";
      value = "${settings.registry}/${gatewayDescription.name}:${gatewayDescription.tag}";
    }];
  };

  # Every string: the example domain becomes the real one.
  strings = value:
    if isAttrs value then mapAttrs (_: strings) value
    else if isList value then map strings value
    else if isString value then replaceStrings [ exampleDomain ] [ settings.domain ] value
    else value;

  container = c: c
    // (if hasAttr c.image images then { image = images.${c.image}; } else { })
    // {
    env = map (e: if hasAttr e.name environment then { inherit (e) name; value = environment.${e.name}; } else e)
      (c.env or [ ])
    ++ (additions.${c.name} or [ ]);
  };
  podSpec = spec: spec // { containers = map container spec.containers; };
  template = t: t // { spec = podSpec t.spec; };
  workload = object:
    if object.kind == "Deployment" || object.kind == "StatefulSet" then
      object // { spec = object.spec // { template = template object.spec.template; }; }
    else if object.kind == "CronJob" then
      object // {
        spec = object.spec // {
          jobTemplate = object.spec.jobTemplate // {
            spec = object.spec.jobTemplate.spec // { template = template object.spec.jobTemplate.spec.template; };
          };
        };
      }
    else object;

  # MutatingAdmissionPolicy is GA (v1) from Kubernetes 1.36; before, it is served as v1beta1 (nixos/lib/cluster.nix
  # turns that on).
  admissionPolicyVersion = object:
    if compareVersions k3sVersion "1.36" >= 0
      && (object.kind == "MutatingAdmissionPolicy" || object.kind == "MutatingAdmissionPolicyBinding")
    then object // { apiVersion = "admissionregistration.k8s.io/v1"; }
    else object;
in
map (object: admissionPolicyVersion (workload (strings object))) objects
