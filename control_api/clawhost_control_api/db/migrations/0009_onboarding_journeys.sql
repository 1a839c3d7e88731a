-- The onboarding chat's sessions that reached the agent: one Customer and one checkout per chat session.
CREATE TABLE onboarding_journeys (
    session_id          text PRIMARY KEY,
    user_id             uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    customer_name       text        NOT NULL,
    bot_username        text        NOT NULL,
    checkout_id         text,
    checkout_url        text,
    checkout_expires_at timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX onboarding_journeys_user ON onboarding_journeys (user_id);

-- Checkouts this API completes itself (the local-checkout setting, local use only).
CREATE TABLE local_checkouts (
    id              text PRIMARY KEY,
    customer_name   text        NOT NULL,
    tier            text        NOT NULL,
    stripe_customer text        NOT NULL,
    return_url      text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz
);
