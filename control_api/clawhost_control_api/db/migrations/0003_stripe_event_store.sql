-- Keep each verified event (the fold of a customer's events is its status.billing) and learn which
-- Stripe customer belongs to which Customer object.
ALTER TABLE stripe_events ADD COLUMN stripe_customer text;
ALTER TABLE stripe_events ADD COLUMN payload jsonb NOT NULL DEFAULT '{}'::jsonb;
CREATE INDEX stripe_events_customer ON stripe_events (stripe_customer);
DROP TABLE scheduled_tier_changes;

CREATE TABLE stripe_customers (
    stripe_customer text PRIMARY KEY,
    customer_name   text NOT NULL
);
