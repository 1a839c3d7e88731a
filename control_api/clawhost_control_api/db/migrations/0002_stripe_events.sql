-- Stripe webhook event ids already handled (a duplicate delivery is a no-op) and scheduled downgrades.
CREATE TABLE stripe_events (
    id          text PRIMARY KEY,
    type        text        NOT NULL,
    created     timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE scheduled_tier_changes (
    customer_name text PRIMARY KEY,
    tier          text        NOT NULL,
    effective_at  timestamptz NOT NULL
);
