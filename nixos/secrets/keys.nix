# What nixos/secrets/platform.yaml (sops-encrypted) must hold, and how the platform's Kubernetes Secrets are made
# from it. Pure Nix: make test checks that every Secret and key a manifest reads is made here, and nothing else
# (tests/deploy_tests/test_platform_secrets.py). The values never reach the Nix store: sops-nix decrypts them on
# the node at activation and fills the placeholders there (nixos/node.nix).
{
  # Every key of nixos/secrets/platform.yaml, and what it is.
  sopsKeys = {
    k3s-token = "shared secret nodes join the cluster with (any long random string: openssl rand -hex 32)";
    kimi-api-key = "the platform's Moonshot/Kimi API key (the token proxy's upstream)";
    stripe-api-key = "Stripe secret key (sk_live_...)";
    stripe-webhook-secret = "signing secret of the Stripe webhook endpoint https://<domain>/webhooks/stripe (whsec_...)";
    jwt-private-key = "the control API's JWT signing key, PEM (openssl genpkey -algorithm ed25519)";
    jwt-public-key = "its public half, PEM (openssl pkey -pubout)";
    postgres-password = "password of the clawhost PostgreSQL user (openssl rand -hex 24)";
    redis-password = "Redis' requirepass (openssl rand -hex 24)";
    onboarding-internal-token = "what the control API presents to the onboarding service on their internal WebSocket (openssl rand -hex 32)";
    backup-s3-access-key = "access key of the backup bucket (settings.backups)";
    backup-s3-secret-key = "its secret key";
    backup-restic-password = "encrypts the PostgreSQL/Redis backups in the bucket (keep a copy outside the cluster)";
  };

  # The Kubernetes Secrets in namespace `platform`: name -> key -> value, where `secret "<sops key>"` stands for
  # that key's decrypted value.
  kubernetesSecrets = secret: {
    token-proxy-upstream = {
      api-key = secret "kimi-api-key";
    };
    token-proxy-stores = {
      redis-url = "redis://:${secret "redis-password"}@redis.platform.svc.cluster.local:6379/0";
      postgres-dsn = "postgresql://clawhost:${secret "postgres-password"}@postgresql.platform.svc.cluster.local:5432/clawhost";
    };
    clawhost-control-api = {
      CLAWHOST_API_DATABASE_URL = "postgresql://clawhost:${secret "postgres-password"}@postgresql.platform.svc.cluster.local:5432/clawhost";
      CLAWHOST_API_REDIS_URL = "redis://:${secret "redis-password"}@redis.platform.svc.cluster.local:6379/0";
      CLAWHOST_API_STRIPE_API_KEY = secret "stripe-api-key";
      CLAWHOST_API_STRIPE_WEBHOOK_SECRET = secret "stripe-webhook-secret";
    };
    clawhost-control-api-jwt = {
      "jwt.key" = secret "jwt-private-key";
      "jwt.pub" = secret "jwt-public-key";
    };
    clawhost-onboarding = {
      llm-api-key = secret "kimi-api-key";
      internal-token = secret "onboarding-internal-token";
      redis-url = "redis://:${secret "redis-password"}@redis.platform.svc.cluster.local:6379/0";
    };
    postgresql = {
      password = secret "postgres-password";
    };
    redis = {
      password = secret "redis-password";
    };
  };
}
